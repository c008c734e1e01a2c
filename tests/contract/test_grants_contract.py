"""The GrantStore contract on every metadata backend."""

from loopml.testing.contracts.grants import *  # noqa: F403
