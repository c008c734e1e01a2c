"""The DeploymentStore contract on every metadata backend."""

from loopml.testing.contracts.deployments import *  # noqa: F403
