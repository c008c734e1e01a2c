"""What a backtest tries and what it reports: the recommended default policy, and the result of
each replayed window and of the whole replay."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Say = Callable[[str], None]


@dataclass(frozen=True)
class Policy:
    """The recommended default policy: the one a backtest without policy flags tries."""

    triggers: tuple[str, ...] = ("performance", "labels:1500")
    train_data: str = "reference + all labelled predictions"
    promote_if: tuple[str, ...] = ("accuracy >= champion.accuracy",)
    confidence: float = 0.9
    holdout: float = 0.3
    holdout_mode: str = "time"
    refit: bool = True
    max_wait_rows: int = 2_000
    horizon: int | None = 1_000
    holdout_rows: int | None = 500


RECOMMENDED = Policy()
RECOVERY_CONFIDENCE = 0.9
"""The level of the recovery's interval (a bootstrap over windows)."""
MIN_HOLDOUT = 10
"""Fewest holdout rows a window must hold."""


@dataclass
class WindowResult:
    index: int
    start: str
    end: str
    rows: int
    policy: float
    static: float
    oracle: float
    champion: int
    decisions: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.index,
            "start": self.start,
            "end": self.end,
            "rows": self.rows,
            "policy": self.policy,
            "static": self.static,
            "oracle": self.oracle,
            "champion": self.champion,
            "events": self.events,
            "decisions": self.decisions,
        }


@dataclass
class BacktestResult:
    metric: str
    policy: dict[str, Any]
    windows: list[WindowResult]
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "policy": self.policy,
            "summary": self.summary,
            "windows": [w.to_json() for w in self.windows],
        }
