"""How good is each way of choosing a grouping, against the ground truth of every subset trained?

On the built-in scenes (default preset, the paper's five tasks) this trains every subset of
tasks at full width plus the half-width singles, with several seeds and with the ESA snapshot
recorded, into one resumable run directory. With every network's real losses known, each
selection method can be scored exactly: at every budget from 1.0 to 3.0 SNT (the paper's
units: a full network costs 1, a half one 0.5), per seed, the total test loss of the grouping
the method chooses (its chosen networks trained fully, as the pipeline's finalize stage does),
its regret against the test-oracle optimum (the best grouping on test: unattainable, the floor)
and against exhaustive selection on validation (what training everything buys), and the
training compute the method spent, counted from the store (network-seconds and networks).

Methods: exhaustive (every subset, chosen on validation); HOA from the pairs (the paper);
HOA + top-k re-ranking (the k best HOA groupings' networks trained, chosen among measured);
ESA (every subset trained for a fraction, chosen on those losses); TAG (the lookahead with the
optimizer's momentum buffer, and without it where the run measured that kind: the lookahead of
TAG's published code), and gradient-cosine affinity from one all-task run (when the run has an
affinity table); one network; the best independent singles that fit (chosen on validation); the
mean of random groupings.

    python benchmarks/grouping_quality.py [--run-dir DIR] [--seeds 0,1,2] [--esa 0.2] [--top-k 3]

Results: benchmarks/results/grouping_quality.{json,md,png}, with the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from _common import PrintProgress, machine, machine_line

RESULTS = Path(__file__).resolve().parent / "results"
BUDGETS = tuple(1.0 + 0.25 * i for i in range(9))  # 1.0 .. 3.0 SNT
RANDOM_DRAWS = 200
Net = tuple  # (tasks, width, served)


@dataclass
class Choice:
    networks: list[Net]  # the grouping that is deployed: (tasks trained, width, tasks served)
    trained: set  # (frozenset(tasks), width, stage) of every network the method trained, fully or early


def key(tasks, width) -> tuple:
    return (frozenset(tasks), float(width))


SCALES: dict[str, dict[str, float] | None] = {"val": None, "test": None}  # the objective's per-task divisors


def select_on(cands, budget, tasks, split="val"):
    from taskgroup.errors import TaskgroupError
    from taskgroup.search import select

    try:
        sel = select(cands, budget, tasks=tasks, unit="snt", scales=SCALES[split])
    except TaskgroupError:
        return None
    return [(n.candidate.tasks, n.candidate.width, tuple(n.served)) for n in sel.networks]


def finalize(final_val, networks, budget, tasks):
    """As the pipeline: the chosen networks fully trained, each task served by the best of them on validation."""
    keys = {key(t, w) for t, w, _ in networks}
    return select_on([c for c in final_val if c.key in keys], budget, tasks)


def test_total(final_test, networks) -> float:
    """The selection objective on test: the plain sum, or each loss over its divisor."""
    index = {c.key: c for c in final_test}
    scale = SCALES["test"] or {}
    return math.fsum(index[key(t, w)].losses[task] / scale.get(task, 1.0) for t, w, served in networks for task in served)


def main() -> None:
    from taskgroup.losstable import LossTable
    from taskgroup.search import candidates_from_table
    from taskgroup.tasks import PAPER_TASKS
    from taskgroup.train import candidate_set, make_run_config, train_candidates
    from taskgroup.train.run import parse_seeds
    from taskgroup.train.store import STORE_FILENAME

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench-default"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--esa", type=float, default=0.2, help="fraction of the schedule for the ESA snapshot")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--normalize", default="reference", choices=("none", "reference"),
                        help="selection objective, as the pipeline's --normalize (regret is measured in it)")
    parser.add_argument("--no-affinity", dest="affinity", action="store_false",
                        help="skip the TAG / gradient-cosine methods (they train the all-task network with tracking)")
    parser.add_argument("--train-only", action="store_true", help="train (or resume) and stop")
    args = parser.parse_args()

    tasks, seeds = PAPER_TASKS, parse_seeds(args.seeds)
    config = make_run_config(args.preset, seed=seeds[0], esa_fraction=args.esa)
    start_machine, start = machine(), time.perf_counter()
    specs = candidate_set("all", tasks)
    table = train_candidates(args.run_dir, tasks, specs, config, seeds=seeds, progress=PrintProgress(),
                             resume=(args.run_dir / STORE_FILENAME).exists())
    if args.affinity:  # the all-task network again, with TAG tracking (its weights and losses do not change);
        # an affinity measured before a kind existed is measured again to add it
        table = train_candidates(args.run_dir, tasks, [], config, seeds=seeds, progress=PrintProgress(),
                                 resume=True, affinity=True)
    if args.train_only:
        return
    if args.normalize == "reference":
        for split in ("val", "test"):
            SCALES[split] = {t: table.reference_losses[t][split] for t in tasks}
    pairs_keys = {key(s.tasks, s.width) for s in candidate_set("pairs", tasks)}
    singles_keys = {key(s.tasks, s.width) for s in candidate_set("singles", tasks)}
    per_seed: dict[int, dict[str, dict[float, dict]]] = {}
    seconds: dict[int, dict] = {}
    for seed in seeds:
        t = table.for_seed(seed)
        final_val = candidates_from_table(t, "val", "final")
        final_test = candidates_from_table(t, "test", "final")
        early_val = candidates_from_table(t, "val", "early")
        wall = {(frozenset(n.tasks), n.width, n.stage): n.wall_time_s for n in t.networks}
        seconds[seed] = wall
        pairs_table = LossTable(t.tasks, [n for n in t.networks if key(n.tasks, n.width) in pairs_keys],
                                t.reference_losses, t.meta)
        hoa = candidates_from_table(pairs_table, "val", "final", estimate="hoa")

        def measured(trained_keys):
            return {(k[0], k[1], "final") for k in trained_keys}

        def exhaustive(b):
            nets = select_on(final_val, b, tasks)
            return nets and Choice(nets, {(k[0], k[1], "final") for k in (c.key for c in final_val)})

        def oracle(b):
            nets = select_on(final_test, b, tasks, "test")
            return nets and Choice(nets, set())

        def hoa_method(b):
            nets = select_on(hoa, b, tasks)
            if nets is None:
                return None
            chosen = finalize(final_val, nets, b, tasks)
            return Choice(chosen, measured(pairs_keys | {key(x, w) for x, w, _ in nets}))

        def esa(b):
            nets = select_on(early_val, b, tasks)
            if nets is None:
                return None
            chosen = finalize(final_val, nets, b, tasks)
            return Choice(chosen, {(k[0], k[1], "early") for k in (c.key for c in early_val)}
                          | measured({key(x, w) for x, w, _ in nets}))

        def one_network(b):
            nets = [(tuple(tasks), 1.0, tuple(tasks))] if b >= 1.0 else None
            return nets and Choice(nets, measured({key(tasks, 1.0)}))

        def singles(b):
            nets = select_on([c for c in final_val if c.key in singles_keys], b, tasks)
            return nets and Choice(nets, measured(singles_keys))

        methods: dict[str, Callable[[float], Choice | None]] = {"exhaustive": exhaustive, "test oracle": oracle, "HOA (pairs)": hoa_method, "ESA": esa,
                   "one network": one_network, "independent singles": singles}
        methods[f"HOA + top-{args.top_k}"] = top_k_method(hoa, final_val, pairs_keys, args.top_k, tasks)
        for name, (fn, estimated, base) in affinity_methods(t, final_val, singles_keys, tasks).items():
            methods[name] = fn
            methods[f"{name} + top-{args.top_k}"] = top_k_method(estimated, final_val, base, args.top_k, tasks)
        per_seed[seed] = {}
        for name, fn in methods.items():
            per_seed[seed][name] = {}
            for b in BUDGETS:
                choice = fn(b)
                if choice is None:
                    continue
                per_seed[seed][name][b] = {
                    "networks": [name_of(n) for n in choice.networks],
                    "test_total": test_total(final_test, choice.networks),
                    "train_s": math.fsum(wall.get(k) or 0.0 for k in choice.trained),
                    "n_trained": len(choice.trained)}
        per_seed[seed]["random groupings (mean)"] = random_mean(final_test, tasks, seed, wall)
    doc = summarize(per_seed, seeds, table, config, args, start_machine, time.perf_counter() - start)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "grouping_quality.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (RESULTS / "grouping_quality.md").write_text(markdown(doc) + "\n")
    plot(doc, RESULTS / "grouping_quality.png")
    print(markdown(doc))


def top_k_method(estimated, final_val, base_keys, k, tasks):
    """Estimate + top-k: train the networks of the k best distinct groupings under the estimate, choose
    among them measured (`base_keys`: the networks the estimate itself needed trained)."""
    from taskgroup.search.topk import top_k

    def method(b):
        groupings = top_k(estimated, b, k, tasks=tasks, unit="snt", scales=SCALES["val"])
        if not groupings:
            return None
        keys = {key(n.candidate.tasks, n.candidate.width) for g in groupings for n in g.networks}
        nets = select_on([c for c in final_val if c.key in keys], b, tasks)
        return nets and Choice(nets, {(x[0], x[1], "final") for x in keys | base_keys})

    return method


def affinity_methods(seed_table, final_val, singles_keys, tasks) -> dict:
    """TAG and gradient-cosine affinity from the all-task network's run: every group estimated from the
    singles and that network, the chosen networks then trained fully (as the pipeline's finalize).
    Returns name -> (method, the estimated candidates, the networks the estimate needed trained)."""
    import itertools

    from taskgroup.search.affinity import affinity_candidates

    if seed_table.affinity is None:
        return {}
    groups = [g for k in range(2, len(tasks)) for g in itertools.combinations(tasks, k)]
    measured = [c for c in final_val if c.key in singles_keys or c.key == key(tasks, 1.0)]
    affinity_keys = singles_keys | {key(tasks, 1.0)}
    methods = {}
    names = {"tag": "TAG affinity", "tag-nomomentum": "TAG without momentum", "cosine": "gradient cosine"}
    for kind in [k for k in names if k in seed_table.affinity.kinds()]:
        estimated = measured + affinity_candidates(seed_table, groups, kind=kind, split="val")

        def method(b, estimated=estimated):
            nets = select_on(estimated, b, tasks)
            if nets is None:
                return None
            chosen = finalize(final_val, nets, b, tasks)
            return Choice(chosen, {(k[0], k[1], "final") for k in affinity_keys | {key(x, w) for x, w, _ in nets}})

        methods[names[kind]] = (method, estimated, affinity_keys)
    return methods


def random_mean(final_test, tasks, seed, wall) -> dict:
    """Mean test total of random groupings that fit each budget (random partitions, random widths), and
    the mean training time of their networks."""
    from taskgroup.pipeline.baselines import random_partition

    rng = random.Random(seed)
    index = {c.key: c for c in final_test}
    out = {}
    for b in BUDGETS:
        totals, seconds = [], []
        for _ in range(50 * RANDOM_DRAWS):
            if len(totals) == RANDOM_DRAWS:
                break
            groups = random_partition(tasks, rng)
            widths = [rng.choice((0.5, 1.0)) for _ in groups]
            if sum(widths) > b + 1e-9 or any(w == 0.5 and len(g) > 1 for g, w in zip(groups, widths)):
                continue  # only half-width singles are trained
            scale = SCALES["test"] or {}
            totals.append(math.fsum(index[key(g, w)].losses[t] / scale.get(t, 1.0) for g, w in zip(groups, widths) for t in g))
            seconds.append(math.fsum(wall.get((frozenset(g), w, "final")) or 0.0 for g, w in zip(groups, widths)))
        if totals:
            out[b] = {"test_total": math.fsum(totals) / len(totals), "draws": len(totals),
                      "train_s": math.fsum(seconds) / len(seconds), "n_trained": 0, "networks": []}
    return out


LETTERS = {"segment_semantic": "s", "depth_zbuffer": "d", "normal": "n", "keypoints2d": "k", "edge_texture": "e"}


def name_of(net) -> str:
    trained, width, served = net
    text = "".join(LETTERS.get(t, t) for t in trained) + f"@{width:g}"
    return text if set(served) == set(trained) else text + "->" + "".join(LETTERS.get(t, t) for t in served)


def summarize(per_seed, seeds, table, config, args, start_machine, wall) -> dict:
    from taskgroup.stats import estimate

    methods = sorted({m for s in seeds for m in per_seed[s]}, key=lambda m: list(per_seed[seeds[0]]).index(m)
                     if m in per_seed[seeds[0]] else 99)
    exhaustive_s = {s: per_seed[s]["exhaustive"][BUDGETS[0]]["train_s"] for s in seeds}
    rows = {}
    for m in methods:
        rows[m] = {}
        for b in BUDGETS:
            if not all(b in per_seed[s].get(m, {}) for s in seeds):
                continue
            totals = [per_seed[s][m][b]["test_total"] for s in seeds]
            oracle = [per_seed[s]["test oracle"][b]["test_total"] for s in seeds]
            exh = [per_seed[s]["exhaustive"][b]["test_total"] for s in seeds]
            regret = [t / o - 1 for t, o in zip(totals, oracle)]
            regret_exh = [t / e - 1 for t, e in zip(totals, exh)]
            compute = [per_seed[s][m][b]["train_s"] / exhaustive_s[s] for s in seeds]
            rows[m][b] = {"test_total": estimate(totals).__dict__, "regret_vs_oracle": estimate(regret).__dict__,
                          "regret_vs_exhaustive": estimate(regret_exh).__dict__,
                          "compute_vs_exhaustive": estimate(compute).__dict__,
                          "n_trained": [per_seed[s][m][b]["n_trained"] for s in seeds],
                          "networks": {s: per_seed[s][m][b]["networks"] for s in seeds}}
    return {"kind": "benchmark_grouping_quality", "schema_version": 1, "machine": start_machine,
            "run_config": config.to_dict(), "objective": args.normalize, "seeds": list(seeds), "budgets_snt": list(BUDGETS),
            "networks_trained": len(table.networks), "wall_s_this_invocation": round(wall, 1),
            "exhaustive_train_s_per_seed": exhaustive_s, "methods": rows, "per_seed": per_seed}


def markdown(doc) -> str:
    from taskgroup.stats import estimate

    rc, seeds = doc["run_config"], doc["seeds"]
    budgets = doc["budgets_snt"]
    lines = [f"# Grouping quality against every subset trained (built-in scenes, {rc['preset']} preset)", "",
             f"Machine: {machine_line(doc['machine'])}",
             f"Recipe: {rc['train']['epochs']} epochs, {rc['train']['lr_schedule']} LR from {rc['train']['lr']}, "
             f"batch {rc['train']['batch_size']}, {rc['data'].get('n_train')} training views; ESA snapshot at "
             f"{rc['esa_fraction']:g} of the schedule. Seeds {', '.join(map(str, seeds))}. Exhaustive training per "
             f"seed: " + ", ".join(f"{v:.0f} s" for v in doc["exhaustive_train_s_per_seed"].values()) + ".", "",
             f"Objective: {doc['objective']} ({'each task loss divided by its trivial predictor' if doc['objective'] == 'reference' else 'plain sum of task losses'}). "
             "Regret = test objective of the method's choice / the best grouping on test at that budget - 1, in % "
             "(mean ± std over seeds). Compute = the method's training network-seconds / exhaustive's (mean over "
             "seeds); the test oracle is the floor, not a method.", "",
             "| method | compute | " + " | ".join(f"{b:g}" for b in budgets) + " | max |",
             "|---|---|" + "---|" * len(budgets) + "---|"]
    for m, row in doc["methods"].items():
        if m == "test oracle":
            continue
        cells, worst = [], []
        for b in budgets:
            r = row.get(b) or row.get(str(b))
            if r is None:
                cells.append("")
                continue
            g = r["regret_vs_oracle"]
            worst.append(g["mean"])
            cells.append(f"{100 * g['mean']:.1f}" + ("" if g["std"] is None else f" ± {100 * g['std']:.1f}"))
        comp = [r["compute_vs_exhaustive"]["mean"] for r in row.values()]
        lines.append(f"| {m} | {100 * math.fsum(comp) / max(len(comp), 1):.0f}% | " + " | ".join(cells)
                     + f" | {100 * max(worst):.1f} |" if worst else "|")
    lines += ["", "Regret against exhaustive selection on validation (% of its test objective, mean over seeds; "
              "negative: the method did better on test than the validation-chosen optimum). Compute: the range over "
              "the budgets with a choice (1.5-3 SNT; below 1.5 only one network fits). The goal: within 1% at every "
              "budget for at most a third of the exhaustive compute.", "",
              "| method | compute | " + " | ".join(f"{b:g}" for b in budgets) + " | worst (1.5-3) |",
              "|---|---|" + "---|" * len(budgets) + "---|"]
    reached = []
    for m, row in doc["methods"].items():
        if m in ("test oracle", "exhaustive"):
            continue
        cells, worst, comp = [], [], []
        for b in budgets:
            r = row.get(b) or row.get(str(b))
            cells.append("" if r is None else f"{100 * r['regret_vs_exhaustive']['mean']:+.1f}")
            if r is not None and b >= 1.5:
                comp.append(r["compute_vs_exhaustive"]["mean"])
                worst.append(r["regret_vs_exhaustive"]["mean"])
        c = math.fsum(comp) / max(len(comp), 1)
        w = max(worst) if worst else float("nan")
        span = f"{100 * min(comp):.0f}-{100 * max(comp):.0f}%" if comp else ""
        lines.append(f"| {m} | {span} | " + " | ".join(cells) + f" | {100 * w:+.2f} |")
        if len(worst) == len([b for b in budgets if b >= 1.5]) and w <= 0.01 and c <= 1 / 3:
            reached.append(m)
    lines += ["", "Methods within 1% of exhaustive at every budget for at most a third of its compute: "
              + (", ".join(reached) if reached else "none") + "."]
    lines += momentum_lines(doc)
    return "\n".join(lines)


def momentum_lines(doc) -> list[str]:
    """TAG's regret with and without the momentum term, budget by budget (mean over seeds), when both ran."""
    rows = doc["methods"]
    if "TAG affinity" not in rows or "TAG without momentum" not in rows:
        return []
    budgets = [b for b in doc["budgets_snt"] if (rows["TAG affinity"].get(b) or rows["TAG affinity"].get(str(b)))
               and (rows["TAG without momentum"].get(b) or rows["TAG without momentum"].get(str(b)))]
    lines = ["", "TAG's lookahead with and without the momentum buffer (the buffer is the same for every source task "
             "and compresses the affinity; benchmarks/results/tag_momentum.md): regret against the test oracle, %, "
             "mean ± std over seeds, and the seeds on which the two chose different groupings.", "",
             "| budget | TAG (with momentum) | TAG without momentum | seeds with another choice |", "|---|---|---|---|"]
    for b in budgets:
        a = rows["TAG affinity"].get(b) or rows["TAG affinity"][str(b)]
        c = rows["TAG without momentum"].get(b) or rows["TAG without momentum"][str(b)]
        differ = [s for s in a["networks"] if a["networks"][s] != c["networks"].get(s)]

        def pct(r):
            g = r["regret_vs_oracle"]
            return f"{100 * g['mean']:.2f}" + ("" if g["std"] is None else f" ± {100 * g['std']:.2f}")
        lines.append(f"| {float(b):g} | {pct(a)} | {pct(c)} | {', '.join(map(str, differ)) or 'none'} |")
    return lines


def plot(doc, path: Path) -> None:
    """Worst regret over the budgets where a choice exists (1.5 SNT and up) against training compute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for m, row in doc["methods"].items():
        rows = [r for b, r in row.items() if float(b) >= 1.5]
        if m == "test oracle" or not rows:
            continue
        comp = 100 * math.fsum(r["compute_vs_exhaustive"]["mean"] for r in rows) / len(rows)
        worst = 100 * max(r["regret_vs_exhaustive"]["mean"] for r in rows)
        ax.scatter([comp], [worst], s=60)
        ax.annotate(m, (comp, worst), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
    ax.axvline(100 / 3, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("training compute, % of training every subset (mean over budgets and seeds)")
    ax.set_ylabel("worst regret vs exhaustive on validation, % (1.5-3 SNT)")
    ax.set_title("Goal: below the dashed line, left of the dotted one")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
