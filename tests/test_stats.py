"""The report's statistics against hand-computed values (no store, no training)."""

import math
import random

import pytest
from scipy import stats as scipy_stats

from alexnet_sweep.report.stats import (
    MAX_N,
    PAIRED_TEST,
    REAL,
    UNMEASURED,
    WELCH_TEST,
    WITHIN_NOISE,
    compare,
    format_p,
    needed_n,
    summarize,
)  # fmt: skip

T_975_2 = 4.302652729911275  # t(0.975, 2 df), from a table
T_975_4 = 2.7764451051977987  # t(0.975, 4 df)
Z_975, Z_80 = 1.959963984540054, 0.8416212335729143


def test_summarize_is_the_t_interval_of_the_mean():
    summary = summarize([0.61, 0.66, 0.64])
    mean = (0.61 + 0.66 + 0.64) / 3
    sd = math.sqrt(((0.61 - mean) ** 2 + (0.66 - mean) ** 2 + (0.64 - mean) ** 2) / 2)
    assert (summary.n, summary.mean, summary.sd) == (3, pytest.approx(mean), pytest.approx(sd))
    assert sd == pytest.approx(0.0251661, abs=1e-7)
    half = T_975_2 * sd / math.sqrt(3)
    assert (summary.low, summary.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert summary.half_width == pytest.approx(half)
    one = summarize([0.5])
    assert one.mean == 0.5 and math.isnan(one.sd) and math.isnan(one.low) and math.isnan(one.half_width)
    with pytest.raises(ValueError):
        summarize([])


def test_a_paired_comparison_is_the_t_test_of_the_differences_by_seed():
    # Differences by seed 0.31, 0.28, 0.31: mean 0.30, sd sqrt((0.01² + 0.02² + 0.01²) / 2) = 0.01732, se 0.01.
    found = compare({0: 0.81, 1: 0.79, 2: 0.80, 3: 0.9}, {0: 0.50, 1: 0.51, 2: 0.49, 4: 0.1})  # 3, 4: no pair
    assert (found.test, found.paired, found.n_a, found.n_b) == (PAIRED_TEST, True, 3, 3)
    assert found.difference == pytest.approx(0.30) and found.sd == pytest.approx(math.sqrt(0.0003))
    assert (found.low, found.high) == (pytest.approx(0.30 - T_975_2 * 0.01), pytest.approx(0.30 + T_975_2 * 0.01))
    t = 0.30 / 0.01
    assert found.p_value == pytest.approx(1 - t / math.sqrt(t * t + 2))  # two-sided p of Student's t on 2 df
    assert found.verdict == REAL and found.needed is None and format_p(found.p_value) == "p = 0.0011"


def test_a_comparison_without_pairs_is_welchs_t_test():
    # Equal sizes and variances (1 each): se = sqrt(1/3 + 1/3), Welch-Satterthwaite df = (2/3)² / (2 (1/3)² / 2) = 4.
    found = compare({"a0": 1.0, "a1": 2.0, "a2": 3.0}, {"b0": 2.0, "b1": 4.0, "b2": 3.0})
    assert (found.test, found.paired, found.n_a, found.n_b) == (WELCH_TEST, False, 3, 3)
    se = math.sqrt(2 / 3)
    assert found.difference == pytest.approx(-1.0) and found.sd == pytest.approx(1.0)
    assert (found.low, found.high) == (pytest.approx(-1 - T_975_4 * se), pytest.approx(-1 + T_975_4 * se))
    assert found.p_value == pytest.approx(2 * scipy_stats.t.sf(1 / se, 4))
    assert found.verdict == WITHIN_NOISE
    # One shared seed is no pairing: Welch over all values.
    assert compare({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 5: 4.0, 6: 3.0}).test == WELCH_TEST


def test_the_interval_excludes_zero_exactly_when_the_difference_is_real():
    rng = random.Random(0)
    for case in range(300):
        n = rng.choice((2, 3, 5))
        a = {seed: rng.gauss(0.02 * (case % 4), 0.02) for seed in range(n)}
        b = {seed + (n if case % 2 else 0): rng.gauss(0, 0.02) for seed in range(rng.choice((2, 3, 5)))}
        found = compare(a, b)
        assert (found.verdict == REAL) == (found.low > 0 or found.high < 0), (a, b)
        assert found.low <= found.difference <= found.high


def test_no_spread_is_no_measured_noise():
    one = compare({0: 0.8, 1: 0.7}, {0: 0.5})
    assert (one.verdict, one.reason, one.test) == (UNMEASURED, "one value on a side", "")
    assert one.difference == pytest.approx(0.25) and math.isnan(one.p_value) and one.needed is None
    same = compare({0: 0.8, 1: 0.8, 2: 0.8}, {0: 0.5, 1: 0.5, 2: 0.5})
    assert (same.verdict, same.reason) == (UNMEASURED, "every seed gave the same value")
    # Differences that are all equal measure no paired noise: Welch's test uses the spread within each side.
    constant = compare({0: 0.81, 1: 0.80, 2: 0.79}, {0: 0.51, 1: 0.50, 2: 0.49})
    assert (constant.test, constant.verdict) == (WELCH_TEST, REAL)


def test_needed_n_from_the_noncentral_t_distribution():
    # Standard power tables (e.g. G*Power), 80% power, two-sided alpha 0.05: one-sample or paired d = 1 needs 10;
    # two samples d = 1 need 17 per group, d = 0.5 need 64.
    assert needed_n(1.0, 1.0, paired=True) == 10
    assert needed_n(-1.0, 1.0, paired=False) == 17
    assert needed_n(0.5, 1.0, paired=False) == 64
    for effect in (0.4, 0.6, 0.8, 1.0, 1.5):  # a little above the normal approximation ((z + z) / d)²
        approximate = ((Z_975 + Z_80) / effect) ** 2
        assert 0 <= needed_n(effect, 1.0, paired=True) - approximate <= 3
        assert 0 <= needed_n(effect, 1.0, paired=False) - 2 * approximate <= 3
    sizes = [needed_n(effect, 0.02, paired=True) for effect in (0.001, 0.005, 0.01, 0.02, 0.05)]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == MAX_N + 1 and sizes[-1] == 4
    assert needed_n(0.0, 0.02, paired=True) == MAX_N + 1 and needed_n(0.01, 0.0, paired=True) == MAX_N + 1


def test_within_noise_needs_more_seeds_than_it_has():
    # Differences -0.02, +0.03, +0.02: mean 0.01, sd 0.02646, d = 0.378; the normal approximation says 55 pairs.
    found = compare({0: 0.70, 1: 0.73, 2: 0.71}, {0: 0.72, 1: 0.70, 2: 0.69})
    assert found.verdict == WITHIN_NOISE and found.needed == needed_n(0.01, found.sd, paired=True)
    assert 55 <= found.needed <= 58 and format_p(found.p_value) == "p = 0.58"


def test_format_p():
    assert [format_p(p) for p in (0.1449, 0.05, 0.0023456, 0.00099, 1.0)] == [
        "p = 0.14", "p = 0.05", "p = 0.0023", "p < 0.001", "p = 1",
    ]  # fmt: skip
