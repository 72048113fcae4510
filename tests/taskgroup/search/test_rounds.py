"""Adaptive rounds, the search half: the surrogate's known answers, the bounds against brute force, and
which candidates a round drops, keeps or trains."""

import itertools
import math
import random

import pytest
from scipy.stats import t as student_t

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable, NetworkResult
from taskgroup.search import ESTIMATORS, candidates_from_table, make_candidate, snt_cost
from taskgroup.search.registry import TRAINING_PLANS
from taskgroup.search.rounds import fit_surrogate, largest_gains, plan_round


def cand(tasks, width, losses):
    return make_candidate(tuple(tasks), width, losses, snt_cost)


def test_surrogate_offsets_spread_and_interval_are_the_textbook_numbers():
    d = 0.1
    priors = [cand("a", 1.0, {"a": 1.0}), cand("ab", 1.0, {"a": 2.0, "b": 1.0}), cand("b", 1.0, {"b": 4.0}),
              cand("b", 0.5, {"b": 2.0})]
    finals = [cand("a", 1.0, {"a": 0.5 * math.exp(d)}), cand("ab", 1.0, {"a": 1.0 * math.exp(-d), "b": 0.8}),
              cand("b", 1.0, {"b": 3.2 * math.exp(d / 2)}), cand("b", 0.5, {"b": 1.6 * math.exp(-d / 2)})]
    s = fit_surrogate(priors, finals, confidence=0.95)
    assert s.offsets == pytest.approx({"a": math.log(0.5), "b": math.log(0.8)}, rel=1e-12)
    assert s.counts == {"a": 2, "b": 3} and s.dof == 3
    spread = math.sqrt((2 * d ** 2 + 2 * (d / 2) ** 2) / 3)
    assert s.spread == pytest.approx(spread, rel=1e-12)
    q = student_t.ppf(0.975, 3)
    lo, mid, hi = s.predict("a", 3.0)
    half = q * spread * math.sqrt(1 + 1 / 2)
    assert (lo, mid, hi) == pytest.approx((1.5 * math.exp(-half), 1.5, 1.5 * math.exp(half)), rel=1e-12)
    assert s.predict("c", 3.0) == (0.0, 3.0, math.inf)  # no measured network holds c: no bound


def test_surrogate_without_degrees_of_freedom_bounds_nothing():
    s = fit_surrogate([cand("ab", 1.0, {"a": 1.0, "b": 1.0})], [cand("ab", 1.0, {"a": 0.5, "b": 0.7})])
    assert s.dof == 0 and s.spread is None
    assert s.predict("a", 2.0) == (0.0, 1.0, math.inf)


def test_seed_noise_is_taken_out_of_the_spread():
    """Two seeds: the per-seed residuals vary by +-e inside a network, so within = 2 e^2; the networks'
    mean residuals vary by +-d around the task's offset. True variance = spread^2 - within / 2."""
    d, e = 0.05, 0.03
    keys = [(frozenset("a"), 1.0), (frozenset("ab"), 1.0), (frozenset("b"), 1.0), (frozenset("ab"), 0.5)]
    signs = {keys[0]: {"a": 1}, keys[1]: {"a": -1, "b": 1}, keys[2]: {"b": -1}, keys[3]: {"a": 0, "b": 0}}
    priors, finals, prior_seeds, final_seeds = [], [], {}, {}
    for (tasks, width), sign in signs.items():
        order = tuple(sorted(tasks))
        priors.append(cand(order, width, {t: 1.0 for t in order}))
        per_prior = {0: {t: 1.0 for t in order}, 1: {t: 1.0 for t in order}}
        per_final = {0: {t: math.exp(sign[t] * d + e) for t in order}, 1: {t: math.exp(sign[t] * d - e) for t in order}}
        finals.append(cand(order, width, {t: (per_final[0][t] + per_final[1][t]) / 2 for t in order}))
        prior_seeds[(tasks, width)], final_seeds[(tasks, width)] = per_prior, per_final
    s = fit_surrogate(priors, finals, prior_seeds=prior_seeds, measured_seeds=final_seeds)
    assert s.seeds == 2 and s.within == pytest.approx(2 * e ** 2, rel=1e-12) and s.prior_within == 0.0
    assert s.true_variance == pytest.approx(max(0.0, s.spread ** 2 - e ** 2), rel=1e-12)
    assert s.true_variance < s.spread ** 2


# A two-task problem at budget 1 SNT: one full network for both tasks, or two half-width singles.
D = 0.01  # measured residuals +-D around offset 0


def two_task_round(half_prior: float, tolerance: float, budget=(1.0, 1.0), with_b_half=True, **kw):
    priors = [cand("ab", 1.0, {"a": 1.0, "b": 1.0}), cand("a", 1.0, {"a": 1.0}), cand("b", 1.0, {"b": 1.0}),
              cand("a", 0.5, {"a": half_prior})] + ([cand("b", 0.5, {"b": half_prior})] if with_b_half else [])
    measured = [cand("ab", 1.0, {"a": math.exp(D), "b": math.exp(-D)}), cand("a", 1.0, {"a": math.exp(-D)}),
                cand("b", 1.0, {"b": math.exp(D)})]
    return plan_round(priors, measured, budget, tasks=("a", "b"), tolerance=tolerance, **kw)


def test_a_candidate_that_cannot_change_the_choice_is_dropped():
    plan = two_task_round(half_prior=1.5, tolerance=0.01)
    assert plan.done and plan.train == [] and plan.open == []
    assert set(plan.dropped) == {(frozenset("a"), 0.5), (frozenset("b"), 0.5)}
    # at its optimistic end the pair of halves still loses to the measured all-task network
    q, spread = student_t.ppf(0.975, 2), D * math.sqrt(2)
    optimistic = 3.0 * math.exp(-q * spread * math.sqrt(1 + 1 / 2))
    assert plan.gains[(frozenset("a"), 0.5)] == pytest.approx(math.exp(D) + math.exp(-D) - optimistic, rel=1e-9)


def test_a_candidate_that_can_change_the_choice_is_kept_and_trained():
    plan = two_task_round(half_prior=1.05, tolerance=0.01)
    assert not plan.done and set(plan.train) == {(frozenset("a"), 0.5), (frozenset("b"), 0.5)}
    assert plan.gains[(frozenset("a"), 0.5)] > 0.01


def test_within_the_tolerance_a_candidate_is_dropped():
    gain = two_task_round(half_prior=1.05, tolerance=0.01).gains[(frozenset("a"), 0.5)]
    below = two_task_round(half_prior=1.05, tolerance=gain * 1.001)
    assert below.done and (frozenset("a"), 0.5) in below.dropped
    above = two_task_round(half_prior=1.05, tolerance=gain * 0.999)
    assert not above.done and (frozenset("a"), 0.5) in above.open


def test_the_optimum_under_the_estimates_is_trained_first():
    plan = two_task_round(half_prior=0.9, tolerance=0.01)  # the halves look better than the measured network
    assert plan.train == [(frozenset("a"), 0.5), (frozenset("b"), 0.5)] and "optimum under the estimates" in plan.reason


def test_every_budget_of_the_range_counts():
    """Without b@0.5, a@0.5 fits only beside the all-task network serving b (1.5 SNT): dropped for a
    budget of 1, kept when the range reaches 1.5."""
    at_one = two_task_round(half_prior=0.5, tolerance=0.01, with_b_half=False)
    assert at_one.done and at_one.gains[(frozenset("a"), 0.5)] == -math.inf
    wider = two_task_round(half_prior=0.5, tolerance=0.01, budget=(1.0, 1.5), with_b_half=False)
    assert (frozenset("a"), 0.5) in wider.train


def brute_force_gain(c, optimistic, pessimistic, measured, budgets, tasks):
    """max over budgets of (best pessimistic grouping) - (best optimistic grouping holding c), by enumeration."""
    def groupings(cands):
        for serve in itertools.product(range(len(cands)), repeat=len(tasks)):
            if any(tasks[i] not in cands[j].losses for i, j in enumerate(serve)):
                continue
            used = set(serve)
            yield used, sum(cands[j].fixed_cost for j in used), sum(cands[j].losses[tasks[i]] for i, j in enumerate(serve))

    index = [x.key for x in optimistic]
    best = -math.inf
    for b in budgets:
        ub = min((obj for _, cost, obj in groupings(pessimistic) if cost <= b + 1e-9), default=math.inf)
        lb = min((obj for used, cost, obj in groupings(optimistic) if cost <= b + 1e-9 and index.index(c.key) in used),
                 default=math.inf)
        if lb < math.inf and ub < math.inf:
            best = max(best, ub - lb)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_largest_gains_match_brute_force(seed):
    rng = random.Random(seed)
    tasks = ("a", "b", "c")
    keys = [(g, 1.0) for k in (1, 2, 3) for g in itertools.combinations(tasks, k)] + [((t,), 0.5) for t in tasks]
    measured_keys = {(frozenset(g), w) for g, w in rng.sample(keys, 4)} | {(frozenset(tasks), 1.0)}
    optimistic, pessimistic = [], []
    for g, w in keys:
        point = {t: rng.uniform(0.5, 1.5) for t in g}
        if (frozenset(g), w) in measured_keys:
            optimistic.append(cand(g, w, point))
            pessimistic.append(cand(g, w, point))
        else:
            spread = rng.uniform(0.0, 0.4)
            optimistic.append(cand(g, w, {t: v * (1 - spread) for t, v in point.items()}))
            pessimistic.append(cand(g, w, {t: v * (1 + spread) for t, v in point.items()}))
    lo, hi = 1.0, 2.5
    gains = largest_gains(optimistic, pessimistic, measured_keys, (lo, hi), tasks=tasks)
    budgets = sorted({lo} | {x / 2 for x in range(2, 6)} | {lo + 0.25 * i for i in range(7)})
    for c in optimistic:
        if c.key in measured_keys:
            assert c.key not in gains
            continue
        assert gains[c.key] == pytest.approx(brute_force_gain(c, optimistic, pessimistic, measured_keys, budgets, tasks),
                                             abs=1e-9)


def test_rounds_estimator_reads_the_early_stage():
    tasks = ("a", "b")
    nets = [NetworkResult(("a", "b"), 1.0, "final", {"val": {"a": 0.5, "b": 0.4}}),
            NetworkResult(("a",), 1.0, "final", {"val": {"a": 0.45}})]
    early = [NetworkResult(g, w, "early", {"val": {t: 1.0 for t in g}}, fraction=0.1)
             for g, w in [(("a", "b"), 1.0), (("a",), 1.0), (("b",), 1.0), (("a",), 0.5), (("b",), 0.5)]]
    table = LossTable(tasks, nets + early)
    cands = {c.key: c for c in candidates_from_table(table, "val", "final", estimate="rounds")}
    assert len(cands) == 5 and not cands[(frozenset("ab"), 1.0)].estimated
    # offsets: a from two networks (log 0.5, log 0.45), b from one (log 0.4)
    assert cands[(frozenset("b"), 1.0)].estimated
    assert cands[(frozenset("b"), 1.0)].losses["b"] == pytest.approx(0.4, rel=1e-12)
    assert cands[(frozenset("a"), 0.5)].losses["a"] == pytest.approx(math.sqrt(0.5 * 0.45), rel=1e-12)
    assert "rounds" in ESTIMATORS and TRAINING_PLANS["rounds"] == "rounds"
    with pytest.raises(TaskgroupError, match="no early-stage networks"):
        candidates_from_table(LossTable(tasks, nets), "val", "final", estimate="rounds")
    with pytest.raises(TaskgroupError, match="--stage final"):
        candidates_from_table(table, "val", "early", estimate="rounds")


def test_bad_arguments_are_refused():
    with pytest.raises(TaskgroupError, match="budget range"):
        two_task_round(1.0, 0.01, budget=(2.0, 1.0))
    with pytest.raises(TaskgroupError, match="tolerance"):
        two_task_round(1.0, -1.0)
    with pytest.raises(TaskgroupError, match="round size"):
        two_task_round(1.0, 0.01, round_size=0)
    with pytest.raises(TaskgroupError, match="no grouping of the candidates fits"):
        two_task_round(1.0, 0.01, budget=(0.4, 0.4))
