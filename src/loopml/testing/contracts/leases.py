"""The Leases contract: of several owners that want the same named job, one holds its lease at a
time; the holder may take it again (a retry) and extend it; it is free again when released by
its holder or when its time runs out (a holder that died). Each name is its own lease.

A backend that takes only loops' leases (a client of a team server) is tested on the leases of
loops the suite makes (`lease_name`); time passes by the stores' clock where they have one."""

from __future__ import annotations

from loopml.testing.contracts.stores import MetadataStores, lease_name, pass_time

__all__ = [
    "test_a_lease_has_one_holder_until_released",
    "test_a_lease_never_taken_is_free_and_not_renewable",
    "test_a_lease_whose_holder_died_runs_out",
    "test_each_name_is_its_own_lease",
    "test_renewing_extends_the_lease_from_now",
]


def test_a_lease_has_one_holder_until_released(stores: MetadataStores) -> None:
    leases, job = stores.leases, lease_name(stores, "nightly")
    assert leases.holder(job) == (None, None)
    assert leases.acquire(job, "a", ttl_s=60)
    assert not leases.acquire(job, "b", ttl_s=60)
    assert leases.acquire(job, "a", ttl_s=60)  # a retry by the holder
    owner, until_us = leases.holder(job)
    assert owner == "a"
    assert until_us is not None
    assert not leases.renew(job, "b", ttl_s=60)  # only the holder renews
    assert leases.renew(job, "a", ttl_s=60)
    leases.release(job, "b")  # not the holder: nothing happens
    assert leases.holder(job)[0] == "a"
    assert not leases.acquire(job, "b", ttl_s=60)
    leases.release(job, "a")
    assert leases.holder(job) == (None, None)
    assert not leases.renew(job, "a", ttl_s=60)  # released: gone, not renewable
    assert leases.acquire(job, "b", ttl_s=60)
    assert leases.holder(job)[0] == "b"
    leases.release(job, "b")
    leases.release(job, "b")  # twice: still free, no error
    assert leases.holder(job) == (None, None)


def test_a_lease_whose_holder_died_runs_out(stores: MetadataStores) -> None:
    leases, job = stores.leases, lease_name(stores, "nightly")
    assert leases.acquire(job, "b", ttl_s=1)
    assert not leases.acquire(job, "c", ttl_s=60)
    pass_time(stores, 1.5)  # b died without releasing
    assert leases.holder(job) == (None, None)
    assert leases.acquire(job, "c", ttl_s=60)
    assert leases.holder(job)[0] == "c"
    assert not leases.renew(job, "b", ttl_s=60)  # b's lease is c's now
    assert not leases.acquire(job, "b", ttl_s=60)


def test_renewing_extends_the_lease_from_now(stores: MetadataStores) -> None:
    leases, job = stores.leases, lease_name(stores, "nightly")
    assert leases.acquire(job, "a", ttl_s=2)
    first = leases.holder(job)[1]
    assert first is not None
    pass_time(stores, 1)
    assert leases.renew(job, "a", ttl_s=2)
    renewed = leases.holder(job)[1]
    assert renewed is not None
    assert renewed >= first + 900_000  # from now, not from when it was taken
    pass_time(stores, 1.5)  # past the first lease, within the renewed one
    assert leases.holder(job)[0] == "a"
    assert not leases.acquire(job, "b", ttl_s=60)
    assert leases.acquire(job, "a", ttl_s=3600)  # taking it again extends it too
    longer = leases.holder(job)[1]
    assert longer is not None
    assert longer > renewed + 3_000_000_000


def test_each_name_is_its_own_lease(stores: MetadataStores) -> None:
    leases = stores.leases
    nightly, weekly = lease_name(stores, "nightly"), lease_name(stores, "weekly")
    assert leases.acquire(nightly, "a", ttl_s=60)
    assert leases.acquire(weekly, "b", ttl_s=60)  # one holder per name
    assert (leases.holder(nightly)[0], leases.holder(weekly)[0]) == ("a", "b")
    assert not leases.renew(weekly, "a", ttl_s=60)
    leases.release(nightly, "a")
    assert leases.holder(nightly) == (None, None)
    assert leases.holder(weekly)[0] == "b"  # releasing one frees only it


def test_a_lease_never_taken_is_free_and_not_renewable(stores: MetadataStores) -> None:
    leases, job = stores.leases, lease_name(stores, "never")
    assert not leases.renew(job, "a", ttl_s=60)
    leases.release(job, "a")
    assert leases.holder(job) == (None, None)
    assert leases.acquire(job, "a", ttl_s=60)  # releasing nothing took nothing
