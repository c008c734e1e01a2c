"""The MonitorStore contract on every metadata backend."""

from loopml.testing.contracts.monitors import *  # noqa: F403
