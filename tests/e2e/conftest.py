"""The `cli` fixture: run `loopml ARGS` in-process in an empty folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loopml.bootstrap import reset_default_workspace
from loopml.cli.app import main


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `loopml ARGS` in-process in an empty folder; returns (exit code, stdout, stderr).
    The process-wide workspace (`default_workspace()`) is closed before and after each test, so
    the commands that use it open this test's folder, not the one an earlier test left."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("LOOPML_") and not name.startswith("LOOPML_TEST"):
            monkeypatch.delenv(name)
    reset_default_workspace()

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    yield run
    reset_default_workspace()
