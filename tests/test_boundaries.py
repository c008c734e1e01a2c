"""The checks that keep the code base in shape: lint, format, types, layers, import weight."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ["sqlalchemy", "pandas", "pyarrow", "sklearn", "fastapi", "uvicorn", "alembic", "fsspec"]


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; install the test extras: pip install -e '.[test]'")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint_is_clean() -> None:
    done = _run(_tool("ruff"), "check", "src", "tests", "benchmarks", "examples")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_clean() -> None:
    done = _run(_tool("ruff"), "format", "--check", "src", "tests", "benchmarks", "examples")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_is_clean() -> None:
    done = _run(_tool("mypy"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_layers_are_respected() -> None:
    done = _run(_tool("lint-imports"))
    assert done.returncode == 0, done.stdout + done.stderr


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return {name.split(".")[0] for name in json.loads(done.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize(
    "code",
    [
        "import loopml",
        "import loopml.cli.app",
        "import loopml.domain.filters, loopml.domain.refs, loopml.domain.audit",
    ],
    ids=["package", "cli", "domain"],
)
def test_light_imports_stay_light(code: str) -> None:
    heavy = set(HEAVY) & _imported_after(code)
    assert not heavy, f"{code!r} imports {sorted(heavy)}"


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\nsys.argv = ['loopml', '--help']\nfrom loopml.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    heavy = set(HEAVY) & _imported_after(code)
    assert not heavy, f"loopml --help imports {sorted(heavy)}"


MAX_MODULE_LINES = 500
"""A module this long holds more than one concept: split it by concept (STYLE.md, size budgets)."""


def test_every_module_stays_under_the_size_budget() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "src" / "loopml").rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) >= MAX_MODULE_LINES
    }
    assert not too_long, (
        f"modules of {MAX_MODULE_LINES} lines or more (lines by module): {too_long}; split each "
        "into modules of one concept, each with a docstring saying what it holds"
    )


def test_public_api_is_curated_and_sorted() -> None:
    import loopml

    assert loopml.__all__ == sorted(loopml.__all__)
    for name in loopml.__all__:
        assert getattr(loopml, name) is not None
