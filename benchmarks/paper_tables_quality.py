"""The selection methods on the paper's own Taskonomy tables: regret and compute, no training needed.

Standley et al. published, for four settings, every network's validation and test losses and
early-stopped validation losses (taskgroup/data/standley2020, see its README). That is enough to
run every method that needs only those numbers, exactly as benchmarks/grouping_quality.py runs
them on the built-in scenes (the same code): exhaustive selection on validation, HOA from the
pairs (+ top-3), ESA on the early table, adaptive rounds from the early table (at 95% and 50%
confidence; training a network reveals its published final losses), one network, the best
independent singles and random groupings. Regret is on the test table against exhaustive
selection and against the test oracle, at budgets 1.25-3 SNT.

Compute has no published times, so it is counted in the paper's own cost unit: training a
network costs its inference cost in SNT (full width 1, half width 0.5) times the fraction of
the schedule trained (the early tables at 0.2: the paper's ESA fraction; setting 3's early
table is named `at4`, taken as the same fraction). Exhaustive is every subset at full width
plus the half-width singles (33.5 units). An adaptive round's survivor is trained from the
start (its early fraction is paid again). The objective is the paper's plain sum of the tables'
(standardised) losses. The tables have no seeds, so adaptive rounds run with a tolerance of 0.

    python benchmarks/paper_tables_quality.py

Results: benchmarks/results/paper_tables_quality.{json,md,png}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from taskgroup.fileio import write_bytes_atomic

from grouping_quality import (RESULTS, Evaluator, Setting, draw_regret_panel, markdown, parse_range,
                              save_figure, summarize)

DATA = Path(__file__).resolve().parent.parent / "taskgroup" / "data" / "standley2020"
EARLY_FRACTION = 0.2
SETTINGS = {  # name -> (what, validation, early validation, test, column names)
    "setting 1": ("5 tasks, small encoder", "results.txt", "results_20.txt", "results_test.txt", "s,d,n,k,e"),
    "setting 2": ("5 tasks, larger encoder", "results_large.txt", "results_large_20.txt", "results_large_test.txt",
                  "s,d,n,k,e"),
    "setting 3": ("5 tasks, less training data", "results_small_data.txt", "results_small_data_at4.txt",
                  "results_small_data_test.txt", "s,d,n,k,e"),
    "setting 4": ("a second set of 5 tasks", "results_alt.txt", "results_alt_20.txt", "results_alt_test.txt",
                  "t0,t1,t2,t3,t4"),
}
BUDGETS = parse_range("1.25-3")


def setting_table(val: str, early: str, test: str, names: str):
    """One LossTable: final networks with validation and test losses, early networks with validation losses."""
    from taskgroup.losstable import LossTable, NetworkResult
    from taskgroup.search.paper_tables import read_paper_table

    tasks = tuple(names.split(","))
    v = read_paper_table(DATA / val, tasks, split="val")
    t = {(frozenset(n.tasks), n.width): n.losses["test"] for n in read_paper_table(DATA / test, tasks, split="test").networks}
    e = read_paper_table(DATA / early, tasks, split="val", stage="early")
    nets = [NetworkResult(n.tasks, n.width, "final", {"val": n.losses["val"], "test": t[(frozenset(n.tasks), n.width)]})
            for n in v.networks]
    nets += [NetworkResult(n.tasks, n.width, "early", {"val": n.losses["val"]}, fraction=EARLY_FRACTION)
             for n in e.networks]
    return LossTable(tasks, nets, meta={"source": f"{val}, {early}, {test}"})


def main() -> None:
    start = time.perf_counter()
    docs = {}
    for name, (what, val, early, test, names) in SETTINGS.items():
        table = setting_table(val, early, test, names)
        wall = {(frozenset(n.tasks), n.width, n.stage): n.width * (EARLY_FRACTION if n.stage == "early" else 1.0)
                for n in table.networks}
        per = {0: Evaluator(Setting(table, wall, None, 0.0), BUDGETS, 3, 0).run()}
        docs[name] = summarize(per, [0], BUDGETS, {"setting": name, "what": what, "files": [val, early, test]})
    doc = {"kind": "benchmark_paper_tables_quality", "schema_version": 1, "budgets_snt": list(BUDGETS),
           "compute_unit": "SNT x schedule fraction", "early_fraction": EARLY_FRACTION,
           "wall_s": round(time.perf_counter() - start, 1), "settings": docs}
    RESULTS.mkdir(exist_ok=True)
    write_bytes_atomic(RESULTS / "paper_tables_quality.json", (json.dumps(doc, indent=1, default=str) + "\n").encode())
    text = overview(docs)
    for name, d in docs.items():
        body = markdown(d, f"{name}: {d['what']}", [f"Files: {', '.join(d['files'])}."])
        text += "\n\n" + body.replace("\n# ", "\n## ").replace("# ", "## ", 1)
    write_bytes_atomic(RESULTS / "paper_tables_quality.md", (text + "\n").encode())
    plot_all(docs, RESULTS / "paper_tables_quality.png")
    print(text)


def overview(docs: dict) -> str:
    methods = list(dict.fromkeys(m for d in docs.values() for m in d["summary"]))
    lines = ["# Selection methods on the paper's Taskonomy tables (no training)", "",
             __doc__.split("\n\n")[2].replace("\n", " "), "",
             "Worst regret over budgets 1.25-3 SNT against exhaustive selection / against the test oracle, and "
             "compute (largest over the budgets) as a share of exhaustive:", "",
             "| method | " + " | ".join(docs) + " |", "|---|" + "---|" * len(docs)]
    for m in methods:
        if m == "exhaustive":
            continue
        cells = []
        for d in docs.values():
            s = d["summary"].get(m)
            cells.append("" if s is None else f"{100 * s['worst_regret_vs_exhaustive']:+.1f}% / "
                                               f"{100 * s['worst_regret_vs_oracle']:+.1f}% at {100 * s['compute_max']:.0f}%")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    cells = [f"{100 * d['summary']['exhaustive']['worst_regret_vs_oracle']:+.1f}%" for d in docs.values()]
    lines.append("| exhaustive (vs test oracle) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_all(docs: dict, path: Path) -> None:
    """One panel per setting: worst regret against exhaustive vs compute, one point per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    for ax, (name, d) in zip(axes.flat, docs.items()):
        draw_regret_panel(ax, d["summary"], f"{name}: {d['what']}",
                          "compute, % of exhaustive (SNT x schedule fraction; largest over budgets)",
                          "worst regret vs exhaustive, % (1.25-3 SNT)", small=True)
    axes.flat[0].legend(loc="upper right", fontsize=7)
    save_figure(fig, path)
    plt.close(fig)

if __name__ == "__main__":
    main()
