"""The AlertStore contract on every metadata backend."""

from loopml.testing.contracts.alerts import *  # noqa: F403
