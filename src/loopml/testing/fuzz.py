"""For tests: schemathesis over a live OpenAPI document, failing on any 5xx."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def fuzz_openapi(
    openapi_url: str,
    workdir: Path,
    *,
    parameters: Mapping[str, str],
    max_examples: int,
    headers: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run schemathesis's examples, coverage and fuzzing phases with the `not_a_server_error`
    check; `parameters` pin path parameters (so requests reach real records)."""
    config = workdir / "schemathesis.toml"
    pinned = ", ".join(f'{key} = "{value}"' for key, value in parameters.items())
    config.write_text(
        f"parameters = {{ {pinned} }}\n"
        "request-timeout = 30\n"
        f"[generation]\nmax-examples = {max_examples}\n"
    )
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        openapi_url,
        *(part for header in headers for part in ("-H", header)),
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--no-color",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=workdir)
