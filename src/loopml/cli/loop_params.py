"""A pipeline's parameters as `loopml loop create` and `loopml loop backtest` take them:
`--param KEY=VALUE`, the value read as JSON when it is JSON and as text otherwise."""

from __future__ import annotations

import json
from typing import Any


def pipeline_params(items: list[str]) -> dict[str, Any]:
    """The `--param` items by key; InvalidInput for an item that is not KEY=VALUE."""
    from loopml.errors import InvalidInput

    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--param {item!r} is not KEY=VALUE.", "Write e.g. --param lr=0.05.")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params
