"""Served-set columns and the dynamic programme over sets of tasks."""

import itertools
import random

import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.search import Selector, build_problem, make_candidate
from taskgroup.search import subsets
from taskgroup.search.problem import served_set_columns


def _random(rng: random.Random, tasks, heads=True):
    cands = []
    for k in range(1, len(tasks) + 1):
        for group in itertools.combinations(tasks, k):
            for width in (1.0, 0.5):
                if rng.random() < 0.5:
                    losses = {t: round(rng.uniform(0.2, 1.0), 2) for t in group}
                    h = {t: rng.choice([0.0, 0.1, 0.2]) * width if heads else 0.0 for t in group}
                    cands.append(make_candidate(group, width, losses, lambda w, ts, h=h: (w, {t: h[t] for t in ts})))
    for t in tasks:
        if not any(c.tasks == (t,) and c.width == 1.0 for c in cands):
            cands.append(make_candidate((t,), 1.0, {t: 1.0}, lambda w, ts: (w, {x: 0.0 for x in ts})))
    return cands


def test_columns_are_the_per_set_pareto_fronts():
    """Against a plain enumeration: for every served set, exactly the (cost, score) Pareto-best networks."""
    rng = random.Random(5)
    tasks = ("a", "b", "c", "d")
    for _ in range(10):
        prob = build_problem(_random(rng, tasks), tasks)
        cols = served_set_columns(prob)
        want = set()
        for s_bits in range(1, 1 << len(tasks)):
            served = [j for j in range(len(tasks)) if s_bits >> j & 1]
            rows = [(prob.fixed[n] + sum(prob.head[n, j] for j in served), sum(prob.score[n, j] for j in served), n)
                    for n in range(prob.n_candidates) if all(prob.score[n, j] < float("inf") for j in served)]
            best = float("inf")
            for cost, score, n in sorted(rows):
                if score < best:
                    want.add((s_bits, n))
                    best = score
        assert {(int(m), int(o)) for m, o in zip(cols.mask, cols.owner)} == want


def test_the_work_limit_hands_the_problem_to_the_milp(monkeypatch):
    tasks = ("a", "b", "c", "d", "e", "f", "g", "h", "i")  # past the branch-and-bound's size limit
    cands = _random(random.Random(1), tasks, heads=False)
    want = Selector(cands, tasks, solver="dp").solve(4.0)
    assert want.solver == "dp"
    monkeypatch.setattr(subsets, "MAX_WORK", 10)
    with pytest.raises(subsets.TooMuchWork):
        subsets.SubsetFronts(build_problem(cands, tasks), max_work=10)
    got = Selector(cands, tasks).solve(4.0)  # auto: the fronts give up, the MILP answers the same
    assert got.solver == "milp" and got.objective == pytest.approx(want.objective) and got.cost == pytest.approx(want.cost)
    with pytest.raises(TaskgroupError, match="too large for the subset fronts"):
        Selector(cands, tasks, solver="dp").solve(4.0)
    with pytest.raises(TaskgroupError, match="does not limit the number of networks"):
        Selector(cands, tasks, solver="dp").solve(4.0, max_networks=2)
