"""The statistics of replicate runs, with scipy: a configuration's mean and interval, and differences across seeds.

*One configuration* (`summarize`): Student's t interval of the mean, `mean ± t(0.975, n - 1) · sd / √n`, with the
sample standard deviation (n - 1 in the denominator): the usual interval for a handful of seeds.

*Two sides of a comparison* (`compare`), each a {pairing key: value} map, e.g. {seed: final val_accuracy}:

- Where the sides share at least two pairing keys (the same seed means the same initial weights and data order),
  a paired t-test on the shared keys (`scipy.stats.ttest_rel`): the difference is the mean of the paired
  differences a - b, its 95% interval `mean ± t(0.975, n - 1) · sd / √n` over the n pairs.
- Otherwise Welch's t-test on all values (`scipy.stats.ttest_ind(equal_var=False)`): the difference of the means,
  its 95% interval from the Welch–Satterthwaite degrees of freedom.

Both are two-sided at `ALPHA` = 0.05. A difference is `REAL` when p < 0.05, which for these tests is exactly when its
95% interval excludes 0 (the same t distribution gives both), else `WITHIN_NOISE`. It is `UNMEASURED` when the
noise cannot be estimated: fewer than two values on a side, or replicates without any spread. Identical values are
not taken as noise-free evidence of a difference (they mean the seed did not change the result, e.g. it was not
used, so the run-to-run noise is unknown): paired differences that are all equal fall back to Welch's test, which
uses the spread within each side, and sides that both have no spread leave the noise unmeasured.

A difference within noise comes with `needed`: the smallest number of pairs (paired) or of values per side
(Welch) at which the same test detects a true difference of the observed size with 80% power, from the noncentral
t distribution (`scipy.stats.nct`) with the observed standard deviation (of the differences; for Welch the root
mean square of the two sides' standard deviations, equal sides assumed), searched up to `MAX_N`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8
MAX_N = 100  # `needed` above this reads "more than 100"
REAL, WITHIN_NOISE, UNMEASURED = "real", "within noise", "unmeasured"
PAIRED_TEST, WELCH_TEST = "paired t-test", "Welch's t-test"
_NO_SPREAD = 1e-12  # a standard deviation this small relative to the values is no spread at all


@dataclass(frozen=True)
class Summary:
    """n, mean, sample standard deviation and the 95% t interval of the mean of some replicate values.

    `sd`, `low` and `high` are NaN for a single value: one seed measures no noise.
    """

    n: int
    mean: float
    sd: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        """Half the width of the 95% interval (NaN for one value)."""
        return (self.high - self.low) / 2


def summarize(values: Sequence[float]) -> Summary:
    """Summarizes replicate values: n, mean, sample standard deviation and the 95% t interval of the mean.

    Args:
        values: At least one finite value, e.g. the final val_accuracy of each seed of one configuration.

    Returns:
        The summary; with one value, `sd`, `low` and `high` are NaN.

    Raises:
        ValueError: If `values` is empty.
    """
    if not values:
        raise ValueError("summarize needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    sd = _sd(values)
    half = float(stats.t.ppf((1 + CONFIDENCE) / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class Comparison:
    """The difference a - b between two sides, its 95% interval, the test and the verdict.

    Attributes:
        difference: The mean paired difference (paired), or the difference of the means (Welch, unmeasured).
        low: The 95% interval's lower end (NaN when unmeasured).
        high: Its upper end (NaN when unmeasured).
        p_value: The two-sided p-value (NaN when unmeasured).
        test: `PAIRED_TEST`, `WELCH_TEST`, or "" when unmeasured.
        n_a: How many values of side a the difference uses (the pairs, when paired).
        n_b: How many values of side b it uses.
        sd: The noise the test saw: the sd of the paired differences, or for Welch the root mean square of the
            sides' sds (NaN when unmeasured).
        verdict: `REAL`, `WITHIN_NOISE` or `UNMEASURED`.
        needed: Within noise only: pairs (paired) or values per side (Welch) that would detect a difference of
            this size with 80% power; `MAX_N + 1` stands for more than `MAX_N`. None otherwise.
        reason: Why the noise is unmeasured ("" otherwise).
    """

    difference: float
    low: float
    high: float
    p_value: float
    test: str
    n_a: int
    n_b: int
    sd: float
    verdict: str
    needed: int | None = None
    reason: str = ""

    @property
    def paired(self) -> bool:
        return self.test == PAIRED_TEST


def compare(a: Mapping[Hashable, float], b: Mapping[Hashable, float]) -> Comparison:
    """Compares two sides across seeds: a paired t-test where they share two or more keys, else Welch's t-test.

    Args:
        a: Side a: {pairing key (a seed, or other keys' values and the seed): value}.
        b: Side b, the same way.

    Returns:
        The comparison of a - b (see the module docstring for the tests and verdicts).

    Raises:
        ValueError: If a side is empty.
    """
    if not a or not b:
        raise ValueError("compare needs at least one value on each side")
    shared = [key for key in a if key in b]
    if len(shared) >= 2:
        differences = [a[key] - b[key] for key in shared]
        if not _no_spread(differences, [*(a[key] for key in shared), *(b[key] for key in shared)]):
            result = stats.ttest_rel([a[key] for key in shared], [b[key] for key in shared])
            return _tested(math.fsum(differences) / len(shared), result, PAIRED_TEST, len(shared), len(shared),
                           _sd(differences))  # fmt: skip
    values_a, values_b = list(a.values()), list(b.values())
    difference = math.fsum(values_a) / len(values_a) - math.fsum(values_b) / len(values_b)
    if min(len(values_a), len(values_b)) < 2:
        return _unmeasured(difference, len(values_a), len(values_b), "one value on a side")
    if _no_spread(values_a, values_a + values_b) and _no_spread(values_b, values_a + values_b):
        return _unmeasured(difference, len(values_a), len(values_b), "every seed gave the same value")
    result = stats.ttest_ind(values_a, values_b, equal_var=False)
    noise = math.sqrt((_sd(values_a) ** 2 + _sd(values_b) ** 2) / 2)
    return _tested(difference, result, WELCH_TEST, len(values_a), len(values_b), noise)


def needed_n(difference: float, sd: float, paired: bool, power: float = POWER, alpha: float = ALPHA) -> int:
    """Returns the smallest n at which a two-sided t-test detects a true `difference` with `power`.

    Args:
        difference: The difference to detect (its sign does not matter).
        sd: The noise: the sd of paired differences (paired), or each side's sd (two equal-sized sides).
        paired: Paired t-test on n pairs (df n - 1, noncentrality d√n), else the two-sample t-test with n values
            per side (df 2n - 2, noncentrality d√(n/2)), d = |difference| / sd.
        power: The probability of detecting it.
        alpha: The two-sided significance level.

    Returns:
        n (pairs, or values per side), at least 2; `MAX_N + 1` when more than `MAX_N` would be needed.
    """
    if not sd > 0 or difference == 0:
        return MAX_N + 1
    effect = abs(difference) / sd

    def powerful(n: int) -> bool:
        df, noncentrality = (n - 1, effect * math.sqrt(n)) if paired else (2 * n - 2, effect * math.sqrt(n / 2))
        critical = stats.t.ppf(1 - alpha / 2, df)
        upper, lower = stats.nct.sf(critical, df, noncentrality), stats.nct.cdf(-critical, df, noncentrality)
        return bool(upper >= power) or bool(upper + lower >= power)  # scipy's far tail can be NaN: it is ~0 there

    low, high = 2, MAX_N + 1  # power grows with n: bisect for the first n that has it
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if powerful(middle) else (middle + 1, high)
    return low


def format_p(p_value: float) -> str:
    """Formats a p-value with two significant digits (`p = 0.14`, `p = 0.0023`), below 0.001 as `p < 0.001`."""
    return "p < 0.001" if p_value < 0.001 else f"p = {float(f'{p_value:.2g}'):g}"


def _tested(difference: float, result, test: str, n_a: int, n_b: int, noise: float) -> Comparison:
    interval = result.confidence_interval(CONFIDENCE)
    p_value = float(result.pvalue)
    real = p_value < ALPHA
    needed = None
    if not real:  # at least one more than it has: a difference it could not resolve needs more
        needed = max(needed_n(difference, noise, test == PAIRED_TEST), min(n_a, n_b) + 1)
    verdict = REAL if real else WITHIN_NOISE
    return Comparison(difference, float(interval.low), float(interval.high), p_value, test, n_a, n_b, noise,
                      verdict, needed)  # fmt: skip


def _unmeasured(difference: float, n_a: int, n_b: int, reason: str) -> Comparison:
    nan = math.nan
    return Comparison(difference, nan, nan, nan, "", n_a, n_b, nan, UNMEASURED, None, reason)


def _sd(values: Sequence[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (len(values) - 1))


def _no_spread(values: Sequence[float], scale: Sequence[float]) -> bool:
    """Whether `values` are all equal, up to float rounding relative to the magnitude of `scale`."""
    return _sd(values) <= _NO_SPREAD * max(1.0, *(abs(value) for value in scale))
