"""The LoopStore contract on every metadata backend."""

from loopml.testing.contracts.loops import *  # noqa: F403
