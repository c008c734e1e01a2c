"""Tail probabilities of the tests monitoring runs, from `scipy.special` alone where it can.

`scipy.stats` takes about 0.6 s to import, more than a monitor over a million rows spends on
its summaries; `scipy.special` takes a tenth of that. The distributions below are those
functions (or a few lines over them), and `scipy.stats` is imported only for the exact
small-sample Kolmogorov-Smirnov law, which `scipy.special` does not carry.
"""

from __future__ import annotations

import math

import numpy as np

# scipy's `fisher_exact` counts a table as extreme when its probability is within this relative
# tolerance of the observed one (ties in exact arithmetic that floating point splits).
_FISHER_TIE = 1e-7

# Under this effective sample size n*m/(n+m) the two-sample KS p-value takes the exact
# one-sample law (`kstwo`), as scipy's `ks_2samp(method="asymp")` does; above, the limit.
_KS_EXACT_BELOW = 10_000


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X chi-square with `dof` degrees of freedom."""
    from scipy import special

    return float(special.chdtrc(dof, statistic))


def normal_quantile(level: float) -> float:
    """The standard normal's quantile at `level` (0 < level < 1)."""
    from scipy import special

    return float(special.ndtri(level))


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Asymptotic two-sample Kolmogorov-Smirnov p-value (as scipy's `ks_2samp`, 'asymp')."""
    effective = n * m / (n + m)
    if effective < _KS_EXACT_BELOW:
        from scipy import stats

        return float(stats.kstwo.sf(statistic, max(round(effective), 1)))
    from scipy import special

    return float(special.kolmogorov(statistic * math.sqrt(effective)))


def fisher_p_value(table: np.ndarray) -> float:
    """Two-sided p-value of Fisher's exact test on a 2 x 2 table of counts: the hypergeometric
    probability of every table with the same margins that is no likelier than the observed."""
    (a, b), (c, d) = np.asarray(table, dtype=np.int64).tolist()
    first_row, first_column, total = a + b, a + c, a + b + c + d
    if total == 0 or first_row in (0, total) or first_column in (0, total):
        return 1.0
    low = max(0, first_row - (total - first_column))
    high = min(first_row, first_column)
    k = np.arange(low, high + 1, dtype=np.float64)
    log_p = (
        _log_choose(first_column, k)
        + _log_choose(total - first_column, first_row - k)
        - _log_choose(total, np.array([first_row], dtype=np.float64))
    )
    observed = log_p[a - low]
    extreme = log_p <= observed + math.log1p(_FISHER_TIE)
    return float(min(np.exp(log_p[extreme]).sum(), 1.0))


def _log_choose(n: float, k: np.ndarray) -> np.ndarray:
    from scipy import special

    logs: np.ndarray = special.gammaln(n + 1.0) - special.gammaln(k + 1.0)
    logs -= special.gammaln(n - k + 1.0)
    return logs
