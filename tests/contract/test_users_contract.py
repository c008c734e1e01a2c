"""The UserStore contract on every metadata backend."""

from loopml.testing.contracts.users import *  # noqa: F403
