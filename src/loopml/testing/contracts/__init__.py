"""The contract of every metadata store port, as plain pytest test functions: what a backend
must do, checked the same way on each (as scikit-learn's `check_estimator` checks estimators).

One module per port: `datasets`, `runs`, `heartbeats` (the optional `RunHeartbeats` and
`SilentRunReaper`), `models`, `events`, `pipelines` (`PipelineStore` and `LineageStore`),
`deployments`, `monitors`, `alerts`, `loops`, `leases`, `users`, `tokens` (with the optional
`SessionStore`), `grants`. The blob store's suite is `loopml.testing.blobstore_contract`.

A backend runs a suite by providing one fixture, `stores`: a fresh, empty
`loopml.testing.contracts.stores.MetadataStores` whose stores share one database. Its
`conftest.py`:

    import pytest

    pytest.register_assert_rewrite("loopml.testing.contracts")  # before any suite is imported


    @pytest.fixture
    def stores():
        from loopml.testing.contracts.stores import MetadataStores
        from my_backend import open_stores  # its thirteen stores, on a fresh, empty database

        return MetadataStores(*open_stores())

and a test module imports the suites, which pytest then collects there:

    from loopml.testing.contracts.deployments import *  # noqa: F403

The stores go in the order of `MetadataStores`' fields; one object may serve several ports, as
an `AuthStore` serves users, tokens and grants. Stores that read a clock are best given a
`loopml.testing.contracts.clock.FakeClock`, passed as `clock=` too: the suites then let leases
run out and runs fall silent without waiting.
"""
