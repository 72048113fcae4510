"""Training strategies side by side on the built-in scenes: losses, wall time, and the grouping chosen.

Trains, per strategy and seed, the network of all five paper tasks and the pairs table (the
pipeline's candidate set: singles at full and half width plus every pair), through the normal
training API, each strategy in its own resumable run directory, with per-task stopping recorded
(it keeps extra checkpoints and does not change the training). Strategies:

- sum: the recipe (one step on the summed loss);
- alternating: one step per task per batch (IUS);
- alternating-independent: as alternating, one optimiser state per task (IO);
- random-groups:2: two random groups of tasks, one step each (all-task network only: on a pair it
  is `alternating` step for step, tests/taskgroup/train/test_strategies.py);
- scale: the sum with each loss over its trivial predictor's training loss (relative weights);
- uncertainty: the sum with learned per-task log-variances (Kendall et al. 2018).

A single-task network trains identically under every update strategy and under `scale` (one task
per step; relative weights are 1), so those strategies' tables reuse the sum's singles; only
`uncertainty` trains its own singles.

Reported: per strategy, the all-task network's per-task and total test loss (mean ± std over
seeds, and the paired difference to sum), its training wall time; the pairs' test losses and the
paired difference to sum; the grouping the pipeline's selection (HOA from the pairs, validation,
reference-normalised objective, the paper's SNT budget units) chooses at 1.2 and 2 SNT and
whether it differs from sum's; and what per-task stopping gains: the test loss if every task of
a network came from its own best epoch (an upper bound: free extra trunks), and the selection
with the stops as candidates of their own (each stop costs its own trunk).

    nice -n 5 python benchmarks/strategies.py [--run-root DIR] [--seeds 0,1,2] [--only all|pairs] [--report-only]
    python benchmarks/strategies.py --rejudge   # verdicts of the results file recomputed (95%, t), no training

Training runs seed by seed (every strategy's all-task network for all seeds first, then the pairs
seed by seed), so an interrupted benchmark reports what it has. Results:
benchmarks/results/strategies.{json,md}, with the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from _common import PrintProgress, machine, machine_line

RESULTS = Path(__file__).resolve().parent / "results"
LETTERS = {"segment_semantic": "s", "depth_zbuffer": "d", "normal": "n", "keypoints2d": "k", "edge_texture": "e"}
# label -> ([train] overrides, trains its own singles, trains the pairs)
STRATEGIES: dict[str, tuple[dict, bool, bool]] = {
    "sum": ({}, True, True),
    "alternating": ({"strategy": "alternating"}, False, True),
    "alternating-independent": ({"strategy": "alternating-independent"}, False, True),
    "random-groups:2": ({"strategy": "random-groups:2"}, False, False),
    "scale": ({"weighting": "scale"}, False, True),
    "uncertainty": ({"weighting": "uncertainty"}, True, True),
}
PAIRS_FROM = {"random-groups:2": "alternating"}  # identical computation on two-task networks
BUDGETS = (1.2, 2.0)


def name_of(net) -> str:
    trained, width, served, stop = net
    text = "".join(LETTERS[t] for t in trained) + f"@{width:g}"
    text = text if set(served) == set(trained) else text + "->" + "".join(LETTERS[t] for t in served)
    return text + (f"[best {LETTERS[stop]}]" if stop else "")


def run_config(label: str, preset: str, seed: int):
    from taskgroup.train import make_run_config

    train = dict(STRATEGIES[label][0], per_task_stopping=True)
    return make_run_config(preset, seed=seed, overrides={"train": train})


def train(args, seeds, tasks) -> None:
    from taskgroup.train import CandidateSpec, candidate_set, train_candidates
    from taskgroup.train.store import STORE_FILENAME
    from taskgroup.train.trainer import load_run_data

    data = load_run_data(run_config("sum", args.preset, seeds[0]), tasks)
    whole = CandidateSpec(tuple(tasks))
    pairs = [s for s in candidate_set("pairs", tasks) if len(s.tasks) == 2]
    singles = [s for s in candidate_set("pairs", tasks) if len(s.tasks) == 1]
    phases = []
    if args.only in (None, "all"):
        phases += [(label, seed, [whole]) for seed in seeds for label in STRATEGIES]
    if args.only in (None, "pairs"):
        phases += [(label, seed, (singles if own else []) + pairs) for seed in seeds
                   for label, (_, own, trains_pairs) in STRATEGIES.items() if trains_pairs]
    for label, seed, specs in phases:
        run_dir = args.run_root / label.replace(":", "-")
        print(f"== {label}, seed {seed}: {len(specs)} networks", flush=True)
        train_candidates(run_dir, tasks, specs, run_config(label, args.preset, seeds[0]), seeds=(seed,),
                         resume=(run_dir / STORE_FILENAME).exists(), progress=PrintProgress(), data=data)


def load_tables(args, tasks):
    from taskgroup.losstable import LossTable

    out = {}
    for label in STRATEGIES:
        path = args.run_root / label.replace(":", "-")
        if (path / "losses.json").is_file():
            out[label] = LossTable.load(path)
    return out


def by_key(table, stops=False):
    nets = table.task_stops if stops else table.networks
    return {(frozenset(n.tasks), n.width) + ((n.stopped_for,) if stops else ()): n for n in nets if n.stage == "final"}


def pairs_table(label, tables, tasks):
    """The strategy's pairs table: its own pairs (or those of the identical strategy) and its own singles,
    or sum's where they are the same computation. None if incomplete."""
    from taskgroup.losstable import LossTable
    from taskgroup.train import candidate_set

    own_singles = STRATEGIES[label][1]
    pair_source = tables.get(PAIRS_FROM.get(label, label))
    single_source = tables.get(label if own_singles else "sum")
    if pair_source is None or single_source is None:
        return None
    nets, stops = [], []
    for spec in candidate_set("pairs", tasks):
        source = single_source if len(spec.tasks) == 1 else pair_source
        net = by_key(source).get((frozenset(spec.tasks), spec.width))
        if net is None:
            return None
        nets.append(net)
        stops += [s for s in source.task_stops if s.stage == "final" and frozenset(s.tasks) == frozenset(spec.tasks)
                  and s.width == spec.width]
    return LossTable(tuple(tasks), nets, single_source.reference_losses, pair_source.meta, None, stops)


def common_seeds(nets) -> list[int]:
    seeds = None
    for n in nets:
        seeds = set(n.seeds) if seeds is None else seeds & set(n.seeds)
    return sorted(seeds or ())


def choose(table, budget, tasks, scales_val, per_task_stopping=False, seed=None):
    """The pipeline's selection in SNT units: HOA from the pairs, exact search on validation."""
    from taskgroup.errors import TaskgroupError
    from taskgroup.search import candidates_from_table, select

    t = table.for_seed(seed) if seed is not None else table
    cands = candidates_from_table(t, "val", "final", estimate="hoa", per_task_stopping=per_task_stopping)
    try:
        sel = select(cands, budget, tasks=tasks, unit="snt", scales=scales_val)
    except TaskgroupError:
        return None
    return [(n.candidate.tasks, n.candidate.width, tuple(n.served), n.candidate.stopped_for) for n in sel.networks]


def grouping_test(grouping, measured, seed, scales) -> float | None:
    """Normalised test objective of a grouping whose networks are all measured (else None)."""
    total = 0.0
    for trained, width, served, stop in grouping:
        net = measured.get((frozenset(trained), width) + ((stop,) if stop else ()))
        if net is None or seed not in net.seeds:
            return None
        total += math.fsum(net.seeds[seed].losses["test"][t] / scales[t] for t in served)
    return total


def report(args, seeds, tasks, wall_s: float, start_machine) -> dict:
    from taskgroup.stats import compare, estimate

    tables = load_tables(args, tasks)
    if "sum" not in tables:
        raise SystemExit("no sum run yet: train first")
    ref = tables["sum"].reference_losses
    scales_test = {t: ref[t]["test"] for t in tasks}
    scales_val = {t: ref[t]["val"] for t in tasks}
    whole_key = (frozenset(tasks), 1.0)
    doc: dict = {"machine": start_machine, "preset": args.preset, "seeds_asked": list(seeds), "tasks": list(tasks),
                 "strategies": {k: v[0] for k, v in STRATEGIES.items()}, "wall_s_this_invocation": wall_s,
                 "all_task": {}, "pairs": {}, "grouping": {}, "per_task_stopping": {}}
    base_whole = by_key(tables["sum"]).get(whole_key)

    def per_seed_total(net, normalised=False):
        return {s: math.fsum(r.losses["test"][t] / (scales_test[t] if normalised else 1.0) for t in tasks)
                for s, r in net.seeds.items()}

    # -- the all-task network -------------------------------------------------------------
    for label, table in tables.items():
        net = by_key(table).get(whole_key)
        if net is None:
            continue
        entry = {"seeds": sorted(net.seeds),
                 "test": {t: estimate(list(net.per_seed("test", t).values())).__dict__ for t in tasks},
                 "total": estimate(list(per_seed_total(net).values())).__dict__,
                 "normalised_total": estimate(list(per_seed_total(net, True).values())).__dict__,
                 "wall_s": estimate([r.wall_time_s for r in net.seeds.values()]).__dict__}
        if base_whole is not None and label != "sum":
            c = compare(per_seed_total(net), per_seed_total(base_whole))
            cn = compare(per_seed_total(net, True), per_seed_total(base_whole, True))
            entry["minus_sum"] = {"total": judged(c), "normalised_total": judged(cn)}
            common = sorted(set(net.seeds) & set(base_whole.seeds))
            entry["wall_over_sum"] = estimate([net.seeds[s].wall_time_s / base_whole.seeds[s].wall_time_s
                                               for s in common]).__dict__
            entry["task_minus_sum"] = {}
            for t in tasks:
                ct = compare(net.per_seed("test", t), base_whole.per_seed("test", t))
                entry["task_minus_sum"][t] = judged(ct)
        weights = (table.meta.get("loss_weights") or {}).get(net.name)
        if weights:
            entry["loss_weights"] = {s: w.get("final", {}).get("multipliers") for s, w in weights.items()}
        stops = [s for s in table.task_stops if s.stage == "final" and (frozenset(s.tasks), s.width) == whole_key]
        entry["per_task_stopping"] = stop_gain(net, stops, tasks, scales_test)
        doc["all_task"][label] = entry

    # -- the pairs table and the grouping ---------------------------------------------------
    base_pairs = pairs_table("sum", tables, tasks)
    for label in STRATEGIES:
        table = pairs_table(label, tables, tasks)
        if table is None:
            continue
        pair_nets = [n for n in table.networks if len(n.tasks) == 2]
        seeds_here = common_seeds(table.networks)
        if not seeds_here:
            continue
        mean_pair = {s: math.fsum(n.seeds[s].losses["test"][t] / scales_test[t] for n in pair_nets for t in n.tasks)
                     / len(pair_nets) for s in seeds_here}
        entry = {"seeds": seeds_here, "mean_pair_normalised_test": estimate(list(mean_pair.values())).__dict__,
                 "pair_wall_s": estimate([r.wall_time_s for n in pair_nets for r in n.seeds.values()]).__dict__,
                 "task_in_pairs_test": {}}
        for t in tasks:
            values = {s: math.fsum(n.seeds[s].losses["test"][t] for n in pair_nets if t in n.tasks) / (len(tasks) - 1)
                      for s in seeds_here}
            entry["task_in_pairs_test"][t] = estimate(list(values.values())).__dict__
            if base_pairs is not None and label != "sum":
                bp = [n for n in base_pairs.networks if len(n.tasks) == 2]
                bv = {s: math.fsum(n.seeds[s].losses["test"][t] for n in bp if t in n.tasks) / (len(tasks) - 1)
                      for s in seeds_here if all(s in n.seeds for n in bp)}
                c = compare(values, bv)
                entry.setdefault("task_in_pairs_minus_sum", {})[t] = judged(c)
        if base_pairs is not None and label != "sum":
            bp = [n for n in base_pairs.networks if len(n.tasks) == 2]
            bmean = {s: math.fsum(n.seeds[s].losses["test"][t] / scales_test[t] for n in bp for t in n.tasks) / len(bp)
                     for s in seeds_here if all(s in n.seeds for n in bp)}
            c = compare(mean_pair, bmean)
            entry["mean_pair_minus_sum"] = judged(c)
            common = [s for s in seeds_here if s in bmean]
            entry["pair_wall_over_sum"] = estimate([
                math.fsum(n.seeds[s].wall_time_s for n in pair_nets) /
                math.fsum(n.seeds[s].wall_time_s for n in bp) for s in common]).__dict__ if common else None
        doc["pairs"][label] = entry

        # grouping: per seed and on the mean over seeds, with and without per-task stops
        measured = dict(by_key(table))
        whole = by_key(tables[label]).get(whole_key) if label in tables else None
        if whole is not None:
            measured[whole_key] = whole
        measured.update(by_key(table, stops=True))
        g = {}
        for budget in BUDGETS:
            row = {"per_seed": {}, "per_seed_with_stops": {}}
            for s in seeds_here:
                chosen = choose(table, budget, tasks, scales_val, seed=s)
                with_stops = choose(table, budget, tasks, scales_val, per_task_stopping=True, seed=s)
                row["per_seed"][s] = {"grouping": [name_of(n) for n in chosen] if chosen else None,
                                      "test": grouping_test(chosen, measured, s, scales_test) if chosen else None}
                row["per_seed_with_stops"][s] = {
                    "grouping": [name_of(n) for n in with_stops] if with_stops else None,
                    "test": grouping_test(with_stops, measured, s, scales_test) if with_stops else None}
            mean_choice = choose(table, budget, tasks, scales_val)
            row["mean_over_seeds"] = [name_of(n) for n in mean_choice] if mean_choice else None
            g[str(budget)] = row
        doc["grouping"][label] = g
        doc["per_task_stopping"][label] = {
            "pairs": [stop_gain(n, [s for s in table.task_stops if frozenset(s.tasks) == frozenset(n.tasks)
                                    and s.width == n.width], list(n.tasks), scales_test)
                      for n in pair_nets]}
    return doc


def judged(c) -> list:
    """A paired comparison as the results store it: [mean, standard error, verdict at 95% (two-sided t with
    seeds - 1 degrees of freedom), p]."""
    return [c.difference.mean, c.difference.stderr, c.verdict, c.p_value]


def rejudge(doc: dict) -> dict:
    """The verdicts of a results document recomputed from its stored means and standard errors (n = the
    seeds each table has), for results written when a verdict needed two standard errors."""
    from taskgroup.stats import compare_with_noise

    def again(d, n):
        mean, se = d[0], d[1]
        if se is None or n < 2:
            return [mean, se, "unknown", None]
        c = compare_with_noise(mean, se, n - 1, "")
        return [mean, se, c.verdict, c.p_value]

    for e in doc["all_task"].values():
        n = len(e["seeds"])
        for key, d in (e.get("minus_sum") or {}).items():
            e["minus_sum"][key] = again(d, n)
        for t, d in (e.get("task_minus_sum") or {}).items():
            e["task_minus_sum"][t] = again(d, n)
    for e in doc["pairs"].values():
        n = len(e["seeds"])
        if e.get("mean_pair_minus_sum"):
            e["mean_pair_minus_sum"] = again(e["mean_pair_minus_sum"], n)
        for t, d in (e.get("task_in_pairs_minus_sum") or {}).items():
            e["task_in_pairs_minus_sum"][t] = again(d, n)
    return doc


def stop_gain(net, stops, tasks, scales) -> dict:
    """Per seed: the normalised test total at the one stopping point, and with every task from its own
    best validation epoch (free extra trunks: an upper bound), and how many distinct epochs that needs."""
    by_task = {s.stopped_for: s for s in stops}
    out = {}
    for seed, run in net.seeds.items():
        one = math.fsum(run.losses["test"][t] / scales[t] for t in tasks)
        own, checkpoints = 0.0, set()
        for t in tasks:
            stop = by_task.get(t)
            r = stop.seeds.get(seed) if stop is not None else None
            r = r or run  # no stop of its own in this seed: the task peaked with the network
            own += r.losses["test"][t] / scales[t]
            checkpoints.add(r.checkpoint)
        out[seed] = {"one_stop": one, "per_task": own, "trunks": len(checkpoints)}
    return out


def fmt(e: dict | None, digits: int = 4) -> str:
    if not e:
        return ""
    return f"{e['mean']:.{digits}f}" if e.get("std") is None else f"{e['mean']:.{digits}f} ± {e['std']:.{digits}f}"


def fmt_diff(d) -> str:
    if not d:
        return ""
    mean, se, verdict, p = (list(d) + [None])[:4]
    return f"{mean:+.4f}" + ("" if se is None else f" ± {se:.4f} ({verdict}" + ("" if p is None else f", p = {p:.2g}")
                             + ")")


def markdown(doc: dict) -> str:
    tasks = doc["tasks"]
    short = {t: LETTERS[t] for t in tasks}
    lines = ["# Training strategies on the built-in scenes (default preset)", "",
             f"Machine: {machine_line(doc['machine'])}",
             f"Preset {doc['preset']} (6 epochs, cosine LR, batch 32, 2000 training views at 32x32); seeds asked "
             f"{', '.join(map(str, doc['seeds_asked']))} (each table says which it has). Losses: test split, "
             "dataset units; 'normalised' = each task's loss over its trivial predictor's test loss, summed. "
             "Differences to sum are paired by seed (± standard error; the verdict at 95% confidence, two-sided: "
             "beyond Student's t with seeds - 1 degrees of freedom times the standard error, 12.7 se with 2 seeds; p "
             "= the two-sided chance of a difference this large if there were none). Wall time: the "
             "network's training (with validation), on a shared 2-core machine at low priority.", "",
             f"## One network for all {len(tasks)} tasks", "",
             "| strategy | seeds | " + " | ".join(short[t] for t in tasks) + " | total | normalised | minus sum (normalised) "
             "| wall s | wall / sum |",
             "|---" * (len(tasks) + 7) + "|"]
    for label, e in doc["all_task"].items():
        lines.append(f"| {label} | {len(e['seeds'])} | " + " | ".join(fmt(e["test"][t]) for t in tasks)
                     + f" | {fmt(e['total'])} | {fmt(e['normalised_total'])} | "
                     f"{fmt_diff((e.get('minus_sum') or {}).get('normalised_total'))} | {fmt(e['wall_s'], 0)} | "
                     f"{fmt(e.get('wall_over_sum'), 2)} |")
    lines += ["", "Per task, minus sum (test, paired):", "",
              "| strategy | " + " | ".join(short[t] for t in tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for label, e in doc["all_task"].items():
        if "task_minus_sum" in e:
            lines.append(f"| {label} | " + " | ".join(fmt_diff(e["task_minus_sum"][t]) for t in tasks) + " |")
    weights = {k: e["loss_weights"] for k, e in doc["all_task"].items() if e.get("loss_weights")}
    if weights:
        lines += ["", "Loss multipliers the all-task network ended with (seed 0 or the first seed):", ""]
        for label, per_seed in weights.items():
            first = per_seed[sorted(per_seed, key=int)[0]]
            lines.append(f"- {label}: " + ", ".join(f"{short[t]} {v:.3f}" for t, v in first.items()))
    lines += ["", "## The pairs table", "",
              "Mean over the pairs of the pair's normalised test total; each task's test loss averaged over "
              "its pairs; pair training time.", "",
              "| strategy | seeds | mean pair (normalised) | minus sum | " + " | ".join(short[t] for t in tasks)
              + " | pair wall s | wall / sum |", "|---" * (len(tasks) + 6) + "|"]
    for label, e in doc["pairs"].items():
        lines.append(f"| {label} | {len(e['seeds'])} | {fmt(e['mean_pair_normalised_test'])} | "
                     f"{fmt_diff(e.get('mean_pair_minus_sum'))} | "
                     + " | ".join(fmt(e["task_in_pairs_test"][t]) for t in tasks)
                     + f" | {fmt(e['pair_wall_s'], 1)} | {fmt(e.get('pair_wall_over_sum'), 2)} |")
    if any("task_in_pairs_minus_sum" in e for e in doc["pairs"].values()):
        lines += ["", "Per task in its pairs, minus sum (test, paired):", "",
                  "| strategy | " + " | ".join(short[t] for t in tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
        for label, e in doc["pairs"].items():
            if "task_in_pairs_minus_sum" in e:
                lines.append(f"| {label} | " + " | ".join(fmt_diff(e["task_in_pairs_minus_sum"][t]) for t in tasks)
                             + " |")
    lines += ["", "## The grouping chosen (HOA from each strategy's pairs, validation, reference-normalised, SNT)", "",
              "Per seed, the choice and, when all its networks are trained (pairs, singles, the all-task network), "
              "its normalised test objective.", "",
              "| strategy | budget | choice on the mean over seeds | per seed | same as sum |", "|---|---|---|---|---|"]
    base = doc["grouping"].get("sum", {})
    for label, per_budget in doc["grouping"].items():
        for budget, row in per_budget.items():
            per_seed = "; ".join(f"{s}: {' + '.join(c['grouping'] or ['none'])}"
                                 + (f" ({c['test']:.4f})" if c.get("test") is not None else "")
                                 for s, c in row["per_seed"].items())
            same = "" if label == "sum" else ("yes" if row["mean_over_seeds"] == base.get(budget, {}).get(
                "mean_over_seeds") else "**no**")
            lines.append(f"| {label} | {budget} | {' + '.join(row['mean_over_seeds'] or ['none'])} | {per_seed} | {same} |")
    lines += ["", "## Per-task stopping", "",
              "Normalised test total at the one stopping point (best validation total) vs. every task from its own "
              "best validation epoch (an upper bound on the gain: it ignores that two epochs are two trunks), and the "
              "trunks that would take; then the selection with the stops as candidates of their own (each costs its "
              "own trunk).", ""]
    for label, e in doc["all_task"].items():
        g = e.get("per_task_stopping") or {}
        if g:
            cells = "; ".join(f"seed {s}: {v['one_stop']:.4f} -> {v['per_task']:.4f} ({v['trunks']} trunk"
                              f"{'s' if v['trunks'] > 1 else ''})" for s, v in g.items())
            lines.append(f"- all-task network, {label}: {cells}")
    for label, e in doc["per_task_stopping"].items():
        pairs = e["pairs"]
        gains = [v["one_stop"] - v["per_task"] for p in pairs for v in p.values()]
        multi = sum(1 for p in pairs for v in p.values() if v["trunks"] > 1)
        if gains:
            lines.append(f"- pairs, {label}: {multi} of {len(gains)} (pair, seed) runs have a task peaking at another "
                         f"epoch; normalised gain per pair if free: mean {sum(gains) / len(gains):.4f}, "
                         f"max {max(gains):.4f}")
    for label, per_budget in doc["grouping"].items():
        for budget, row in per_budget.items():
            changed = [s for s in row["per_seed"] if row["per_seed"][s]["grouping"]
                       != row["per_seed_with_stops"][s]["grouping"]]
            text = ", ".join(f"seed {s}: {' + '.join(row['per_seed_with_stops'][s]['grouping'] or ['none'])}"
                             for s in changed) or "no seed's choice changes"
            lines.append(f"- selection with stops, {label} at {budget} SNT: {text}")
    return "\n".join(lines)


def main() -> None:
    from taskgroup.tasks import PAPER_TASKS
    from taskgroup.train.run import parse_seeds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-root", type=Path, default=Path("runs/bench-strategies"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--only", choices=("all", "pairs"), default=None, help="train only the all-task networks or the pairs")
    parser.add_argument("--report-only", action="store_true", help="write the report from what is trained")
    parser.add_argument("--tasks", default=",".join(PAPER_TASKS), help="tasks (default: the paper's five)")
    parser.add_argument("--results", default="strategies", help="results file stem under benchmarks/results/")
    parser.add_argument("--rejudge", action="store_true", help="train and read nothing: recompute the verdicts of "
                        "the results file from its stored means and standard errors, and rewrite it and its markdown")
    args = parser.parse_args()
    tasks, seeds = tuple(args.tasks.split(",")), parse_seeds(args.seeds)
    if args.rejudge:
        doc = rejudge(json.loads((RESULTS / f"{args.results}.json").read_text()))
        (RESULTS / f"{args.results}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
        (RESULTS / f"{args.results}.md").write_text(markdown(doc) + "\n")
        print(markdown(doc))
        return
    start_machine, start = machine(), time.perf_counter()
    if not args.report_only:
        train(args, seeds, tasks)
    doc = report(args, seeds, tasks, time.perf_counter() - start, start_machine)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.results}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (RESULTS / f"{args.results}.md").write_text(markdown(doc) + "\n")
    print(markdown(doc))


if __name__ == "__main__":
    main()
