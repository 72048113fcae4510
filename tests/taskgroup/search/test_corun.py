"""Selection with a measured co-run overhead: a grouping of N networks costs its sum x (1 + c (N - 1))."""

import itertools
import random

import pytest

from taskgroup.search import Selector, frontier, make_candidate
from taskgroup.search.problem import REL_TOL


def _random_candidates(rng: random.Random, tasks):
    cands = []
    for k in (1, 2, 3):
        for group in itertools.combinations(tasks, k):
            for width in ((1.0, 0.5) if k == 1 else (1.0,)):
                if rng.random() < 0.8:
                    losses = {t: rng.uniform(0.2, 1.0) for t in group}
                    heads = {t: rng.uniform(0.0, 0.3) * width for t in group}
                    cands.append(make_candidate(group, width, losses, lambda w, ts, h=heads: (w, {t: h[t] for t in ts})))
    return cands


def _brute_force(cands, tasks, budget, corun):
    """Every assignment of tasks to candidates that can serve them; best score, then lowest cost."""
    best = None
    options = [[c for c in cands if t in c.losses] for t in tasks]
    for choice in itertools.product(*options):
        nets = {}
        for t, c in zip(tasks, choice):
            nets.setdefault(id(c), (c, []))[1].append(t)
        total = sum(c.cost(tuple(ts)) for c, ts in nets.values()) * (1 + corun * (len(nets) - 1))
        if total > budget * (1 + 1e-9):
            continue
        score = sum(c.losses[t] for t, c in zip(tasks, choice))
        if best is None or score < best[0] - 1e-9 or (abs(score - best[0]) <= 1e-9 and total < best[1]):
            best = (score, total)
    return best


@pytest.mark.parametrize("solver", ["milp", "reference"])
def test_corun_selection_matches_brute_force(solver):
    rng = random.Random(7)
    tasks = ("a", "b", "c", "d")
    for _ in range(25):
        cands = _random_candidates(rng, tasks)
        if not all(any(t in c.losses for c in cands) for t in tasks):
            continue
        corun = rng.choice([0.05, 0.15, 0.4])
        selector = Selector(cands, tasks, solver=solver, corun=corun)
        for budget in (1.2, 1.8, 2.5, 3.5):
            want = _brute_force(cands, tasks, budget, corun)
            got = selector.solve(budget)
            if want is None:
                assert got is None
                continue
            assert got is not None and got.objective == pytest.approx(want[0], abs=1e-9)
            assert got.cost <= budget * (1 + REL_TOL)
            assert got.corun_factor == pytest.approx(1 + corun * (len(got.networks) - 1))
            assert got.cost == pytest.approx(got.networks_cost * got.corun_factor)


def test_a_grouping_that_fits_only_without_the_overhead_is_not_chosen():
    flat = lambda w, ts: (w, {t: 0.0 for t in ts})  # noqa: E731  (cost = width)
    cands = [make_candidate((t,), 0.5, {t: 0.5}, flat) for t in "abc"]
    cands.append(make_candidate(("a", "b", "c"), 1.0, {"a": 0.6, "b": 0.6, "c": 0.6}, flat))
    plain = Selector(cands, ("a", "b", "c")).solve(1.5)
    assert len(plain.networks) == 3 and plain.cost == pytest.approx(1.5)  # three half singles just fit
    shared = Selector(cands, ("a", "b", "c"), corun=0.1).solve(1.5)
    assert len(shared.networks) == 1 and shared.cost == pytest.approx(1.0)  # 1.5 x 1.2 = 1.8 would not
    points = frontier(cands, tasks=("a", "b", "c"), corun=0.1).points
    assert [round(p.cost, 9) for p in points] == [1.0, 1.65, 1.8]  # 1 network; triple + a half single; 3 singles
