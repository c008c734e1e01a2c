"""Candidate and champion compared on the same rows: intervals that cover the true difference
as often as they say, a rule that no longer promotes on noise, and the properties of a paired
comparison (swapping the models mirrors it, identical models never pass a margin).

The simulated pairs are seeded: on each row both models are right (share `both`), only the
candidate (`only_candidate`), only the champion (`only_champion`), or neither, so the true
accuracy difference is `only_candidate - only_champion`."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.paired import (
    PairedRows,
    Verdict,
    check_confidence,
    decide,
    future_counts,
    paired_difference,
)
from loopml.errors import InvalidInput

SEEDS = 400


def _pair(
    seed: int, rows: int, only_candidate: float, only_champion: float, both: float = 0.7
) -> PairedRows:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, rows)
    draw = rng.random(rows)
    candidate_right = (draw < both) | ((draw >= both) & (draw < both + only_candidate))
    champion_alone = (draw >= both + only_candidate) & (
        draw < both + only_candidate + only_champion
    )
    champion_right = (draw < both) | champion_alone
    return PairedRows(
        truth,
        np.where(candidate_right, truth, 1 - truth),
        np.where(champion_right, truth, 1 - truth),
    )


def test_the_exact_accuracy_interval_covers_the_true_difference_as_often_as_it_says() -> None:
    covered = 0
    for seed in range(SEEDS):
        found = paired_difference("accuracy", _pair(seed, 300, 0.12, 0.07), confidence=0.9)
        assert found.method.startswith("exact binomial on ")
        covered += found.low <= 0.05 <= found.high
    assert 0.85 <= covered / SEEDS <= 0.95


def test_the_bootstrap_f1_interval_covers_the_true_difference_about_as_often_as_it_says() -> None:
    population = _pair(10**6, 2_000_000, 0.12, 0.07)
    truth = paired_difference("f1", population, confidence=0.9, resamples=1).estimate
    covered = 0
    for seed in range(SEEDS):
        rows = _pair(seed, 300, 0.12, 0.07)
        found = paired_difference("f1", rows, confidence=0.9, resamples=1_000, seed=seed)
        covered += found.low <= truth <= found.high
    assert found.method == "paired bootstrap, 1,000 resamples"
    assert 0.82 <= covered / SEEDS <= 0.97


def test_a_difference_of_one_point_on_150_rows_no_longer_promotes_half_the_time() -> None:
    old_promotions, passes, undecided = 0, 0, 0
    for seed in range(SEEDS):
        rows = _pair(seed, 150, 0.06, 0.05, both=0.75)
        outcome = decide(rows, metric="accuracy", op=">=", margin=0.01, confidence=0.9)
        old_promotions += outcome.candidate >= outcome.champion + 0.01
        passes += outcome.verdict is Verdict.PASS
        undecided += outcome.verdict is Verdict.UNDECIDED
    assert 0.3 <= old_promotions / SEEDS <= 0.7
    assert passes / SEEDS <= 0.10
    assert undecided / SEEDS >= 0.6


def test_a_clear_difference_on_enough_rows_passes() -> None:
    verdicts = [
        decide(
            _pair(seed, 2_000, 0.15, 0.05), metric="accuracy", op=">=", margin=0.01, confidence=0.9
        ).verdict
        for seed in range(100)
    ]
    assert verdicts.count(Verdict.PASS) >= 99


def test_an_undecided_rule_says_how_many_rows_would_tell() -> None:
    outcome = decide(
        _pair(3, 600, 0.08, 0.05), metric="accuracy", op=">=", margin=0.01, confidence=0.9
    )
    assert outcome.verdict is Verdict.UNDECIDED
    assert outcome.needed_rows is not None
    assert outcome.needed_rows > outcome.rows
    assert outcome.detail.startswith(f"accuracy {outcome.difference:+.3f} [")
    assert "(90% bounds) on 600 rows (exact binomial on " in outcome.detail
    assert outcome.detail.endswith("rows would tell")
    assert ": not sure it clears +0.01; about " in outcome.detail


def test_a_lower_is_better_rule_is_the_mirror_image() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=1_000)
    better = truth + rng.normal(scale=0.5, size=1_000)
    worse = truth + rng.normal(scale=1.0, size=1_000)
    rows = PairedRows(truth, better, worse)
    rule = {"metric": "rmse", "op": "<=", "margin": -0.1, "confidence": 0.9}
    passed = decide(rows, **rule)  # type: ignore[arg-type]
    assert passed.verdict is Verdict.PASS
    assert passed.high <= -0.1
    assert "clears -0.1" in passed.detail
    failed = decide(rows.swapped(), **rule)  # type: ignore[arg-type]
    assert failed.verdict is Verdict.FAIL
    assert "surely does not clear -0.1" in failed.detail


def test_a_rule_with_a_factor_is_judged_by_the_bootstrap() -> None:
    rows = _pair(1, 1_000, 0.15, 0.05)
    outcome = decide(rows, metric="accuracy", op=">=", margin=0.0, factor=1.05, confidence=0.9)
    assert outcome.method == "paired bootstrap, 2,000 resamples"
    assert outcome.difference == pytest.approx(outcome.candidate - 1.05 * outcome.champion)
    assert outcome.detail.startswith("accuracy - 1.05 x champion.accuracy ")


def test_the_point_values_are_those_of_the_gates_metrics() -> None:
    from loopml.monitoring.performance import score

    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 400)
    candidate = np.where(rng.random(400) < 0.7, truth, rng.integers(0, 3, 400))
    champion = np.where(rng.random(400) < 0.6, truth, rng.integers(0, 3, 400))
    proba = [rng.dirichlet(np.ones(3), 400) for _ in range(2)]
    rows = PairedRows(truth, candidate, champion, proba[0], proba[1])
    expected = [score(candidate, truth, proba[0])[1], score(champion, truth, proba[1])[1]]
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
        found = paired_difference(metric, rows, confidence=0.9, resamples=10)
        assert found.candidate == pytest.approx(expected[0][metric]), metric
        assert found.champion == pytest.approx(expected[1][metric]), metric


def test_the_regression_values_are_those_of_the_gates_metrics() -> None:
    from loopml.monitoring.performance import score

    rng = np.random.default_rng(5)
    truth = rng.normal(size=300)
    candidate, champion = truth + rng.normal(size=300), truth + 2 * rng.normal(size=300)
    rows = PairedRows(truth, candidate, champion)
    expected = [score(candidate, truth)[1], score(champion, truth)[1]]
    for metric in ("mae", "rmse", "r2"):
        found = paired_difference(metric, rows, confidence=0.9, resamples=10)
        assert found.candidate == pytest.approx(expected[0][metric]), metric
        assert found.champion == pytest.approx(expected[1][metric]), metric


def test_a_metric_undefined_on_the_rows_is_undecided_and_says_why() -> None:
    labels = np.ones(40)  # constant: R2 divides by zero
    rows = PairedRows(labels, labels + (np.arange(40) < 20), labels * 1.5)
    outcome = decide(rows, metric="r2", op=">=", margin=0.0, confidence=0.9)
    assert outcome.verdict is Verdict.UNDECIDED
    assert outcome.detail.endswith("r2 is undefined on these rows (one class, or constant labels)")


@pytest.mark.parametrize("confidence", [0.5, 1.0, 1.5, -0.2], ids=str)
def test_a_confidence_outside_half_to_one_is_refused_with_the_fix(confidence: float) -> None:
    with pytest.raises(InvalidInput, match=r"not between 0\.5 and 1") as refused:
        check_confidence(confidence)
    assert "--confidence 0.9" in refused.value.hint


def test_a_metric_that_needs_probabilities_says_so() -> None:
    rows = _pair(0, 50, 0.1, 0.1)
    with pytest.raises(InvalidInput, match="roc_auc needs the candidate's probabilities"):
        paired_difference("roc_auc", rows, confidence=0.9)


_LABELS = st.integers(min_value=2, max_value=3).flatmap(
    lambda k: st.integers(min_value=5, max_value=60).flatmap(
        lambda n: st.tuples(
            *(st.lists(st.integers(0, k - 1), min_size=n, max_size=n) for _ in range(3))
        )
    )
)
_METRICS = st.sampled_from(["accuracy", "precision", "recall", "f1"])


def _rows(labels: tuple[list[int], list[int], list[int]]) -> PairedRows:
    return PairedRows(*(np.asarray(each) for each in labels))


@settings(max_examples=60, deadline=None)
@given(_LABELS, _METRICS)
def test_swapping_the_models_negates_the_difference_and_mirrors_the_interval(
    labels: tuple[list[int], list[int], list[int]], metric: str
) -> None:
    rows = _rows(labels)
    found = paired_difference(metric, rows, confidence=0.9, resamples=200)
    swapped = paired_difference(metric, rows.swapped(), confidence=0.9, resamples=200)
    assert swapped.estimate == pytest.approx(-found.estimate, abs=1e-12)
    assert swapped.low == pytest.approx(-found.high, abs=1e-9)
    assert swapped.high == pytest.approx(-found.low, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(_LABELS, _METRICS, st.floats(min_value=0.001, max_value=0.2))
def test_identical_models_never_pass_a_positive_margin(
    labels: tuple[list[int], list[int], list[int]], metric: str, margin: float
) -> None:
    truth, predicted, _ = labels
    rows = _rows((truth, predicted, predicted))
    outcome = decide(rows, metric=metric, op=">=", margin=margin, confidence=0.9, resamples=200)
    assert outcome.difference == 0
    assert outcome.verdict in (Verdict.FAIL, Verdict.UNDECIDED)


@settings(max_examples=60, deadline=None)
@given(_LABELS, _METRICS, st.integers(min_value=0, max_value=2**31))
def test_the_interval_holds_the_estimate_and_a_seed_gives_the_same_result(
    labels: tuple[list[int], list[int], list[int]], metric: str, seed: int
) -> None:
    rows = _rows(labels)
    first = paired_difference(metric, rows, confidence=0.8, resamples=200, seed=seed)
    assert first.low <= first.estimate <= first.high
    assert paired_difference(metric, rows, confidence=0.8, resamples=200, seed=seed) == first


# -- a horizon: the difference over the next rows served ------------------------------------


def test_a_horizon_interval_covers_the_difference_over_the_next_rows_as_often_as_it_says() -> None:
    """The holdout's 1,500 rows and the next 500 rows are drawn from the same world; the 80%
    prediction interval holds the next rows' difference about 80% of the time, where the
    plain interval of the average difference holds it far less often."""
    predicted, plain, seeds = 0, 0, SEEDS // 2
    for seed in range(seeds):
        holdout = _pair(seed, 1_500, 0.08, 0.05)
        future = _pair(10**5 + seed, 500, 0.08, 0.05)
        happened = paired_difference("accuracy", future, confidence=0.8, resamples=1).estimate
        over = paired_difference(
            "accuracy", holdout, confidence=0.8, horizon=500, seed=seed, resamples=500
        )
        assert over.method.startswith("predictive paired bootstrap")
        predicted += over.low <= happened <= over.high
        found = paired_difference("accuracy", holdout, confidence=0.8)
        plain += found.low <= happened <= found.high
    assert 0.73 <= predicted / seeds <= 0.87
    assert plain / seeds < predicted / seeds - 0.15


def test_a_gain_too_small_to_show_over_the_horizon_stays_undecided_however_many_rows() -> None:
    """+0.002 on 20,000 rows is surely positive, but over the next 500 rows it serves worse
    about as often as better: the rule is not passed, and no holdout size would pass it."""
    rows = _pair(3, 20_000, 0.051, 0.049)
    assert decide(rows, metric="accuracy", op=">=", margin=0.0, confidence=0.9).verdict in (
        Verdict.PASS,
        Verdict.UNDECIDED,
    )
    over = decide(rows, metric="accuracy", op=">=", margin=0.0, confidence=0.9, horizon=500)
    assert over.verdict is Verdict.UNDECIDED
    assert over.needed_rows is None
    assert "too small to show surely over 500 rows" in over.detail
    assert "over the next 500 rows" in over.detail


def test_a_clear_gain_passes_over_the_horizon() -> None:
    rows = _pair(4, 2_000, 0.12, 0.03)
    over = decide(rows, metric="accuracy", op=">=", margin=0.0, confidence=0.9, horizon=1_000)
    assert over.verdict is Verdict.PASS
    assert over.horizon == 1_000


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([200, 1_000, 10_000]))
def test_a_horizon_interval_is_never_narrower_than_the_plain_one(seed: int, horizon: int) -> None:
    rows = _pair(seed, 300, 0.1, 0.06)
    plain = paired_difference("f1", rows, confidence=0.8, seed=seed)
    over = paired_difference("f1", rows, confidence=0.8, seed=seed, horizon=horizon)
    assert over.high - over.low >= 0.9 * (plain.high - plain.low)
    assert over.low <= over.estimate <= over.high


@pytest.mark.parametrize("horizon", [0, -5])
def test_a_horizon_that_is_no_number_of_rows_is_refused_with_the_fix(horizon: int) -> None:
    with pytest.raises(InvalidInput, match="--horizon 1000"):
        paired_difference("accuracy", _pair(0, 50, 0.1, 0.1), confidence=0.8, horizon=horizon)


@given(st.integers(0, 10_000), st.integers(1, 40), st.integers(1, 200))
def test_the_next_rows_are_drawn_from_a_resample_and_weigh_as_a_resample_does(
    seed: int, rows: int, horizon: int
) -> None:
    counts = future_counts(np.random.default_rng(seed), 7, rows, horizon)
    assert counts.shape == (7, rows)
    assert np.all(counts >= 0)
    assert counts.sum(axis=1) == pytest.approx(np.full(7, rows))
    drawn = np.rint(counts * horizon / rows)
    assert np.allclose(drawn * rows / horizon, counts)  # whole rows, scaled
