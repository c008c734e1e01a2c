"""The ModelStore contract on every metadata backend."""

from loopml.testing.contracts.models import *  # noqa: F403
