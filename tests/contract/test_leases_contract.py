"""The Leases contract on every metadata backend (a team server's client on loops' leases)."""

from loopml.testing.contracts.leases import *  # noqa: F403
