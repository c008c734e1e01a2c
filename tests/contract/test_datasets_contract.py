"""The DatasetStore contract on every metadata backend."""

from loopml.testing.contracts.datasets import *  # noqa: F403
