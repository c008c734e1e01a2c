"""Conformance suites and fakes that ship with loopml."""
