"""The MILP, the reference branch-and-bound and exact pruning agree on random tables."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from taskgroup.errors import TaskgroupError
from taskgroup.search import Candidate, Selector, build_problem, frontier, prune_dominated, select


@st.composite
def tables(draw):
    n_tasks = draw(st.integers(2, 5))
    tasks = tuple(f"t{i}" for i in range(n_tasks))
    subsets = [s for k in range(1, n_tasks + 1) for s in itertools.combinations(tasks, k)]
    chosen = draw(st.lists(st.sampled_from(subsets), min_size=1, max_size=14, unique=True))
    head_costs = draw(st.booleans())
    loss = st.floats(0.0, 2.0, allow_nan=False).map(lambda v: round(v, 3))  # rounding makes ties common
    cost = st.sampled_from([0.0, 0.1, 0.25, 0.5])
    cands = []
    for s in chosen:
        served = draw(st.lists(st.sampled_from(s), min_size=1, unique=True))  # some trained tasks lack a loss
        cands.append(Candidate(tasks=s, width=1.0, losses={t: draw(loss) for t in served},
                               fixed_cost=draw(st.sampled_from([0.5, 1.0, 1.5])),
                               head_costs={t: draw(cost) if head_costs else 0.0 for t in s}))
    # Half-size singles for a few tasks, so widths differ too.
    for t in draw(st.lists(st.sampled_from(tasks), unique=True, max_size=n_tasks)):
        cands.append(Candidate(tasks=(t,), width=0.5, losses={t: draw(loss)}, fixed_cost=0.5,
                               head_costs={t: draw(cost) if head_costs else 0.0}))
    # Every task needs some network; add singles where missing.
    for t in tasks:
        if not any(t in c.losses for c in cands):
            cands.append(Candidate(tasks=(t,), width=1.0, losses={t: draw(loss)}, fixed_cost=1.0, head_costs={t: 0.0}))
    budget = draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0]))
    k = draw(st.one_of(st.none(), st.integers(1, 3)))
    return tasks, cands, budget, k


def brute_force(tasks, cands, budget, k):
    """Enumerate every task -> network assignment (exponential; tiny tables only)."""
    best = None
    options = [[c for c in cands if t in c.losses] for t in tasks]
    for assign in itertools.product(*options):
        nets = {id(c): c for c in assign}
        if k is not None and len(nets) > k:
            continue
        cost = sum(c.fixed_cost for c in nets.values()) + sum(c.head_cost(t) for t, c in zip(tasks, assign))
        if cost > budget + 1e-9:
            continue
        score = sum(c.losses[t] for t, c in zip(tasks, assign))
        if best is None or (score, cost) < best:
            best = (score, cost)
    return best


def solve(tasks, cands, budget, k, solver, prune=True, formulation="auto"):
    try:
        s = select(cands, budget, tasks=tasks, max_networks=k, solver=solver, prune=prune, formulation=formulation)
    except TaskgroupError:
        return None
    assert s.cost <= budget + 1e-6
    assert k is None or len(s.networks) <= k
    assert sorted(s.served_by) == sorted(tasks) and all(n.served for n in s.networks)
    return s.objective, s.cost


@settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_milp_equals_reference(case):
    tasks, cands, budget, k = case
    b = solve(tasks, cands, budget, k, "reference")
    for solver, formulation in (("milp", "partition"), ("milp", "assignment"), ("dp" if k is None else "milp", "auto")):
        a = solve(tasks, cands, budget, k, solver, formulation=formulation)
        assert (a is None) == (b is None)
        if a is not None:
            assert a[0] == pytest.approx(b[0], rel=1e-9, abs=1e-9)
            assert a[1] == pytest.approx(b[1], rel=1e-9, abs=1e-9)  # ties broken by cost, exactly


@settings(max_examples=60, deadline=None)
@given(tables())
def test_against_brute_force_and_without_pruning(case):
    tasks, cands, budget, k = case
    expected = brute_force(tasks, cands, budget, k)
    for solver, prune, form in [("reference", True, "auto"), ("reference", False, "auto"),
                                ("milp", False, "partition"), ("milp", False, "assignment"),
                                ("dp" if k is None else "reference", False, "auto")]:
        got = solve(tasks, cands, budget, k, solver, prune, form)
        assert (got is None) == (expected is None)
        if got is not None:
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=int(__import__("os").environ.get("FRONTIER_EXAMPLES", 30)), deadline=None)
@given(tables())
def test_frontier_matches_per_budget_optimum(case):
    tasks, cands, _, k = case
    fr = frontier(cands, tasks=tasks, max_networks=k, solver="milp" if k is not None else "dp")
    objs = [p.objective for p in fr.points]
    costs = [p.cost for p in fr.points]
    assert objs == sorted(objs, reverse=True) and costs == sorted(costs)
    assert len(set(costs)) == len(costs)
    ref = Selector(cands, tasks, solver="reference")
    for budget in sorted({0.0, *costs, *(c - 0.01 for c in costs), costs[-1] + 1} if costs else {1.0}):
        want = ref.solve(budget, k) if budget >= 0 else None
        got = fr.optimum_at(budget)
        assert (want is None) == (got is None), budget
        if want is not None:
            assert got.objective == pytest.approx(want.objective, rel=1e-9, abs=1e-9)


@st.composite
def tables_with_estimates(draw):
    """Random tables where some networks' losses are estimated: ties with trained ones are common."""
    import dataclasses

    tasks, cands, budget, k = draw(tables())
    flags = draw(st.lists(st.booleans(), min_size=len(cands), max_size=len(cands)))
    cands = [dataclasses.replace(c, estimated=f) for c, f in zip(cands, flags)]
    # Copies of some networks, estimated, under a bigger task set: the estimate contains the trained one.
    for c in draw(st.lists(st.sampled_from(cands), max_size=3, unique_by=id)):
        extra = [t for t in tasks if t not in c.tasks]
        if extra and not c.estimated:
            bigger = tuple(t for t in tasks if t in c.tasks or t == extra[0])
            if not any(set(o.tasks) == set(bigger) and o.width == c.width for o in cands):
                # As good on some tasks, better on others (e.g. HOA's mean of two pairs, one of them this one).
                losses = {t: max(0.0, v - draw(st.sampled_from([0.0, 0.0, 0.05]))) for t, v in c.losses.items()}
                losses[extra[0]] = draw(st.floats(0.0, 2.0).map(lambda v: round(v, 3)))
                cands.append(Candidate(bigger, c.width, losses, c.fixed_cost,
                                       dict(c.head_costs, **{extra[0]: 0.0}), estimated=True))
    return tasks, cands, budget, k


def lexicographic_best(tasks, cands, budget, k):
    """Brute force: lowest score, then lowest cost, then fewest estimated networks."""
    found = []
    for assign in itertools.product(*[[c for c in cands if t in c.losses] for t in tasks]):
        nets = {id(c): c for c in assign}
        cost = sum(c.fixed_cost for c in nets.values()) + sum(c.head_cost(t) for t, c in zip(tasks, assign))
        if (k is None or len(nets) <= k) and cost <= budget + 1e-9:
            found.append((sum(c.losses[t] for t, c in zip(tasks, assign)), cost, sum(c.estimated for c in nets.values())))
    if not found:
        return None
    s = min(f[0] for f in found)
    found = [f for f in found if f[0] <= s + 1e-9]
    c = min(f[1] for f in found)
    return s, c, min(f[2] for f in found if f[1] <= c + 1e-9)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_with_estimates())
def test_ties_go_to_trained_networks(case):
    tasks, cands, budget, k = case
    want = lexicographic_best(tasks, cands, budget, k)
    for solver, prune, form in [("reference", True, "auto"), ("milp", True, "partition"),
                                ("milp", True, "assignment"), ("milp", False, "partition"),
                                ("dp" if k is None else "milp", True, "auto")]:
        try:
            got = select(cands, budget, tasks=tasks, max_networks=k, solver=solver, prune=prune, formulation=form)
        except TaskgroupError:
            got = None
        assert (got is None) == (want is None)
        if got is not None:
            assert (got.objective, got.cost) == pytest.approx(want[:2], rel=1e-9, abs=1e-9)
            assert sum(n.candidate.estimated for n in got.networks) == want[2], (solver, prune, form)


def test_pruning_keeps_one_of_identical_and_drops_dominated():
    a = Candidate(("a", "b"), 1.0, {"a": 1.0, "b": 1.0}, 1.0, {"a": 0.0, "b": 0.0})
    same = Candidate(("a", "b"), 0.5, {"a": 1.0, "b": 1.0}, 1.0, {"a": 0.0, "b": 0.0})
    worse = Candidate(("a",), 1.0, {"a": 1.5}, 1.0, {"a": 0.0})
    cheaper_head = Candidate(("a",), 0.5, {"a": 1.5}, 1.0, {"a": -0.0})
    pricey_head = Candidate(("a", "b"), 2.0, {"a": 0.9, "b": 0.9}, 1.0, {"a": 0.2, "b": 0.0})
    prob = build_problem([a, same, worse, cheaper_head, pricey_head], ("a", "b"))
    # `worse` is dominated by `a`; `same` duplicates `a`; `pricey_head` has a better loss but a dearer head: kept.
    assert prune_dominated(prob) == [0, 4]


def test_head_costs_change_the_answer():
    # One shared trunk serving both is cheap only if its heads are cheap.
    both = Candidate(("a", "b"), 1.0, {"a": 1.0, "b": 1.0}, 0.5, {"a": 0.5, "b": 0.5})
    sa = Candidate(("a",), 1.0, {"a": 0.8}, 0.6, {"a": 0.0})
    sb = Candidate(("b",), 1.0, {"b": 0.8}, 0.6, {"b": 0.0})
    for solver in ("milp", "reference"):
        s = select([both, sa, sb], 1.2, tasks=("a", "b"), solver=solver)
        assert s.objective == pytest.approx(1.6) and s.cost == pytest.approx(1.2)
        # The shared network with both heads costs 1.5: too dear alone at 1.0, the only choice with one network.
        with pytest.raises(TaskgroupError):
            select([both, sa, sb], 1.0, tasks=("a", "b"), solver=solver, max_networks=1)
        s = select([both, sa, sb], 1.5, tasks=("a", "b"), solver=solver, max_networks=1)
        assert s.objective == pytest.approx(2.0) and len(s.networks) == 1


def test_infeasible_budget_names_cheapest():
    c = [Candidate(("a",), 1.0, {"a": 1.0}, 1.0, {}), Candidate(("b",), 0.5, {"b": 1.0}, 0.5, {})]
    with pytest.raises(TaskgroupError, match=r"costs 1.5 snt.*--budget 1.5"):
        select(c, 1.0, tasks=("a", "b"))
    with pytest.raises(TaskgroupError, match="at most 1 network"):
        select(c, 5.0, tasks=("a", "b"), max_networks=1)


def test_weights_and_normalisation():
    c = [Candidate(("a", "b"), 1.0, {"a": 1.0, "b": 10.0}, 1.0, {}),
         Candidate(("a",), 1.0, {"a": 2.0}, 1.0, {}), Candidate(("b",), 1.0, {"b": 9.0}, 1.0, {})]
    s = select(c, 2.0, tasks=("a", "b"))
    assert s.objective == pytest.approx(10.0)  # a from the pair (1), b alone (9)
    s = select(c, 2.0, tasks=("a", "b"), scales={"a": 1.0, "b": 10.0}, weights={"a": 2.0})
    assert s.objective == pytest.approx(2 * 1.0 / 1 + 9.0 / 10) and s.total_loss == pytest.approx(10.0)
    with pytest.raises(TaskgroupError, match="unknown task"):
        select(c, 2.0, tasks=("a", "b"), weights={"zz": 1.0})
