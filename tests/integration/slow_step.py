"""A pipeline step that makes a model slow on purpose: 20 ms per call, importable by name so
that skops can save and load a model that uses it."""

from __future__ import annotations

import time
from typing import Any

DELAY_S = 0.02


def wait_20ms(inputs: Any) -> Any:
    time.sleep(DELAY_S)
    return inputs
