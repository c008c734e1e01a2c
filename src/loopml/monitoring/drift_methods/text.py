"""Drift of text: new words (the out-of-vocabulary rate against the Good-Turing estimate of
what a reference of this size misses) or a shift of the token frequencies (Jensen-Shannon
distance above its noise floor); `loopml.domain.text_drift`."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain import drift_statistics as stats
from loopml.domain import text_drift as text_stats
from loopml.monitoring.column_kinds import TEXT
from loopml.monitoring.drift_methods.base import (
    Decision,
    Evidence,
    Thresholds,
    is_text,
    shares_chart,
    significant,
)

TOKEN_PATTERN = r"[^\w]+"
"""Text is lower-cased and split on runs of non-word characters."""
MAX_VOCABULARY = 50_000
"""Most frequent reference tokens kept as the vocabulary."""
TEXT_WORDS = 3.0
"""Text columns whose values have at least this many words on average are `text`."""


class TextMethod:
    """Drifted when the out-of-vocabulary test, adjusted, is significant and the rate at least
    `oov_rate`, or when the Jensen-Shannon distance of token frequencies is at least
    `jensen_shannon` and its noise floor. Claims text of `TEXT_WORDS` words a value or more."""

    kind = TEXT

    def claims(self, column: pa.ChunkedArray) -> bool:
        return is_text(column.type) and _wordy(column)

    def check(self, name: str, column_type: pa.DataType) -> None:
        return None  # any value reads as its text

    def summarize(self, column: pa.ChunkedArray) -> text_stats.TokenSummary:
        return _token_counts(column, MAX_VOCABULARY)

    def read(self, stored: dict[str, Any]) -> text_stats.TokenSummary:
        return text_stats.TokenSummary.from_dict(stored)

    def count(
        self, reference: text_stats.TokenSummary, column: pa.ChunkedArray
    ) -> text_stats.TokenSummary:
        return _token_counts(column, None)

    def merge(
        self, first: text_stats.TokenSummary, second: text_stats.TokenSummary
    ) -> text_stats.TokenSummary:
        return text_stats.merge_tokens(first, second)

    def test(
        self, reference: text_stats.TokenSummary, current: text_stats.TokenSummary
    ) -> Evidence:
        words = text_stats.text_drift(reference, current)
        values = {
            "oov_rate": words.oov_rate,
            "expected_oov_rate": words.expected_oov_rate,
            "jensen_shannon": words.js_distance,
            "jensen_shannon_noise_floor": words.js_noise_floor,
            "new_tokens": words.new_tokens,
        }
        return Evidence("oov+jensen_shannon", words.p_value, values)

    def decide(self, evidence: Evidence, q_value: float, limits: Thresholds) -> Decision:
        value = evidence.statistics["jensen_shannon"]
        threshold = max(limits.jensen_shannon, evidence.statistics["jensen_shannon_noise_floor"])
        oov = evidence.statistics["oov_rate"]
        new_words = significant(q_value, limits) and oov >= limits.oov_rate  # NaN compares False
        drifted = new_words or value >= threshold
        findings = [f"oov_rate:{oov:.4f}"] if new_words else []
        return Decision(bool(drifted), "jensen_shannon", float(value), float(threshold), findings)

    def chart(
        self, reference: text_stats.TokenSummary, current: text_stats.TokenSummary
    ) -> dict[str, Any]:
        """The shares of the most frequent tokens on either side."""
        return shares_chart(
            *stats.align(reference.tokens, reference.counts, current.tokens, current.counts)
        )


def _wordy(column: pa.ChunkedArray, sample: int = 2_000) -> bool:
    head = column.slice(0, sample).drop_null()
    if len(head) == 0:
        return False
    words = pc.list_value_length(pc.split_pattern_regex(pc.utf8_trim_whitespace(head), r"\s+"))
    return float(pc.mean(words).as_py() or 0.0) >= TEXT_WORDS


def _token_counts(column: pa.ChunkedArray, keep: int | None) -> text_stats.TokenSummary:
    values = column.drop_null()
    if not is_text(values.type):
        values = values.cast(pa.string())
    tokens = pc.list_flatten(pc.split_pattern_regex(pc.utf8_lower(values), TOKEN_PATTERN))
    tokens = tokens.filter(pc.not_equal(pc.utf8_length(tokens), 0))
    counted = pc.value_counts(tokens)
    labels = counted.field("values").to_numpy(zero_copy_only=False)
    counts = counted.field("counts").to_numpy()
    return text_stats.summarize_tokens(labels, counts, len(values), keep)
