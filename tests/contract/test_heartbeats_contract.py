"""The RunHeartbeats and SilentRunReaper contract on every metadata backend."""

from loopml.testing.contracts.heartbeats import *  # noqa: F403
