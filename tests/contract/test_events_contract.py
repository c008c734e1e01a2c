"""The EventLog contract on every metadata backend."""

from loopml.testing.contracts.events import *  # noqa: F403
