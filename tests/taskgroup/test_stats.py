"""Verdicts on differences: Student's t with the right degrees of freedom at 95% (two-sided), checked
against scipy.stats on known inputs; with one seed, against a spread measured elsewhere."""

import math

import pytest
from scipy import stats as sp

from taskgroup.stats import CONFIDENCE, compare, compare_with_noise, confidence_words, estimate, t_quantile, within_noise


def paired(diffs):
    """Two per-seed results whose seed-by-seed differences are `diffs`."""
    b = {s: 1.0 + 0.1 * s for s in range(len(diffs))}
    return {s: b[s] + d for s, d in enumerate(diffs)}, b


@pytest.mark.parametrize("diffs, verdict, two_se_said", [
    ([0.1, 0.2], "indistinguishable", "higher"),  # 2 seeds: 3 se, but 95% needs 12.7 se
    ([0.1, 0.2, 0.3], "indistinguishable", "higher"),  # 3 seeds: 3.46 se, 95% needs 4.30 se
    ([0.10, 0.12, 0.14], "higher", "higher"),  # 3 seeds: 10.4 se
    ([-0.05, -0.02, -0.04, -0.01, -0.03], "lower", "lower"),  # 5 seeds: 4.2 se, 95% needs 2.78 se
    ([0.03, -0.01, 0.05, 0.0, 0.02], "indistinguishable", "indistinguishable"),  # 5 seeds: 1.7 se
])
def test_paired_verdicts_follow_students_t_with_n_minus_1_degrees_of_freedom(diffs, verdict, two_se_said):
    a, b = paired(diffs)
    c = compare(a, b)
    n = len(diffs)
    se = sp.tstd(diffs) / math.sqrt(n)
    assert c.df == n - 1 and c.confidence == CONFIDENCE == 0.95
    assert c.threshold == pytest.approx(sp.t.ppf(0.975, n - 1) * se, rel=1e-12)
    assert c.p_value == pytest.approx(sp.ttest_rel(list(a.values()), list(b.values())).pvalue, rel=1e-9)
    assert c.verdict == verdict
    assert ("indistinguishable" if abs(c.difference.mean) <= 2 * se else two_se_said) == two_se_said  # the old rule
    assert "95% confidence (two-sided)" in c.text() and f"{n - 1} degrees of freedom" in c.text()


def test_the_critical_values_and_the_false_alarm_rate_of_two_standard_errors():
    assert t_quantile(1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile(4) == pytest.approx(2.7764, abs=1e-4)
    # two standard errors calls a difference that is not there this often (two-sided)
    assert 2 * sp.t.sf(2, 1) == pytest.approx(0.295, abs=1e-3) and 2 * sp.t.sf(2, 2) == pytest.approx(0.184, abs=1e-3)
    assert confidence_words() == "95% confidence (two-sided)"
    with pytest.raises(ValueError):
        t_quantile(0)


def test_one_seed_against_a_measured_spread():
    """d / s follows t with the measurement's degrees of freedom; with one grouping's spread sigma the
    difference of two groupings trained independently spreads sqrt(2) sigma."""
    sigma, df = 0.0179, 12
    spread = math.sqrt(2) * sigma
    near = compare_with_noise(0.05, spread, df, "sqrt(2) x one grouping's")
    assert near.threshold == pytest.approx(sp.t.ppf(0.975, df) * spread) and near.verdict == "indistinguishable"
    assert near.p_value == pytest.approx(2 * sp.t.sf(0.05 / spread, df))
    assert compare_with_noise(-0.06, spread, df, "x").verdict == "lower"
    # 2 sigma of one grouping (the old one-seed threshold) is only 1.41 spreads of a difference: ~84% confidence
    assert 1 - 2 * sp.norm.sf(2 * sigma / spread) == pytest.approx(0.843, abs=1e-3)
    assert compare({0: 1.0}, {0: 2.0}).verdict == "unknown"


def test_within_noise_is_a_one_sample_t_test():
    assert within_noise([0.01, 0.02, 0.03]) is True  # 3.46 se < 4.30
    assert within_noise([0.01, 0.011, 0.012]) is False
    assert within_noise([0.5]) is None
    e = estimate([1.0, 2.0, 3.0])
    assert (e.mean, e.std, e.n) == (2.0, 1.0, 3) and e.stderr == pytest.approx(1 / 3 ** 0.5)


def test_pooled_std_pools_squares_about_each_series_own_mean():
    from taskgroup.stats import pooled_std

    std, df = pooled_std([[1.0, 2.0, 3.0], [10.0, 14.0]])  # squares 2 + 8 over 2 + 1 degrees of freedom
    assert df == 3 and std == pytest.approx(math.sqrt(10 / 3))
    assert pooled_std([[5.0, 7.0]]) == (pytest.approx(math.sqrt(2)), 1)


def test_sample_variance_divides_by_n_minus_one_and_matches_scipy():
    from taskgroup.stats import sample_std, sample_variance

    assert sample_variance([1.0, 2.0, 3.0]) == 1.0 and sample_std([5.0, 7.0]) == pytest.approx(math.sqrt(2))
    values = [0.3, 1.7, 2.2, 9.1]
    assert sample_std(values) == pytest.approx(sp.tstd(values))
