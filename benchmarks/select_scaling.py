"""Time to the exact optimum (one budget, and the whole frontier) as the number of tasks grows.

Random tables with every task subset as a full-size network plus half-size singles (the
paper's candidate set generalised to n tasks): n = 5 -> 36 candidates, 10 -> 1,033,
14 -> 16,397. Losses follow a simple affinity model so that grouping matters: the loss of
task t in group S is base_t * (1 + mean pairwise affinity of t with S + 0.02 (|S|-1) + noise).
Costs are in SNT (full = 1, half = 0.5). Writes benchmarks/results/select_scaling.md.

    python benchmarks/select_scaling.py [--max-tasks 14] [--reference-limit 10] [--milp-max-tasks 13]
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
    """(result, wall seconds, CPU seconds of this process): the machine is shared, so both are reported."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def frontier_points(selector: Selector) -> list:
    from taskgroup.search.problem import BUDGET_STEP

    points, budget = [], None
    while True:
        sel = selector.solve(budget)
        if sel is None:
            return points
        points.append(sel)
        budget = sel.cost - BUDGET_STEP * max(1.0, sel.cost)


def fresh_solve(cands, tasks, budget: float, solver: str):
    """Everything one `select` pays: building and pruning the problem, then solving it."""
    sel = Selector(cands, tasks, solver=solver)
    return sel, sel.solve(budget)


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
    ap.add_argument("--milp-max-tasks", type=int, default=13, help="largest n for which the MILP is timed too")
    ap.add_argument("--frontier-max-tasks", type=int, default=14, help="largest n for which the whole frontier is timed")
    ap.add_argument("--budgets-min-tasks", type=int, default=12, help="from this n on, time budgets 2 to 7 SNT each from scratch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "select_scaling.md")
    args = ap.parse_args()
    load_before = os.getloadavg()

    rows = []
    for n in range(args.min_tasks, args.max_tasks + 1):
        tasks, cands = random_candidates(n, args.seed + n)
        budget = n / 2
        (auto, sel), wall, cpu = timed(lambda: fresh_solve(cands, tasks, budget, "auto"))
        row = {"n": n, "candidates": len(cands), "after_pruning": auto.problem.n_candidates, "budget": budget,
               "solver": sel.solver, "auto_s": wall, "auto_cpu": cpu, "objective": sel.objective, "cost": sel.cost}
        if n <= args.milp_max_tasks:
            (_, msel), row["milp_s"], row["milp_cpu"] = timed(lambda: fresh_solve(cands, tasks, budget, "milp"))
            row["agree_milp"] = abs(msel.objective - sel.objective) <= 1e-9 * max(1, sel.objective) \
                and abs(msel.cost - sel.cost) <= 1e-9 * max(1, sel.cost)
        ref = Selector(cands, tasks, solver="reference", prune=True)
        try:
            rsel, row["reference_s"], _ = timed(lambda: ref.solve(budget, time_limit=args.reference_limit))
            row["agree_reference"] = abs(rsel.objective - sel.objective) <= 1e-9 * max(1, sel.objective)
        except SearchTimeout:
            row["reference_s"] = None
        if n >= args.budgets_min_tasks:
            worst = (0.0, 0.0, None)
            for b in np.arange(2.0, 7.01, 0.5):
                _, w, c = timed(lambda: fresh_solve(cands, tasks, float(b), "auto"))
                worst = max(worst, (w, c, float(b)))
            row["budgets_worst_s"], row["budgets_worst_cpu"], row["budgets_worst_at"] = worst
        if n <= args.frontier_max_tasks:
            pts, row["frontier_s"], row["frontier_cpu"] = timed(lambda: frontier_points(Selector(cands, tasks)))
            row["frontier_points"] = len(pts)
        rows.append(row)
        print(row, flush=True)
    load_after = os.getloadavg()

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    def pair(r, key):
        return "-" if r.get(f"{key}_s") is None else f"{r[key + '_s']:.2f} ({r[key + '_cpu']:.2f})"

    lines = [
        "# Exact selection: time vs number of tasks",
        "",
        f"Machine: {machine()}",
        "",
        f"Load: the machine is shared (2 cores; other people's jobs, e.g. a training benchmark, may run on the other "
        f"core or both). Load average (1, 5, 15 min) before the run {', '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {', '.join(f'{x:.2f}' for x in load_after)}. Times are wall seconds with this process's CPU seconds "
        "in brackets; under load the CPU time is the better measure of the code.",
        "",
        "Random tables (`benchmarks/select_scaling.py`, seed per n = n): every task subset as a full-size network "
        "(cost 1 SNT) plus half-size singles (0.5 SNT). Each time includes everything one `select` pays: building the "
        "problem, exact dominance pruning and solving (the first row includes importing scipy.optimize). `default` = "
        "`--solver auto` (its choice in `solver`: `dp` = the dynamic programme over sets of tasks, `milp` = HiGHS, "
        "`reference` = branch-and-bound) at one budget, n/2 SNT; `MILP` = `--solver milp` at the same budget (two or "
        f"three HiGHS solves; \"-\" = not timed, n > {args.milp_max_tasks}); `reference` = the branch-and-bound alone "
        f"(\"-\" = not finished within {args.reference_limit:g} s); `agree` = same objective and cost as the default; "
        "`budgets 2-7` = the slowest of budgets 2, 2.5, ..., 7 SNT, each solved from scratch; `frontier` = every "
        "distinct optimum, all budgets, default solver. Command: "
        f"`python benchmarks/select_scaling.py {' '.join(sys.argv[1:])}`.",
        "",
        "| tasks | candidates | after pruning | solver | default, one budget (s) | MILP (s) | reference (s) | agree | "
        "budgets 2-7, slowest (s) | frontier points | frontier (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        agree = [str(r[k]) for k in ("agree_milp", "agree_reference") if k in r]
        lines.append(f"| {r['n']} | {r['candidates']:,} | {r['after_pruning']:,} | {r['solver']} | {pair(r, 'auto')} | "
                     f"{pair(r, 'milp')} | {fmt(r.get('reference_s'))} | {'/'.join(agree) or '-'} | "
                     f"{pair(r, 'budgets_worst')} | {r.get('frontier_points', '-')} | {pair(r, 'frontier')} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
