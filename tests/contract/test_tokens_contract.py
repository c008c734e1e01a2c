"""The TokenStore (and SessionStore) contract on every metadata backend."""

from loopml.testing.contracts.tokens import *  # noqa: F403
