"""What autologging adds to a fit: an XGBClassifier on 10,000 rows, autologging off and on.

    python benchmarks/autolog.py [--rows 10000] [--features 20] [--rounds 100] [--threads 1]
                                 [--runs 7] [--quick] [--profile] [--out F]

Target: autologging adds under 5% to the fit. Each pass fits the same model (an eval set, so
there are per-round metrics to log) once with autologging off and once on, in alternating order,
each inside its own run of a fresh SQLite workspace in a temporary folder; a first fit of each
kind, not counted, pays the lazy imports. xgboost runs on --threads threads (1: on a machine
shared with other work, more threads make the fit's own time swing by tens of percent, which
hides a difference of a few). Wall-clock seconds:
  fit_off_s        the `fit` call inside a run, autologging off
  fit_on_s         the same call with autologging on
  overhead_pct     (median fit_on_s - median fit_off_s) / median fit_off_s x 100: noisy when
                   the machine is busy (the fit's own swing is larger than what is measured)
  fit_cpu_off_s, fit_cpu_on_s, overhead_cpu_pct  the same in CPU seconds of the process
                   (time.process_time), which other programs' load disturbs far less
  logging_s        in each logged fit, the time spent after the model was fitted, before
                   `fit` returned: params, 100 points per eval metric, the frame's digest, the
                   model saved by its flavor (the writes are left to a background thread)
  logging_pct      median logging_s / median fit_off_s x 100: the overhead, measured directly
  end_off_s, end_on_s  leaving the run's `with` block: with autologging, the wait for the
                   background writes (params, metrics, tags, the model's blobs) of its fit
  first_fit_on_s   the first logged fit of the process (lazy imports of the flavor's libraries)
--profile prints the 25 costliest functions of the logged fits (cProfile, cumulative) to stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from _common import add_run_options, emit, loopml_version, machine, spread

LOGGING_S: list[float] = []


def _time_logging() -> None:
    """Time what the fit wrapper does once the model is fitted (a benchmark may reach in)."""
    from loopml import autologging

    record = autologging.record_estimator

    def timed(*args: Any) -> None:
        start = time.perf_counter()
        record(*args)
        LOGGING_S.append(time.perf_counter() - start)

    autologging.record_estimator = timed  # type: ignore[assignment]


def _data(rows: int, features: int) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(rows, features)), columns=[f"f{i}" for i in range(features)])
    signal = x["f0"] + 0.5 * x["f1"] - x["f2"] * x["f3"] + rng.normal(scale=0.5, size=rows)
    return x, (signal > 0).astype(int)


def _fit(
    on: bool, x: Any, y: Any, args: argparse.Namespace, profile: cProfile.Profile | None
) -> tuple[float, float, float]:
    """(seconds in `fit`, CPU seconds in `fit`, seconds leaving the run's `with` block)."""
    import xgboost

    import loopml

    model = xgboost.XGBClassifier(
        n_estimators=args.rounds, max_depth=6, n_jobs=args.threads, random_state=0
    )
    with loopml.start_run(name=f"autolog-{'on' if on else 'off'}", autolog=on):
        if profile is not None and on:
            profile.enable()
        start, start_cpu = time.perf_counter(), time.process_time()
        model.fit(x, y, eval_set=[(x, y)], verbose=False)
        fitted, fitted_cpu = time.perf_counter(), time.process_time()
        if profile is not None and on:
            profile.disable()
    return fitted - start, fitted_cpu - start_cpu, time.perf_counter() - fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="xgboost's threads (n_jobs)")
    parser.add_argument("--profile", action="store_true", help="cProfile the logged fits")
    add_run_options(parser, competitor=False)
    parser.set_defaults(runs=7)
    args = parser.parse_args()
    runs = 1 if args.quick else max(args.runs, 5)
    if args.quick:
        args.rows, args.rounds = 500, 10
    _time_logging()
    timings: dict[str, list[float]] = {
        f"{what}_{state}": [] for what in ("fit", "fit_cpu", "end") for state in ("off", "on")
    }
    with tempfile.TemporaryDirectory(prefix="loopml-bench-autolog-") as tmp:
        os.environ["LOOPML_HOME"] = str(Path(tmp) / ".loopml")  # read when the workspace opens
        x, y = _data(args.rows, args.features)
        first_off = _fit(False, x, y, args, None)[0]
        first_on = _fit(True, x, y, args, None)[0]
        LOGGING_S.clear()
        profile = cProfile.Profile() if args.profile else None
        for i in range(runs):
            for on in (False, True) if i % 2 == 0 else (True, False):
                state = "on" if on else "off"
                for what, value in zip(
                    ("fit", "fit_cpu", "end"), _fit(on, x, y, args, profile), strict=True
                ):
                    timings[f"{what}_{state}"].append(value)
        from loopml.bootstrap import reset_default_workspace

        reset_default_workspace()
    if profile is not None:
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    found = {f"{key}_s": spread(values) for key, values in timings.items()}
    found["logging_s"] = spread(LOGGING_S)
    off, off_cpu = found["fit_off_s"]["median"], found["fit_cpu_off_s"]["median"]
    emit(
        {
            "benchmark": "autolog",
            "setup": {
                "rows": args.rows,
                "features": args.features,
                "rounds": args.rounds,
                "threads": args.threads,
                "passes": runs,
            },
            **found,
            "overhead_pct": 100 * (found["fit_on_s"]["median"] - off) / off,
            "overhead_cpu_pct": 100 * (found["fit_cpu_on_s"]["median"] - off_cpu) / off_cpu,
            "logging_pct": 100 * found["logging_s"]["median"] / off,
            "target_pct": 5,
            "first_fit_off_s": first_off,
            "first_fit_on_s": first_on,
            "machine": machine(
                {"loopml": loopml_version(), "xgboost": metadata.version("xgboost")}
            ),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
