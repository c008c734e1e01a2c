"""Every store port kept in Python objects: the twins of the SQL stores, for tests and as the
smallest complete example of a backend.

All stores of one workspace share one `MemoryDatabase` (`database.py`), as the SQL stores share
one database: its tables, its lock and its audit chain. A store module holds what its SQL twin
holds, in the same words, and the contract suites in `loopml.testing.contracts` prove the two
behave alike. A new backend starts by copying this package.
"""
