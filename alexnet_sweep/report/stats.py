"""The statistics of replicate runs, with scipy: a configuration's mean and its 95% confidence interval.

The interval is Student's t interval of the mean, `mean ± t(0.975, n - 1) · sd / √n`, with the sample standard
deviation (n - 1 in the denominator): the usual interval for a handful of seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95


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
    sd = math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (n - 1))
    half = float(stats.t.ppf((1 + CONFIDENCE) / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)
