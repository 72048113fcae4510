"""The cheapest grouping (what an infeasible budget is told) and the feasibility check before a search."""

import itertools
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from taskgroup.search import Candidate, Selector, build_problem, make_candidate
from taskgroup.search.problem import prune_cost_dominated

ROOT = Path(__file__).resolve().parents[3]


def _random_candidates(rng: random.Random, tasks, heads: bool):
    cands = []
    for k in (1, 2, 3):
        for group in itertools.combinations(tasks, k):
            for width in ((1.0, 0.5) if k == 1 else (1.0,)):
                if rng.random() < 0.6:
                    losses = {t: rng.uniform(0.2, 1.0) for t in group}
                    h = {t: rng.choice([0.0, 0.1, 0.25]) * width if heads else 0.0 for t in group}
                    cands.append(make_candidate(group, width, losses, lambda w, ts, h=h: (w, {t: h[t] for t in ts})))
    for t in tasks:  # every task servable
        if not any(c.tasks == (t,) and c.width == 1.0 for c in cands):
            cands.append(make_candidate((t,), 1.0, {t: 1.0}, lambda w, ts: (1.5, {x: 0.0 for x in ts})))
    return cands


def _brute_cheapest(cands, tasks, k, corun):
    """Every assignment of tasks to networks: the lowest (sum of costs) x (1 + corun (N - 1))."""
    best = None
    for choice in itertools.product(*[[c for c in cands if t in c.losses] for t in tasks]):
        nets = {}
        for t, c in zip(tasks, choice):
            nets.setdefault(id(c), (c, []))[1].append(t)
        if k is not None and len(nets) > k:
            continue
        cost = sum(c.cost(ts) for c, ts in nets.values()) * (1 + corun * (len(nets) - 1))
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("heads", [False, True])
def test_cheapest_matches_brute_force(heads):
    rng = random.Random(3 + heads)
    tasks = ("a", "b", "c", "d")
    for _ in range(12):
        cands = _random_candidates(rng, tasks, heads)
        for corun in (0.0, 0.3):
            selector = Selector(cands, tasks, solver="milp", corun=corun)
            for k in (None, 1, 2):
                want = _brute_cheapest(cands, tasks, k, corun)
                got = selector.cheapest(k)
                assert (got is None) == (want is None)
                if got is not None:
                    assert got.cost == pytest.approx(want, rel=1e-9, abs=1e-12), (corun, k)
                    assert k is None or len(got.networks) <= k
                    # Just below the cheapest nothing fits; at it, the search finds a grouping.
                    assert selector.solve(want * (1 - 1e-6), k) is None
                    assert selector.solve(want, k) is not None


def test_cost_pruning_keeps_what_the_cheapest_needs():
    big = Candidate(("a", "b"), 1.0, {"a": 9.0, "b": 9.0}, 1.0, {"a": 0.1, "b": 0.1})
    sub_dear = Candidate(("a",), 1.0, {"a": 0.1}, 1.0, {"a": 0.2})  # dearer head than `big`: useless for cost
    sub_cheap_head = Candidate(("a",), 0.5, {"a": 0.1}, 1.0, {"a": 0.0})  # cheaper head: kept
    twin = Candidate(("a", "b"), 0.75, {"a": 1.0, "b": 1.0}, 1.0, {"a": 0.1, "b": 0.1})  # same costs as `big`
    prob = build_problem([big, sub_dear, sub_cheap_head, twin], ("a", "b"))
    assert prune_cost_dominated(prob) == [0, 2]


def _write_large_table(path: Path, n_tasks=20, rows=3000, max_tasks=6, seed=1) -> None:
    """The paper's format: line 1 the half-size singles, then one full-size network per line."""
    rng = np.random.default_rng(seed)
    lines = ["\t".join(f"{rng.uniform(0.1, 1):.4f}" for _ in range(n_tasks))]
    seen = set()
    while len(lines) < rows:
        group = tuple(sorted(rng.choice(n_tasks, int(rng.integers(1, max_tasks + 1)), replace=False)))
        if group in seen:
            continue
        seen.add(group)
        cells = [""] * n_tasks
        for t in group:
            cells[t] = f"{rng.uniform(0.1, 1):.4f}"
        lines.append("\t".join(cells))
    path.write_text("\n".join(lines) + "\n")


def test_infeasible_budget_on_a_large_table_is_reported_quickly(tmp_path):
    """20 tasks, 3,000 networks of up to 6 tasks: the cheapest grouping costs 4 SNT, and a budget of 3.5
    lies between that and the relaxation's bound (3.33), so the search itself cannot rule it out
    quickly. It used to take 15 minutes and 530 MB to say so (6 minutes for the cheapest grouping
    alone); now a few seconds."""
    table = tmp_path / "large.txt"
    _write_large_table(table)
    out = tmp_path / "best.json"
    proc = subprocess.run([sys.executable, "-m", "taskgroup", "select", "--losses", str(table), "--budget", "3.5",
                           "--out", str(out)], capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "cheapest grouping serving all 20 tasks costs 4 snt" in proc.stderr and "--budget 4 or more" in proc.stderr
    assert not out.exists()
