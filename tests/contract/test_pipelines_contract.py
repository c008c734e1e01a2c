"""The PipelineStore and LineageStore contract on every metadata backend."""

from loopml.testing.contracts.pipelines import *  # noqa: F403
