"""How often `compare` flags a column that did not drift, per column kind and window size, and
that real drift is still found.

Every pair is drawn afresh (seeded, so the test is deterministic): a reference and a current
window from the SAME distribution, one column at a time (with one column the monitor's
Benjamini-Hochberg q-value is the p-value itself, the hardest case for the false-flag rate).
Text is Zipf-distributed over 5,000 words, so a small reference misses rare words by chance.

How the rates are judged. A decision whose test is valid at `alpha` = 5% flags at most 5% of
such pairs, so its count over R pairs is stochastically at most Binomial(R, 0.05). A cell fails
when its count is above that binomial's 99.9th percentile, and a kind fails when its count over
all its cells is above the 99.9th percentile of Binomial(total pairs, 0.05). A decision sitting
exactly at 5% in every cell would fail one of the 60 checks, with a fresh seed, at most 6% of
the time (ours sit below 5% nearly everywhere, so far less); a cell flagging most pairs (as
text did at 100 to 1,000 rows) fails at once, and a kind flagging 9% overall fails its pooled
check (1,240 pairs, up to 7.0% allowed) 99 times in 100.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy import stats

from loopml import monitoring

SIZES = (100, 200, 500, 1_000, 10_000)
BIG_REFERENCE = 10_000
PAIRS = 150
"""Pairs per cell; 40 for a cell whose current window holds 10,000 rows (its effect-size
thresholds keep it near 0%, and tokenising 10,000 rows of text takes a while)."""
PAIRS_AT_10K = 40
CELLS = [(n, n) for n in SIZES] + [(BIG_REFERENCE, n) for n in SIZES[:-1]]
"""(reference rows, current rows): the same size on both sides, and a big reference against
a small window."""

VOCABULARY = 5_000
WORD_LABELS = np.array([f"w{i}" for i in range(VOCABULARY)], dtype=object)
WORDS = pa.array(WORD_LABELS)
WORD_CDF = np.cumsum(1.0 / np.arange(1, VOCABULARY + 1) ** 1.1)
WORD_CDF /= WORD_CDF[-1]
LEVELS = pa.array([f"plan_{i:02d}" for i in range(50)])
LEVEL_CDF = np.cumsum(1.0 / np.arange(1, 51) ** 1.1)
LEVEL_CDF /= LEVEL_CDF[-1]

Draw = Callable[[np.random.Generator, int], pa.Array]


def _zipf(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(size)), cdf.size - 1)


def _text(rng: np.random.Generator, rows: int, new_share: float = 0.0) -> pa.Array:
    """Rows of 5 to 15 Zipf words; `new_share` of the words replaced by 50 words the reference
    never has."""
    lengths = rng.integers(5, 16, rows)
    words = WORDS.take(pa.array(_zipf(rng, WORD_CDF, int(lengths.sum()))))
    if new_share:
        novel = np.zeros(len(words), dtype=bool)
        novel[rng.choice(len(words), round(new_share * len(words)), replace=False)] = True
        fresh = pa.array([f"zz{i}" for i in range(50)]).take(rng.integers(0, 50, len(words)))
        words = pc.if_else(pa.array(novel), fresh, words)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    return pc.binary_join(pa.ListArray.from_arrays(offsets, words), " ")


KINDS: dict[str, Draw] = {
    "numeric": lambda rng, rows: pa.array(rng.normal(10.0, 2.0, rows)),
    "integer": lambda rng, rows: pa.array(rng.poisson(3.0, rows)),
    "two_levels": lambda rng, rows: pa.array(np.where(rng.random(rows) < 0.5, "yes", "no")),
    "boolean": lambda rng, rows: pa.array(rng.random(rows) < 0.2),
    "many_levels": lambda rng, rows: LEVELS.take(pa.array(_zipf(rng, LEVEL_CDF, rows))),
    "text": _text,
}


def _reference(kind: str, rng: np.random.Generator, rows: int) -> monitoring.Reference:
    if kind != "text":
        return monitoring.summarize(pa.table({"x": KINDS[kind](rng, rows)}))
    # What `summarize` makes of such rows, straight from the word counts (tokenising 100,000
    # words per pair would take most of the test's time; the window is still tokenised).
    tokens = int(rng.integers(5, 16, rows).sum())
    counts = np.bincount(_zipf(rng, WORD_CDF, tokens), minlength=VOCABULARY)
    seen = np.flatnonzero(counts)
    column = {
        "kind": "text",
        "tokens": WORD_LABELS[seen].tolist(),
        "counts": counts[seen].tolist(),
        "total": tokens,
        "rows": rows,
        "singletons": int(np.count_nonzero(counts == 1)),
        "doubletons": int(np.count_nonzero(counts == 2)),
    }
    return monitoring.Reference.from_dict({"schema_version": 1, "columns": {"x": column}})


def _flags(kind: str, reference_rows: int, current_rows: int, pairs: int) -> int:
    rng = np.random.default_rng([list(KINDS).index(kind), reference_rows, current_rows])
    flagged = 0
    for _ in range(pairs):
        reference = _reference(kind, rng, reference_rows)
        current = pa.table({"x": KINDS[kind](rng, current_rows)})
        flagged += monitoring.compare(reference, current).features["x"].drifted
    return flagged


def _allowed(pairs: int) -> int:
    """The most flags a decision valid at 5% gives in `pairs` pairs, bar one time in 1,000."""
    return int(stats.binom.ppf(0.999, pairs, 0.05))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_with_no_drift_at_most_5_percent_of_windows_are_flagged(kind: str) -> None:
    counted = {
        (n, m): (_flags(kind, n, m, pairs), pairs)
        for n, m in CELLS
        for pairs in [PAIRS_AT_10K if m == 10_000 else PAIRS]
    }
    rates = {cell: f"{flags / pairs:.1%}" for cell, (flags, pairs) in counted.items()}
    over = [cell for cell, (flags, pairs) in counted.items() if flags > _allowed(pairs)]
    assert over == [], f"{kind}: false-flag rate per (reference, current) rows: {rates}"
    total = sum(flags for flags, _ in counted.values())
    assert total <= _allowed(sum(pairs for _, pairs in counted.values())), rates


# -- power: real drift is still found -------------------------------------------------------


def _flag_count(draw_ref: Draw, draw_cur: Draw, rows: int, seeds: int = 20) -> int:
    rng = np.random.default_rng(rows)
    flagged = 0
    for _ in range(seeds):
        reference = pa.table({"x": draw_ref(rng, rows)})
        current = pa.table({"x": draw_cur(rng, rows)})
        flagged += monitoring.compare(reference, current).features["x"].drifted
    return flagged


def test_one_percent_new_words_is_flagged_at_10k_rows() -> None:
    rng = np.random.default_rng(5)
    reference = monitoring.summarize(pa.table({"review": _text(rng, 10_000)}))
    for _ in range(5):
        current = pa.table({"review": _text(rng, 10_000, new_share=0.01)})
        feature = monitoring.compare(reference, current).features["review"]
        assert feature.drifted
        (finding,) = feature.findings
        assert finding.startswith("oov_rate:")
        assert feature.statistics["oov_rate"] > feature.statistics["expected_oov_rate"]
        assert set(feature.statistics["new_tokens"]) <= {f"zz{i}" for i in range(50)}


def test_a_window_of_the_reference_distribution_expects_its_rare_words_to_be_new() -> None:
    rng = np.random.default_rng(6)
    reference = monitoring.summarize(pa.table({"review": _text(rng, 100)}))
    feature = monitoring.compare(reference, pa.table({"review": _text(rng, 100)}))
    review = feature.features["review"]
    assert review.statistics["oov_rate"] > 0.1  # a 100-row reference misses many rare words
    assert review.statistics["expected_oov_rate"] > 0.1  # ... and says so
    assert review.p_value is not None
    assert review.p_value > 0.05
    assert not review.drifted
    assert review.findings == []


def _normal(mean: float) -> Draw:
    return lambda rng, rows: pa.array(rng.normal(mean, 1.0, rows))


def _yes(share: float) -> Draw:
    return lambda rng, rows: pa.array(np.where(rng.random(rows) < share, "yes", "no"))


def _true(share: float) -> Draw:
    return lambda rng, rows: pa.array(rng.random(rows) < share)


def _plans(moved: float) -> Draw:
    """The 50 Zipf plans, with `moved` of the rows put on the second plan."""

    def draw(rng: np.random.Generator, rows: int) -> pa.Array:
        picked = np.where(rng.random(rows) < moved, 1, _zipf(rng, LEVEL_CDF, rows))
        return LEVELS.take(pa.array(picked))

    return draw


@pytest.mark.parametrize(
    ("draw_ref", "draw_cur", "rows"),
    [
        pytest.param(_normal(0.0), _normal(0.5), 200, id="mean shift of 0.5 sd at 200 rows"),
        pytest.param(_normal(0.0), _normal(0.1), 10_000, id="mean shift of 0.1 sd at 10k rows"),
        pytest.param(_yes(0.5), _yes(0.75), 100, id="two levels 50/50 to 75/25 at 100 rows"),
        pytest.param(_yes(0.5), _yes(0.65), 500, id="two levels 50/50 to 65/35 at 500 rows"),
        pytest.param(_true(0.2), _true(0.3), 1_000, id="boolean 20% to 30% true at 1k rows"),
        pytest.param(_plans(0.0), _plans(0.07), 10_000, id="7% of rows to one plan at 10k rows"),
    ],
)
def test_real_drift_is_still_flagged(draw_ref: Draw, draw_cur: Draw, rows: int) -> None:
    assert _flag_count(draw_ref, draw_cur, rows) >= 18
