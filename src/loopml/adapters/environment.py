"""Captures where a run ran: git commit and dirty flag, Python, platform, installed packages.

The package list is read once per process; git facts are cached for `GIT_CACHE_S` seconds, so a
loop that starts many runs pays for them once while a notebook still sees a new commit.
"""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GIT_CACHE_S = 5.0


@functools.cache
def installed_packages() -> str:
    """`name==version` lines of every installed distribution, sorted."""
    from importlib import metadata  # read once per process, on the first run

    lines = {
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in metadata.distributions()
        if dist.metadata["Name"]
    }
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(cwd: Path) -> dict[str, Any]:
    """Commit, branch and dirty flag of the repository around `cwd`, or {} outside one."""
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return {}
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {
        "git_commit": commit,
        "git_branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd),
        "git_dirty": bool(dirty),
    }


class LocalEnvironmentProbe:
    """The `EnvironmentProbe` port for the current process."""

    def __init__(self, cwd: Path | None = None) -> None:
        self._cwd = cwd
        self._git: tuple[float, dict[str, Any]] | None = None

    def capture(self) -> tuple[dict[str, Any], str]:
        cwd = self._cwd or Path.cwd()
        now = time.monotonic()
        if self._git is None or now - self._git[0] > GIT_CACHE_S:
            self._git = (now, git_state(cwd))
        facts = {
            "python": platform.python_version(),
            "python_implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "executable": sys.executable,
            "argv": list(sys.argv),
            "cwd": str(cwd),
            **self._git[1],
        }
        return facts, installed_packages()
