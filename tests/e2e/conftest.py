"""The `cli` fixture: run `loopml ARGS` in-process in an empty folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loopml.cli.app import main


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `loopml ARGS` in-process in an empty folder; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("LOOPML_") and not name.startswith("LOOPML_TEST"):
            monkeypatch.delenv(name)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
