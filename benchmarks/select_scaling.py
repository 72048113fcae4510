"""Time to the exact optimum (one budget, and the whole frontier) as the number of tasks grows.

Random tables with every task subset as a full-size network plus half-size singles (the
paper's candidate set generalised to n tasks): n = 5 -> 36 candidates, 10 -> 1,033,
14 -> 16,397. Losses follow a simple affinity model so that grouping matters: the loss of
task t in group S is base_t * (1 + mean pairwise affinity of t with S + 0.02 (|S|-1) + noise).
Costs are in SNT (full = 1, half = 0.5). Writes benchmarks/results/select_scaling.md.

    python benchmarks/select_scaling.py [--max-tasks 14] [--reference-limit 10] [--milp-max-tasks 13]

With --hoa, pairs tables instead (what `select --estimate hoa` reads: singles at full and half
width and every pair, losses from the same affinity model), the estimator's networks searched
unlisted (column generation, the default from 12 tasks) against the same networks listed
(what selection did before: list every group of 3+ tasks, then the subset programme or the MILP),
each run in a fresh process for its peak memory and cut at --limit seconds. Writes
benchmarks/results/select_scaling_hoa.md.

    python benchmarks/select_scaling.py --hoa [--hoa-tasks 10,12,14,16,18,20] [--limit 300]
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


def pairs_table(n: int, seed: int) -> str:
    """A pairs table in the paper's tab-separated format: line 1 the half-width singles, then the full
    singles and every pair; task t's loss with u is base_t (1 + affinity(t, u) + 0.02 + noise)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 0.5, n)
    aff = rng.normal(0.0, 0.08, (n, n))
    rows = [[round(float(base[t] * (1.06 + rng.normal(0, 0.02))), 6) for t in range(n)]]
    for t in range(n):
        rows.append([round(float(base[t] * (1 + rng.normal(0, 0.02))), 6) if u == t else None for u in range(n)])
    for t, u in itertools.combinations(range(n), 2):
        row = [None] * n
        for a, b in ((t, u), (u, t)):
            row[a] = round(float(base[a] * max(0.5, 1 + aff[a, b] + 0.02 + rng.normal(0, 0.02))), 6)
        rows.append(row)
    return "".join("\t".join("" if v is None else f"{v}" for v in r) + "\n" for r in rows)


def hoa_case(table: str, mode: str, budget: float) -> dict:
    """One measurement, in this (fresh) process: 'listed' = every estimated network listed, then the
    listing solvers (as before column generation); 'colgen' = the pool searched unlisted; 'frontier-' =
    every budget; 'cli' = the `taskgroup select` command itself. Wall and CPU seconds include reading the
    table and estimating (and for 'cli', starting Python)."""
    import resource
    import subprocess

    start, cpu = time.perf_counter(), time.process_time()
    if mode == "cli":
        out = Path(table).with_suffix(".best.json")
        proc = subprocess.run([sys.executable, "-m", "taskgroup", "select", "--losses", table, "--estimate", "hoa",
                               "--budget", f"{budget:g}", "--out", str(out)], capture_output=True, text=True)
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        import json

        doc = json.loads(out.read_text())
        gap_line = next((line for line in proc.stdout.splitlines() if line.startswith("optimality gap")), "")
        return {"wall": time.perf_counter() - start, "cpu": child.ru_utime + child.ru_stime,
                "rss_mb": child.ru_maxrss / 1024, "objective": doc["objective"], "cost": doc["cost"],
                "gap": doc["optimality"]["gap"], "printed": gap_line}
    from taskgroup.search import candidates_from_table, frontier, read_paper_table

    pool = candidates_from_table(read_paper_table(table), estimate="hoa")
    cands, solver = (list(pool), "auto") if mode.endswith("listed") else (pool, "colgen")
    if mode.startswith("frontier"):
        points = frontier(cands, solver=solver).points
        out = {"points": len(points), "costs": [p.cost for p in points], "objectives": [p.objective for p in points],
               "estimated": [p.estimated_networks for p in points], "gap": max(p.gap for p in points),
               "solver": points[0].solver}
    else:
        sel = Selector(cands, solver=solver).solve(budget)
        out = {"objective": sel.objective, "cost": sel.cost, "estimated": sel.estimated_networks, "gap": sel.gap,
               "solver": sel.solver, "networks": sorted(n.candidate.name for n in sel.networks),
               "candidates": len(pool), **({"search": sel.search} if sel.search else {})}
    return dict(out, wall=time.perf_counter() - start, cpu=time.process_time() - cpu,
                rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_case(table: Path, mode: str, budget: float, limit: float) -> dict | None:
    """hoa_case in a fresh process (its own peak memory), or None if it ran past `limit` seconds."""
    import json
    import subprocess

    cmd = [sys.executable, __file__, "--hoa-case", str(table), mode, f"{budget:g}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def hoa_main(args) -> None:
    import tempfile

    load_before = os.getloadavg()
    rows = []
    folder = Path(tempfile.mkdtemp(prefix="select-scaling-"))
    for n in args.hoa_tasks:
        table = folder / f"pairs{n}.txt"
        table.write_text(pairs_table(n, args.seed + n))
        budgets = [4.0] + ([2.5, 7.5] if n == max(args.hoa_tasks) else [])
        for budget in budgets:
            row = {"n": n, "budget": budget}
            row["colgen"] = run_case(table, "colgen", budget, args.limit)
            if n <= args.listed_max_tasks:
                row["listed"] = run_case(table, "listed", budget, args.limit)
            if n == max(args.hoa_tasks) and budget == 4.0:
                row["cli"] = run_case(table, "cli", budget, args.limit)
            rows.append(row)
            print(row, flush=True)
        if n <= args.hoa_frontier_max_tasks:
            row = {"n": n, "frontier": True, "colgen": run_case(table, "frontier-colgen", 0, args.limit)}
            if n <= args.listed_max_tasks:
                row["listed"] = run_case(table, "frontier-listed", 0, args.limit)
            rows.append(row)
            print(row, flush=True)
    load_after = os.getloadavg()
    write_hoa(rows, args, load_before, load_after)


def _agree(a: dict | None, b: dict | None) -> str:
    if a is None or b is None:
        return "-"
    keys = ("costs", "objectives", "estimated") if "points" in a else ("objective", "cost", "estimated")
    same = all(np.allclose(a[k], b[k], rtol=1e-9, atol=1e-12) for k in keys)
    return "yes" if same else "NO"


def write_hoa(rows: list[dict], args, load_before, load_after) -> None:
    def t(r):
        return f"{r['wall']:.1f} ({r['cpu']:.1f})" if r else f"> {args.limit:g} (not finished)"

    def mem(r):
        return f"{r['rss_mb']:.0f}" if r else "-"

    lines = [
        "# Selection with HOA-estimated networks: column generation against listing every network",
        "",
        f"Machine: {machine()}",
        "",
        f"Load: the machine is shared (2 cores; other jobs, e.g. a training benchmark, ran on both during this run). "
        f"Load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, after "
        f"{', '.join(f'{x:.2f}' for x in load_after)}. Times are wall seconds with the process's CPU seconds in "
        "brackets; under this load the CPU time is the measure of the code, the wall time what a user waited.",
        "",
        "Pairs tables (`pairs_table` in `benchmarks/select_scaling.py`, seed per n = n): every task alone at full "
        "and half width and every pair at full width, as `taskgroup train --candidates pairs` trains them; "
        "`select --estimate hoa` estimates every group of 3+ tasks from the pairs (2^n - 1 - n - n(n-1)/2 "
        "networks, a million at 20 tasks). `listed` = every estimated network listed, then the listing solvers "
        "(`--solver auto`: the subset programme here), which is what selection did before; `colgen` = the "
        "estimator's pool searched without listing it (`--solver colgen`; `auto` uses it above 2,100 estimated "
        "networks, from 12 tasks, and for the frontier above 8,200, from 14 tasks). Each "
        "run is a fresh process: times include reading the table, estimating and importing scipy; memory is "
        "the process's peak resident set. `gap` = objective minus the proven lower bound (0: proven optimal). "
        "`agree` = the same objective, cost and number of estimated networks (every frontier point: the same "
        f"costs, objectives and estimated networks). Command: `python benchmarks/select_scaling.py "
        f"{' '.join(sys.argv[1:])}`.",
        "",
        "## One budget",
        "",
        "| tasks | networks | budget (SNT) | colgen (s) | colgen MB | gap | listed (s) | listed MB | agree |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("frontier"):
            continue
        c, lst = r["colgen"], r.get("listed")
        n_nets = f"{c['candidates']:,}" if c else "-"
        lines.append(f"| {r['n']} | {n_nets} | {r['budget']:g} | {t(c)} | {mem(c)} | "
                     f"{c['gap'] if c else '-'} | {t(lst) if 'listed' in r else 'not run'} | "
                     f"{mem(lst) if 'listed' in r else '-'} | {_agree(c, lst)} |")
    lines += ["", "## Every budget (the frontier)", "",
              "| tasks | points | colgen (s) | colgen MB | largest gap | listed (s) | listed MB | agree |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r.get("frontier"):
            continue
        c, lst = r["colgen"], r.get("listed")
        lines.append(f"| {r['n']} | {c['points'] if c else '-'} | {t(c)} | {mem(c)} | {c['gap'] if c else '-'} | "
                     f"{t(lst) if 'listed' in r else 'not run'} | {mem(lst) if 'listed' in r else '-'} | "
                     f"{_agree(c, lst)} |")
    cli = next((r["cli"] for r in rows if r.get("cli")), None)
    if cli:
        lines += ["", f"The command itself at {max(args.hoa_tasks)} tasks (`taskgroup select --losses "
                  f"pairs{max(args.hoa_tasks)}.txt --estimate hoa --budget 4`, process start included): {t(cli)} s, "
                  f"{mem(cli)} MB; it printed \"{cli['printed']}\"."]
    search = [(r["n"], r["budget"], r["colgen"].get("search", {})) for r in rows
              if not r.get("frontier") and r["colgen"]]
    lines += ["", "Column generation's work per run (pricing rounds, columns generated, columns read by the exact "
              "finish): " + "; ".join(f"{n} tasks at {b:g}: {s.get('rounds')}, {s.get('columns_generated')}, "
                                     f"{s.get('finish_columns')}" for n, b, s in search) + "."]
    out = Path(__file__).parent / "results" / "select_scaling_hoa.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


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
    ap.add_argument("--hoa", action="store_true", help="pairs tables with HOA: column generation against listing")
    ap.add_argument("--hoa-tasks", type=lambda v: [int(x) for x in v.split(",")], default=[10, 12, 14, 16, 18, 20])
    ap.add_argument("--listed-max-tasks", type=int, default=16, help="largest n at which the listed search is tried")
    ap.add_argument("--hoa-frontier-max-tasks", type=int, default=16, help="largest n whose frontier is timed (--hoa)")
    ap.add_argument("--limit", type=float, default=300.0, help="seconds a run may take (--hoa)")
    ap.add_argument("--hoa-case", nargs=3, metavar=("TABLE", "MODE", "BUDGET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.hoa_case:
        import json

        table, mode, budget = args.hoa_case
        print(json.dumps(hoa_case(table, mode, float(budget))))
        return
    if args.hoa:
        hoa_main(args)
        return
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
