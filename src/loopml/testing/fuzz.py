"""For tests: schemathesis over a live OpenAPI document, failing on any 5xx; and the smallest
body an operation of an OpenAPI document accepts, for tests that call every route."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


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


def smallest_value(schema: Mapping[str, Any], schemas: Mapping[str, Any]) -> Any:
    """The smallest JSON value `schema` accepts (`schemas`: the document's components):
    required fields only, first choices, so a route's own checks are what answers."""
    while "$ref" in schema or "anyOf" in schema:
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            continue
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        if not options:
            return None
        schema = options[0]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        return {k: smallest_value(properties[k], schemas) for k in schema.get("required", [])}
    if kind == "array":
        return [smallest_value(item, schemas) for item in schema.get("prefixItems", [])]
    when = "2026-01-01T00:00:00Z" if schema.get("format") == "date-time" else "x"
    return {"string": when, "integer": 1, "number": 1.0, "boolean": False}[kind]
