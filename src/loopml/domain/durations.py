"""Durations written as people write them: `90s`, `10m`, `1h`, `2d`, `1h30m`."""

from __future__ import annotations

import re

from loopml.errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_PART = re.compile(r"(\d+)([smhdw])")
_ZERO = re.compile(r"\s*0+\s*[smhdw]?\s*")


def parse_duration(text: str, *, zero: bool = False) -> int:
    """Seconds in `text` (one or more number-unit pairs, units s, m, h, d, w); with `zero`,
    `0` (or `0s`, `0m`...) is taken too."""
    if zero and _ZERO.fullmatch(text):
        return 0
    cleaned = text.strip().lower().replace(" ", "")
    parts = _PART.findall(cleaned)
    if not cleaned or "".join(f"{n}{u}" for n, u in parts) != cleaned:
        raise InvalidInput(
            f"{text!r} is not a duration.",
            "Write a number and a unit, such as 90s, 10m, 1h, 2d or 1h30m.",
        )
    seconds = sum(int(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise InvalidInput(f"The duration {text!r} is zero.", "Give a positive duration.")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest `parse_duration` text for `seconds` (e.g. 5400 -> 1h30m)."""
    parts = []
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if unit == "w":
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
