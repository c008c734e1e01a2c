"""Monitoring: drift between a reference and a current sample.

    report = loopml.monitoring.compare(reference_df, current_df)
    report.drifted_features ; report.drift_share ; report.to_json()
    report = loopml.monitoring.compare_batches(reference, dataset.to_batches())  # any size

See `loopml.monitoring.drift` for the methods, thresholds and defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.monitoring.drift import (
        DriftReport,
        Reference,
        compare,
        compare_batches,
        summarize,
    )

__all__ = ["DriftReport", "Reference", "compare", "compare_batches", "summarize"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from loopml.monitoring import drift

        return getattr(drift, name)
    raise AttributeError(name)
