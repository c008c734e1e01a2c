"""The RunStore contract on every metadata backend."""

from loopml.testing.contracts.runs import *  # noqa: F403
