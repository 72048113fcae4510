"""Time to the exact optimum (one budget, and the whole frontier) as the number of tasks grows.

Random tables with every task subset as a full-size network plus half-size singles (the
paper's candidate set generalised to n tasks): n = 5 -> 36 candidates, 10 -> 1,033,
14 -> 16,397. Losses follow a simple affinity model so that grouping matters: the loss of
task t in group S is base_t * (1 + mean pairwise affinity of t with S + 0.02 (|S|-1) + noise).
Costs are in SNT (full = 1, half = 0.5). Writes benchmarks/results/select_scaling.md.

    python benchmarks/select_scaling.py [--max-tasks 14] [--reference-limit 20] [--frontier-max-tasks 12]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskgroup.search import Candidate, Selector  # noqa: E402
from taskgroup.search.reference import SearchTimeout  # noqa: E402


def random_candidates(n: int, seed: int) -> tuple[tuple[str, ...], list[Candidate]]:
    rng = np.random.default_rng(seed)
    tasks = tuple(f"t{i}" for i in range(n))
    base = rng.uniform(0.05, 0.5, n)
    aff = rng.normal(0.0, 0.08, (n, n))
    cands = []
    for k in range(1, n + 1):
        for group in itertools.combinations(range(n), k):
            losses = {}
            for t in group:
                others = [aff[t, u] for u in group if u != t]
                rel = 1 + (np.mean(others) if others else 0.0) + 0.02 * (k - 1) + rng.normal(0, 0.02)
                losses[tasks[t]] = round(float(base[t] * max(rel, 0.5)), 6)
            cands.append(Candidate(tuple(tasks[t] for t in group), 1.0, losses, 1.0, {tasks[t]: 0.0 for t in group}))
    for t in range(n):
        loss = round(float(base[t] * (1.06 + rng.normal(0, 0.02))), 6)
        cands.append(Candidate((tasks[t],), 0.5, {tasks[t]: loss}, 0.5, {tasks[t]: 0.0}))
    return tasks, cands


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def frontier_points(selector: Selector) -> list:
    from taskgroup.search.problem import BUDGET_STEP

    points, budget = [], None
    while True:
        sel = selector.solve(budget)
        if sel is None:
            return points
        points.append(sel)
        budget = sel.cost - BUDGET_STEP * max(1.0, sel.cost)


def machine() -> str:
    from taskgroup.profile.device import cpu_model

    cpu = cpu_model()
    import scipy

    return (f"CPU: {cpu}; {os.cpu_count()} logical cores; Python {platform.python_version()}; "
            f"numpy {np.__version__}; scipy {scipy.__version__} (HiGHS via scipy.optimize.milp); {platform.platform()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-tasks", type=int, default=5)
    ap.add_argument("--max-tasks", type=int, default=14)
    ap.add_argument("--reference-limit", type=float, default=20.0, help="seconds allowed to the branch-and-bound per solve")
    ap.add_argument("--frontier-max-tasks", type=int, default=14, help="largest n for which the whole frontier is timed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "select_scaling.md")
    args = ap.parse_args()

    rows = []
    for n in range(args.min_tasks, args.max_tasks + 1):
        tasks, cands = random_candidates(n, args.seed + n)
        budget = n / 2
        milp, t_prune = timed(lambda: Selector(cands, tasks, solver="milp"))
        sel, t_milp = timed(lambda: milp.solve(budget))
        row = {"n": n, "candidates": len(cands), "after_pruning": milp.problem.n_candidates, "budget": budget,
               "prune_s": t_prune, "milp_s": t_milp, "objective": sel.objective, "cost": sel.cost}
        ref = Selector(cands, tasks, solver="reference", prune=True)
        try:
            rsel, t_ref = timed(lambda: ref.solve(budget, time_limit=args.reference_limit))
            row["reference_s"] = t_ref
            row["agree"] = abs(rsel.objective - sel.objective) <= 1e-9 * max(1, sel.objective)
        except SearchTimeout:
            row["reference_s"] = None
        if n <= args.frontier_max_tasks:
            pts, t_front = timed(lambda: frontier_points(milp))
            row["frontier_points"], row["frontier_s"] = len(pts), t_front
        rows.append(row)
        print(row, flush=True)

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    lines = [
        "# Exact selection: time vs number of tasks",
        "",
        f"Machine: {machine()}",
        "",
        "Random tables (`benchmarks/select_scaling.py`, seed per n = n): every task subset as a full-size network "
        "(cost 1 SNT) plus half-size singles (0.5 SNT). One budget = n/2 SNT. `prune` = building the problem and "
        "exact dominance pruning; `MILP` = building the MILP and solving it (two HiGHS solves: best loss, then least cost "
        "among the optimal groupings; the first row includes importing scipy.optimize, ~0.25 s); `reference` = the branch-and-bound at the same budget "
        f"(\"-\" = not finished within {args.reference_limit:g} s); `frontier` = every distinct optimum, all budgets "
        f"(MILP, pruning done once; \"-\" = not timed, n > {args.frontier_max_tasks}). Command: "
        f"`python benchmarks/select_scaling.py {' '.join(sys.argv[1:])}`.",
        "",
        "| tasks | candidates | after pruning | prune (s) | MILP one budget (s) | prune + MILP (s) | reference (s) | agree | frontier points | frontier (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['n']} | {r['candidates']:,} | {r['after_pruning']:,} | {fmt(r['prune_s'])} | {fmt(r['milp_s'])} | "
                     f"{fmt(r['prune_s'] + r['milp_s'])} | {fmt(r.get('reference_s'))} | {r.get('agree', '-')} | "
                     f"{r.get('frontier_points', '-')} | {fmt(r.get('frontier_s'))} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
