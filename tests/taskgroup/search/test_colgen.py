"""Column generation (selection over estimated networks it never lists) gives the answers of the
solvers that list every candidate: the same objective, cost and number of estimated networks."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from test_solvers_agree import lexicographic_best, tables_with_estimates

import taskgroup.search.colgen as colgen
import taskgroup.search.pricing as pricing
from taskgroup.errors import TaskgroupError
from taskgroup.search import Candidate, Selector, frontier, higher_order_approximation, select, snt_cost
from taskgroup.search.pool import CandidatePool, PairMeanFamily


def same(a, b):
    """Same objective and cost (relative 1e-9) and as many estimated networks: the search's order."""
    assert (a is None) == (b is None)
    if a is not None:
        assert a.objective == pytest.approx(b.objective, rel=1e-9, abs=1e-12)
        assert a.cost == pytest.approx(b.cost, rel=1e-9, abs=1e-12)
        assert a.estimated_networks == b.estimated_networks


def solve(cands, tasks, budget, k=None, solver="colgen", **kw):
    try:
        return select(cands, budget, tasks=tasks, max_networks=k, solver=solver, **kw)
    except TaskgroupError:
        return None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_with_estimates())
def test_listed_tables_match_brute_force(case):
    """On listed candidates alone (rounded losses: ties are common) colgen finds the brute-force order's best."""
    tasks, cands, budget, k = case
    want = lexicographic_best(tasks, cands, budget, k)
    got = solve(cands, tasks, budget, k)
    assert (got is None) == (want is None)
    if got is not None:
        assert (got.objective, got.cost) == pytest.approx(want[:2], rel=1e-9, abs=1e-9)
        assert got.estimated_networks == want[2]
        assert got.gap == 0 and got.optimality()["proven_optimal"]
        assert got.cost <= budget + 1e-9 and (k is None or len(got.networks) <= k)


def hoa_cost(heads: bool):
    """SNT costs, or a trunk by width plus per-task heads (as a device profile prices them)."""
    if not heads:
        return snt_cost
    return lambda width, tasks: (0.8 * width, {t: 0.05 * (1 + int(t[1:]) % 3) * width for t in tasks})


@st.composite
def pair_tables(draw, max_tasks=6):
    """Singles (full, some half width) and most pairs, losses on a coarse grid so that estimates tie."""
    n = draw(st.integers(3, max_tasks))
    tasks = tuple(f"t{i}" for i in range(n))
    heads = draw(st.booleans())
    cost_fn = hoa_cost(heads)
    loss = st.sampled_from([0.2, 0.3, 0.4, 0.5, 0.6])
    measured = []
    for t in tasks:
        fixed, h = cost_fn(1.0, (t,))
        measured.append(Candidate((t,), 1.0, {t: draw(loss)}, fixed, h))
        if draw(st.booleans()):
            fixed, h = cost_fn(0.5, (t,))
            measured.append(Candidate((t,), 0.5, {t: draw(loss)}, fixed, h))
    for a, b in itertools.combinations(tasks, 2):
        if draw(st.integers(0, 9)) == 0:
            continue  # a pair that was never trained
        served = draw(st.sampled_from([(a, b), (a, b), (a, b), (a,), (b,)]))  # some lack one task's loss
        fixed, h = cost_fn(1.0, (a, b))
        measured.append(Candidate((a, b), 1.0, {t: draw(loss) for t in served}, fixed, h))
    pool = higher_order_approximation(measured, cost_fn)
    budget = draw(st.sampled_from([0.9, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0]))
    k = draw(st.one_of(st.none(), st.integers(1, 3)))
    weights = draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(tasks), st.sampled_from([0.0, 0.5, 2.0]))))
    corun = draw(st.sampled_from([0.0, 0.0, 0.1]))
    return tasks, pool, budget, k, weights, corun


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_tables())
def test_hoa_pools_match_listing_every_network(case):
    """The estimator's pool searched unlisted (colgen) against the same pool listed (the branch-and-bound,
    which compares sums with the tie tolerance as colgen does; the listing MILP and subset programme keep
    one network per served set by exact comparison, so a sum one bit lower, e.g. 0.25 + 0.35 against
    0.2 + 0.4, can take an estimated network over a tied trained one)."""
    tasks, pool, budget, k, weights, corun = case
    listed = list(pool)
    want = solve(listed, tasks, budget, k, "reference", weights=weights, corun=corun)
    got = solve(pool, tasks, budget, k, weights=weights, corun=corun)
    same(got, want)
    if got is not None:
        assert got.solver == "colgen" and got.gap == 0
        served = sorted(t for n in got.networks for t in n.served)
        assert served == sorted(tasks)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_tables(max_tasks=4))
def test_hoa_pools_match_brute_force(case):
    """Small pools against the brute-force order (score, cost, estimated networks) over every assignment."""
    tasks, pool, budget, k, _, _ = case
    want = lexicographic_best(tasks, list(pool), budget, k)
    got = solve(pool, tasks, budget, k)
    assert (got is None) == (want is None)
    if got is not None:
        assert (got.objective, got.cost) == pytest.approx(want[:2], rel=1e-9, abs=1e-9)
        assert got.estimated_networks == want[2]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_tables(max_tasks=5))
def test_hoa_frontier_matches_listing(case):
    tasks, pool, _, k, weights, _ = case
    want = frontier(list(pool), tasks=tasks, max_networks=k, weights=weights, solver="reference")
    got = frontier(pool, tasks=tasks, max_networks=k, weights=weights, solver="colgen")
    assert len(got.points) == len(want.points)
    for g, w in zip(got.points, want.points):
        same(g, w)
    doc = got.to_json()
    assert all(p["optimality"]["proven_optimal"] for p in doc["points"]) and doc["proven_optimal"]


def three_tasks(c_in_pairs: float):
    """Tasks a, b, c: singles at 0.5 each; in the pairs a and b at 0.3, c at `c_in_pairs`."""
    measured = [Candidate((t,), 1.0, {t: 0.5}, 1.0, {t: 0.0}) for t in "abc"]
    for x, y in itertools.combinations("abc", 2):
        measured.append(Candidate((x, y), 1.0, {t: 0.3 if t != "c" else c_in_pairs for t in (x, y)}, 1.0,
                                  {x: 0.0, y: 0.0}))
    return measured


def test_a_trained_network_wins_a_tie_with_an_estimated_one():
    """Within 2: a and b from one network (0.3 each) and c alone (0.5). The pair a+b and the estimated a+b+c
    serving a and b (means of 0.3 and 0.3) tie in loss and cost: the trained pair is chosen. Within 1 only
    a+b+c serves all three."""
    pool = higher_order_approximation(three_tasks(0.7), snt_cost)
    for budget, names in [(2.0, ["a+b@1", "c@1"]), (1.0, ["a+b+c@1~est"])]:
        for solver in ("colgen", "reference", "dp", "milp"):
            sel = select(pool, budget, tasks=("a", "b", "c"), solver=solver)
            assert [n.candidate.name for n in sel.networks] == names, (solver, budget)
            assert sel.estimated_networks == (budget == 1.0)


def test_the_cheaper_of_equal_objectives_wins():
    """The estimated a+b+c serves all three at 0.9, as a+b with a half-width c does, for 1 SNT instead of 1.5."""
    pool = higher_order_approximation(three_tasks(0.3) + [Candidate(("c",), 0.5, {"c": 0.3}, 0.5, {"c": 0.0})],
                                      snt_cost)
    for solver in ("colgen", "reference", "dp", "milp"):
        sel = select(pool, 3.0, tasks=("a", "b", "c"), solver=solver)
        assert sel.objective == pytest.approx(0.9) and sel.cost == pytest.approx(1.0), solver
        assert [n.candidate.name for n in sel.networks] == ["a+b+c@1~est"]


def fractional():
    """An LP relaxation with a gap: one network serving a and b at no loss costs 2, the singles 0.5 each
    at loss 1; within 1.5 the LP takes half the network and half the singles (objective 1), a grouping
    only the singles (objective 2)."""
    return [Candidate(("a", "b"), 1.0, {"a": 0.0, "b": 0.0}, 2.0, {}),
            Candidate(("a",), 0.5, {"a": 1.0}, 0.5, {}), Candidate(("b",), 0.5, {"b": 1.0}, 0.5, {})]


def test_the_exact_finish_closes_the_lp_gap():
    sel = select(fractional(), 1.5, tasks=("a", "b"), solver="colgen")
    assert sel.objective == 2.0 and sel.gap == 0 and sel.search["lp_bound"] == pytest.approx(1.0)


def test_without_the_finish_the_gap_is_stated(monkeypatch):
    monkeypatch.setattr(colgen, "MAX_FINISH_COLUMNS", 0)
    sel = select(fractional(), 1.5, tasks=("a", "b"), solver="colgen")
    assert sel.objective == 2.0
    # At least the LP bound (1); the branches on the number of networks raise it, but cannot prove 2.
    assert 1.0 - 1e-9 <= sel.lower_bound < 2.0 and sel.gap == pytest.approx(2.0 - sel.lower_bound)
    doc = sel.to_grouping_json()
    assert doc["optimality"]["proven_optimal"] is False
    assert doc["optimality"]["relative_gap"] == pytest.approx(sel.gap / 2.0)
    assert doc["optimality"]["search"]["finish_columns"] == "more than 0"


def test_exact_solvers_record_a_zero_gap():
    doc = select(fractional(), 1.5, tasks=("a", "b"), solver="milp").to_grouping_json()
    assert doc["optimality"] == {"proven_optimal": True, "lower_bound": 2.0, "gap": 0.0, "relative_gap": 0.0}


def test_infeasible_budget_names_the_cheapest_grouping():
    pool = higher_order_approximation(three_tasks(0.7), snt_cost)
    with pytest.raises(TaskgroupError, match=r"costs 1 snt \(a\+b\+c@1\); use --budget 1"):
        select(pool, 0.9, tasks=("a", "b", "c"), solver="colgen")


# ----- the pool ---------------------------------------------------------------------------
def naive_hoa(measured):
    """The Higher Order Approximation written out: every group of 3+ tasks, per task the mean of its
    losses in the pairs inside the group."""
    kept = [c for c in measured if len(c.tasks) <= 2]
    pairs = {frozenset(c.tasks): c for c in kept if len(c.tasks) == 2}
    tasks = sorted({t for p in pairs for t in p}, key=lambda t: int(t[1:]))
    out = []
    for k in range(3, len(tasks) + 1):
        for group in itertools.combinations(tasks, k):
            losses = {}
            for t in group:
                vals = [pairs[frozenset((t, u))].losses[t] for u in group
                        if u != t and frozenset((t, u)) in pairs and t in pairs[frozenset((t, u))].losses]
                if vals:
                    losses[t] = sum(vals) / len(vals)
            if losses:
                out.append(Candidate(group, 1.0, losses, 1.0, {t: 0.0 for t in group}, estimated=True))
    return kept + out


@settings(max_examples=40, deadline=None)
@given(pair_tables(max_tasks=7))
def test_a_pool_iterates_as_the_list_it_describes(case):
    _, pool, *_ = case
    measured = pool.listed
    listed = list(pool)
    if all(c.head_cost(t) == 0 for c in measured for t in c.tasks):
        assert listed == naive_hoa(measured)
    assert len(pool) == len(listed) == len(measured) + sum(f.size for f in pool.families)
    for i in (0, len(listed) // 2, len(listed) - 1, -1):
        assert pool[i] == listed[i]
    assert pool[1:3] == listed[1:3]
    extra = Candidate(("t0",), 0.25, {"t0": 1.0}, 0.25, {})
    assert list(pool + [extra]) == listed + [extra] and list([extra] + pool) == [extra] + listed


def test_a_family_counts_groups_with_a_pair_inside():
    loss = np.full((5, 5), np.nan)
    loss[0, 1] = loss[1, 0] = 0.5  # one pair among five tasks
    fam = PairMeanFamily(tuple(f"t{i}" for i in range(5)), 1.0, "final", loss, snt_cost)
    # Groups of 3+ holding t0 and t1: 2^3 - 1 of the other three tasks.
    assert fam.size == 7 == len(list(fam))
    full = PairMeanFamily(tuple(f"t{i}" for i in range(5)), 1.0, "final", np.ones((5, 5)), snt_cost)
    assert full.size == 2 ** 5 - 1 - 5 - 10 == len(list(full))


def test_a_cost_model_that_is_not_trunk_plus_heads_is_refused():
    def by_size(width, tasks):
        return width * len(tasks), {t: 0.0 for t in tasks}

    with pytest.raises(TaskgroupError, match=r"trunk\(width\) \+ heads\(width, task\)"):
        PairMeanFamily(("a", "b", "c", "d"), 1.0, "final", np.ones((4, 4)), by_size)


def test_too_many_tasks_for_one_width_is_a_clear_error():
    n = pricing.MAX_FAMILY_TASKS + 1
    tasks = tuple(f"t{i}" for i in range(n))
    singles = [Candidate((t,), 1.0, {t: 1.0}, 1.0, {}) for t in tasks]
    pool = CandidatePool([singles, PairMeanFamily(tasks, 1.0, "final", np.ones((n, n)), snt_cost)])
    with pytest.raises(TaskgroupError, match=f"over {n} tasks .* at most {n - 1}"):
        Selector(pool, tasks, solver="colgen")


def test_auto_lists_small_families_and_generates_large_ones():
    rng = np.random.default_rng(0)
    for n, solver in [(5, "reference"), (12, "colgen")]:
        tasks = tuple(f"t{i}" for i in range(n))
        measured = [Candidate((t,), 1.0, {t: 1.0}, 1.0, {t: 0.0}) for t in tasks]
        measured += [Candidate((a, b), 1.0, {a: float(rng.uniform(0.5, 1)), b: float(rng.uniform(0.5, 1))}, 1.0,
                               {a: 0.0, b: 0.0}) for a, b in itertools.combinations(tasks, 2)]
        pool = higher_order_approximation(measured, snt_cost)
        sel = select(pool, 2.0, tasks=tasks)
        assert sel.solver == solver, n
        assert sel.candidates_total == len(pool) == 2 ** n - 1
        if n == 12:
            same(sel, select(list(pool), 2.0, tasks=tasks, solver="dp"))
            assert math.isclose(sel.lower_bound, sel.objective)


def test_top_k_lists_a_pool_that_selection_would_search_unlisted(monkeypatch):
    """The k-best search cuts network sets in the x/y MILP: it lists the pool, whatever "auto" would do."""
    import importlib

    from taskgroup.search.topk import top_k

    monkeypatch.setattr(importlib.import_module("taskgroup.search.select"), "AUTO_MAX_LISTED", 0)
    pool = higher_order_approximation(three_tasks(0.7) + [Candidate(("c",), 0.5, {"c": 0.45}, 0.5, {"c": 0.0})],
                                      snt_cost)
    assert select(pool, 2.0, tasks=("a", "b", "c")).solver == "colgen"
    got = top_k(pool, 2.0, 4, tasks=("a", "b", "c"))
    want = top_k(list(pool), 2.0, 4, tasks=("a", "b", "c"))
    assert [sorted(n.candidate.name for n in g.networks) for g in got] == \
        [sorted(n.candidate.name for n in g.networks) for g in want]
    assert len(got) == 4 and any(n.candidate.estimated for g in got for n in g.networks)
