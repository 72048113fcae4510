"""Stakes: where does the grouping decision matter on the built-in data, and by how much?

For each configuration of a map (architecture and trunk capacity, training views, epochs,
resolution, task set), trains through the normal training API, into one resumable run
directory per configuration:

- `screen` (one seed, the paper's `pairs` level): singles at full and half width, every
  pair, the all-task network, and the networks of the HOA choice at each budget (as the
  pipeline's finalize stage trains them);
- `confirm` (several seeds): the same plus every subset of the tasks (n <= 6), so the
  optimum at each budget is the exact one over fully trained networks.

`report` then writes benchmarks/results/stakes.{json,md}: per configuration, the pairwise
gain matrix (L(half single) / L(pair) - 1) with its standard error over seeds, and at
budgets of 1.5, 2, 3 and 5 SNT the optimum, one network, the best independent singles and
the mean random grouping as % of one network's normalised test objective, paired over seeds.

    python benchmarks/stakes.py screen [--only NAME,...] [--executor processes:2]
    python benchmarks/stakes.py confirm NAME [--seeds 0,1,2]
    python benchmarks/stakes.py report

Every step resumes: re-running trains only the missing (network, seed) jobs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import PrintProgress, machine, machine_line

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = Path("runs/stakes")
BUDGETS = (1.5, 2.0, 3.0, 5.0)  # SNT budgets at which the stakes are reported
NORMALIZE = "reference"  # the pipeline's objective: each task's loss over its trivial predictor's
RANDOM_DRAWS = 20  # random groupings per budget (the pipeline's baseline, averaged)
# The runs also record what benchmarks/grouping_quality.py and seed_noise.py need, so those benchmarks
# resume the same run directories instead of training again: the ESA snapshot at this fraction of the
# schedule (taken during the full run) and the affinity measured while training the all-task network.
ESA_FRACTION = 0.2
PAPER5 = ("segment_semantic", "depth_zbuffer", "normal", "keypoints2d", "edge_texture")
NINE = ("segment_semantic", "depth_zbuffer", "normal", "reshading", "edge_occlusion", "edge_texture",
        "keypoints2d", "principal_curvature", "rgb")
MIX6 = ("segment_semantic", "depth_zbuffer", "reshading", "rgb", "edge_texture", "keypoints2d")
# Two scene tasks and the three tasks computed from the image itself (texture edges, keypoints, the image).
TEXTURE5 = ("segment_semantic", "depth_zbuffer", "keypoints2d", "edge_texture", "rgb")
LETTERS = {"segment_semantic": "s", "depth_zbuffer": "d", "normal": "n", "keypoints2d": "k", "edge_texture": "e",
           "reshading": "r", "edge_occlusion": "o", "principal_curvature": "c", "rgb": "g"}


def trunk(scale: float) -> dict[str, Any]:
    """The default encoder's channels times `scale`; the decoders (heads) unchanged."""
    return {"model_config": {"stem_channels": max(4, round(16 * scale)),
                             "stage_channels": [round(c * scale) for c in (48, 96, 192)]}}


@dataclass(frozen=True)
class Point:
    what: str  # one line: what differs from the preset
    tasks: tuple[str, ...] = PAPER5
    preset: str = "wide"  # the preset the overrides apply to
    overrides: dict[str, Any] = field(default_factory=dict)  # config-file layout: {"train": {...}, "data": {...}, "arch": {...}}


# The map: trunk capacity first (one factor at a time from the wide preset, the full Xception-style
# encoder); then, at the narrow trunk where the decision starts to matter (a quarter of the encoder
# channels: the `default` preset), data, epochs, resolution and the task set; the task set also at
# full capacity. Each entry is one factor (or a few) away from its preset.
MAP: dict[str, Point] = {
    "base": Point("the wide preset (full encoder)"),
    "trunk-0.5": Point("encoder channels x0.5 (heads unchanged)", preset="default", overrides={"arch": trunk(0.5)}),
    "trunk-0.25": Point("encoder channels x0.25 (heads unchanged): the default preset", preset="default"),
    "mix6": Point("six tasks: s, d, reshading, rgb, e, k (low-level, 3D, semantic)", tasks=MIX6),
    "t25-mix6": Point("encoder x0.25; the six-task mix", tasks=MIX6, preset="default"),
    "t25-texture5": Point("encoder x0.25; s, d and the three image-level tasks k, e, rgb", tasks=TEXTURE5,
                          preset="default"),
    "t25-dec-0.5": Point("encoder x0.25, decoders x0.5", preset="default",
                         overrides={"arch": {"model_config": {**trunk(0.25)["model_config"], "decoder_channels": [16, 8, 4]}}}),
    "t25-nine": Point("encoder x0.25; all nine built-in tasks", tasks=NINE, preset="default"),
    "t25-epochs-12": Point("encoder x0.25; 12 epochs", preset="default", overrides={"train": {"epochs": 12}}),
    "t25-views-8k": Point("encoder x0.25; 8,000 training views", preset="default", overrides={"data": {"n_train": 8000}}),
    "trunk-0.125": Point("encoder channels x0.125 (heads unchanged)", preset="default", overrides={"arch": trunk(0.125)}),
    "t25-res-64": Point("encoder x0.25; 64x64 inputs", preset="default", overrides={"arch": {"resolution": 64}}),
    "t25-views-20k": Point("encoder x0.25; 20,000 training views", preset="default",
                           overrides={"data": {"n_train": 20000}}),
    "nine": Point("all nine built-in tasks", tasks=NINE),
    "epochs-12": Point("12 epochs instead of 6", overrides={"train": {"epochs": 12}}),
    "views-8k": Point("8,000 training views instead of 2,000", overrides={"data": {"n_train": 8000}}),
    "res-64": Point("64x64 inputs instead of 32x32", overrides={"arch": {"resolution": 64}}),
}


def code(tasks, width: float, served=None) -> str:
    text = "".join(LETTERS.get(t, t) for t in tasks) + f"@{width:g}"
    return text if served is None or set(served) == set(tasks) else text + "->" + "".join(LETTERS.get(t, t) for t in served)


def run_config(name: str, seed: int = 0):
    from taskgroup.train import make_run_config

    point = MAP[name]
    return make_run_config(point.preset, seed=seed, esa_fraction=ESA_FRACTION, overrides=point.overrides or None)


def pairs_level(tasks) -> list:
    from taskgroup.train import CandidateSpec, candidate_set

    return candidate_set("pairs", tasks) + [CandidateSpec(tuple(tasks), 1.0)]


def hoa_choices(table, tasks) -> dict[float, list]:
    """The pipeline's selection in SNT units at each budget: HOA from the pairs on validation."""
    from taskgroup.errors import TaskgroupError
    from taskgroup.search import candidates_from_table, select
    from taskgroup.search.normalize import loss_scales

    cands = candidates_from_table(table, "val", "final", estimate="hoa")
    scales = loss_scales(NORMALIZE, table, cands, "val")
    out = {}
    for b in BUDGETS:
        try:
            sel = select(cands, b, tasks=tasks, unit="snt", scales=scales)
        except TaskgroupError:
            continue
        out[b] = [(n.candidate.tasks, n.candidate.width) for n in sel.networks]
    return out


def train(name: str, seeds, executor: str, every_subset: bool) -> None:
    from taskgroup.train import CandidateSpec, candidate_set, train_candidates
    from taskgroup.train.store import STORE_FILENAME

    point, run_dir = MAP[name], RUNS / name
    config = run_config(name, seeds[0])
    specs = pairs_level(point.tasks)
    if every_subset:
        specs += candidate_set("all", point.tasks)
    progress = PrintProgress()

    def go(specs, affinity=False):
        return train_candidates(run_dir, point.tasks, specs, config, seeds=seeds, progress=progress,
                                resume=(run_dir / STORE_FILENAME).exists(), executor=executor, affinity=affinity)

    print(f"== {name}: {point.what}; seeds {list(seeds)}", flush=True)
    table = go(specs, affinity=True)
    # The networks each seed's (and the mean's) HOA choice needs, trained for real (the pipeline's finalize).
    chosen = {s for tb in [table] + [table.for_seed(s) for s in seeds] for nets in hoa_choices(tb, point.tasks).values()
              for s in nets}
    go([CandidateSpec(t, w) for t, w in sorted(chosen)])


# --- analysis --------------------------------------------------------------------------------
def final_index(table) -> dict:
    return {(frozenset(n.tasks), n.width): n for n in table.networks if n.stage == "final"}


def seeds_of(net) -> dict[int, dict[str, float]]:
    """seed -> the network's test losses (a one-seed table records no seeds: its losses under seed 0)."""
    if not net.seeds:
        return {0: net.losses["test"]}
    return {s: r.losses["test"] for s, r in net.seeds.items()}


def selection_scales(table, tasks) -> dict[str, float]:
    return {t: table.reference_losses[t]["val"] for t in tasks}


def grouping_scores(table, grouping, seeds, ref) -> dict[int, float]:
    """Normalised test objective per seed of `grouping` [(trained, width, served)]."""
    index = final_index(table)
    return {s: math.fsum(seeds_of(index[(frozenset(t), w)])[s][task] / ref[task]
                         for t, w, served in grouping for task in served) for s in seeds}


def best_among(table, tasks, budget: float, keys, split: str = "val"):
    """The exact best grouping among the trained networks `keys` (validation, normalised), as
    [(trained, width, served)]; None when nothing fits."""
    from taskgroup.errors import TaskgroupError
    from taskgroup.search import candidates_from_table, select

    every = candidates_from_table(table, split, "final")
    cands = [c for c in every if (frozenset(c.tasks), c.width) in keys]
    try:
        sel = select(cands, budget, tasks=tasks, unit="snt", scales=selection_scales(table, tasks))
    except TaskgroupError:
        return None
    return [(n.candidate.tasks, n.candidate.width, tuple(n.served)) for n in sel.networks]


def set_partitions(items: tuple[str, ...]):
    """Every partition of `items` into non-empty blocks (each block keeps the items' order)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in set_partitions(rest):
        yield [(first,)] + part
        for i in range(len(part)):
            yield part[:i] + [tuple(t for t in items if t == first or t in part[i])] + part[i + 1:]


def random_baseline(tasks, budget: float) -> list[list]:
    """The random-grouping baseline, exactly: every partition of the tasks into full-width networks
    that fits the budget (a uniformly random such grouping's expected objective is their mean)."""
    return [[(block, 1.0, block) for block in part] for part in set_partitions(tuple(tasks)) if len(part) <= budget]


def analyse(name: str) -> dict[str, Any] | None:
    from taskgroup.losstable import LossTable
    from taskgroup.stats import estimate

    point, run_dir = MAP[name], RUNS / name
    path = run_dir / "losses.json"
    if not path.exists():
        return None
    table = LossTable.load(path)
    tasks = point.tasks
    index = final_index(table)
    pairs_keys = {(frozenset(s.tasks), s.width) for s in pairs_level(tasks)}
    if not pairs_keys <= set(index):
        return None  # screening not finished
    seeds = sorted(set.intersection(*(set(seeds_of(index[k])) for k in pairs_keys)))
    every_subset = all((frozenset(c), 1.0) in index and set(seeds) <= set(seeds_of(index[(frozenset(c), 1.0)]))
                       for k in range(1, len(tasks) + 1) for c in itertools.combinations(tasks, k))
    ref = {t: table.reference_losses[t]["test"] for t in tasks}
    gains = {}
    for a, b in itertools.permutations(tasks, 2):
        pair, half = index[(frozenset((a, b)), 1.0)], index[(frozenset((a,)), 0.5)]
        values = [seeds_of(half)[s][a] / seeds_of(pair)[s][a] - 1 for s in seeds]
        e = estimate(values)
        gains[f"{a}|{b}"] = {"mean": e.mean, "std": e.std, "stderr": e.stderr, "per_seed": values}
    one = [(tuple(tasks), 1.0, tuple(tasks))]
    one_scores = grouping_scores(table, one, seeds, ref)
    trained = {k for k, n in index.items() if set(seeds) <= set(seeds_of(n))}
    singles_keys = {k for k in trained if len(k[0]) == 1}
    budgets = {}
    for b in BUDGETS:
        rows = {}
        rows["one network"] = one
        # The optimum: exact over every trained network (every subset, when confirmed); the
        # pipeline's choice on screening runs (HOA from the pairs, its networks trained, re-selected).
        rows["optimum"] = best_among(table, tasks, b, trained)
        rows["independent singles"] = best_among(table, tasks, b, singles_keys)
        out = {}
        for label, g in rows.items():
            if g is None:
                out[label] = None
                continue
            out[label] = relative(grouping_scores(table, g, seeds, ref), one_scores)
            out[label]["networks"] = [code(t, w, s) for t, w, s in g]
            out[label]["snt"] = sum(w for _, w, _ in g)
        every = random_baseline(tasks, b)
        randoms = [g for g in every if all((frozenset(t), w) in trained for t, w, _ in g)]
        if randoms:
            per = [grouping_scores(table, g, seeds, ref) for g in randoms]
            mean = {s: math.fsum(p[s] for p in per) / len(per) for s in seeds}
            out["mean random grouping"] = relative(mean, one_scores)
            out["mean random grouping"].update(draws=len(randoms), of=len(every))
        budgets[str(b)] = out
    walls = [r.wall_time_s for n in index.values() for r in (n.seeds.values() if n.seeds else [n]) if r.wall_time_s]
    cfg = run_config(name).to_dict()
    return {"what": point.what, "tasks": list(tasks), "seeds": seeds, "every_subset": every_subset,
            "preset": point.preset, "overrides": point.overrides, "run_config": cfg, "networks_trained": len(walls),
            "train_s_per_network": math.fsum(walls) / len(walls) if walls else None,
            "one_network": {"per_seed": one_scores, **estimate(list(one_scores.values())).__dict__},
            "pairwise_gains": gains, "budgets": budgets}


def relative(scores: dict[int, float], one: dict[int, float]) -> dict[str, Any]:
    """A grouping's normalised test objective and its paired % below one network (positive = better)."""
    from taskgroup.stats import estimate

    seeds = sorted(set(scores) & set(one))
    pct = [100 * (one[s] - scores[s]) / one[s] for s in seeds]
    e, obj = estimate(pct), estimate([scores[s] for s in seeds])
    return {"objective": obj.mean, "objective_per_seed": {s: scores[s] for s in seeds},
            "pct_below_one": e.mean, "pct_below_one_stderr": e.stderr, "pct_per_seed": pct}


def main() -> None:
    from taskgroup.train.run import parse_seeds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("screen", help="one seed, pairs level, every configuration of the map (or --only)")
    s.add_argument("--only", default=None, help="comma-separated configuration names (default: the whole map, in order)")
    s.add_argument("--seeds", default="0")
    s.add_argument("--executor", default="processes:2")
    c = sub.add_parser("confirm", help="several seeds and every subset (n <= 6) for one configuration")
    c.add_argument("name", choices=sorted(MAP))
    c.add_argument("--seeds", default="0,1,2")
    c.add_argument("--executor", default="processes:2")
    sub.add_parser("report", help="write benchmarks/results/stakes.{json,md} from the runs so far")
    args = parser.parse_args()
    if args.command == "screen":
        names = args.only.split(",") if args.only else list(MAP)
        unknown = [n for n in names if n not in MAP]
        if unknown:
            parser.error(f"unknown configuration(s) {unknown}; valid: {', '.join(MAP)}")
        for name in names:
            train(name, parse_seeds(args.seeds), args.executor, every_subset=False)
    elif args.command == "confirm":
        if len(MAP[args.name].tasks) > 6:
            parser.error("confirm trains every subset: at most 6 tasks")
        train(args.name, parse_seeds(args.seeds), args.executor, every_subset=True)
    else:
        report()


def report() -> None:
    doc = {"kind": "benchmark_stakes", "schema_version": 1, "machine": machine(), "budgets": list(BUDGETS),
           "objective": NORMALIZE, "points": {}}
    for name in MAP:
        result = analyse(name)
        if result is not None:
            doc["points"][name] = result
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stakes.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (RESULTS / "stakes.md").write_text(markdown(doc) + "\n")
    print(markdown(doc))


def pct(cell: dict[str, Any] | None) -> str:
    """'+5.1 ± 0.8' (% below one network, ± its paired standard error over seeds), or a dash."""
    if cell is None:
        return "does not fit"
    se = cell.get("pct_below_one_stderr")
    return f"{cell['pct_below_one']:+.1f}" + (f" ± {se:.1f}" if se is not None else "")


def gain_counts(p: dict[str, Any], floor: float | None) -> tuple[int, int, str]:
    """Pairwise gains negative / positive beyond 2 standard errors (several seeds), else beyond 2 x `floor`."""
    neg = pos = 0
    for g in p["pairwise_gains"].values():
        noise = g["stderr"] if g["stderr"] is not None else floor
        if noise is None:
            continue
        neg += g["mean"] < -2 * noise
        pos += g["mean"] > 2 * noise
    how = "2 SE over seeds" if len(p["seeds"]) > 1 else (f"2 x {floor:.1%} (one seed)" if floor else "no noise")
    return neg, pos, how


def markdown(doc: dict[str, Any]) -> str:
    pts = doc["points"]
    # One seed gives no standard error: a pairwise gain is then compared with the seed-to-seed
    # standard deviation of gains measured on the confirmed (several-seed) configurations.
    confirmed = [g["std"] for p in pts.values() if len(p["seeds"]) > 1 for g in p["pairwise_gains"].values()]
    floor = sorted(confirmed)[len(confirmed) // 2] if confirmed else None
    lines = ["# Stakes of the grouping decision on the built-in data", "",
             f"Machine: {machine_line(doc['machine'])}", "",
             "Each configuration changes a preset (`wide`: the full encoder, the default before this map; `default`: "
             "a quarter of its encoder channels, chosen from this map) in one way (or a few) and is "
             "trained through the normal training API: singles at full and half width, every pair, the all-task "
             "network, and the networks of the HOA choice at each budget (screening, one seed); confirmed "
             "configurations add every subset of the tasks and more seeds, so their optimum is exact over fully "
             "trained networks. The objective is the pipeline's: each task's test loss divided by its trivial "
             "predictor's, summed. Stakes = how far below one network (one full-width network serving every "
             "task, 1 SNT) a grouping's objective is, in %, paired over seeds (± the standard error of the "
             "paired difference; none with one seed). Budgets are in SNT (a full-width network costs 1, a "
             "half-width one 0.5). Optimum: chosen on validation among the trained networks, scored on test.", "",
             "## The map", "",
             "| configuration | what | seeds | s / network | one network | optimum 1.5 | optimum 2 | optimum 3 | "
             "optimum 5 | singles 3 | singles 5 | random 2 | pairs - / + |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in pts.items():
        b = p["budgets"]
        neg, pos, how = gain_counts(p, floor)
        one = p["one_network"]
        one_text = f"{one['mean']:.3f}" + (f" ± {one['std']:.3f}" if one.get("std") is not None else "")
        lines.append(f"| {name} | {p['what']} | {len(p['seeds'])}{' (every subset)' if p['every_subset'] else ''} | "
                     f"{p['train_s_per_network']:.0f} | {one_text} | "
                     + " | ".join(pct(b[str(x)].get("optimum")) for x in BUDGETS)
                     + f" | {pct(b['3.0'].get('independent singles'))} | {pct(b['5.0'].get('independent singles'))} | "
                     f"{pct(b['2.0'].get('mean random grouping'))} | {neg} / {pos} |")
    lines += ["", "Columns: % below one network's normalised test objective (positive: better than one network). "
              "'pairs - / +': pairwise gains (L(half single) / L(pair) - 1, test) beyond noise, negative / positive "
              + (f"(one seed: beyond 2 x {floor:.1%}, the median seed-to-seed std of a gain on the confirmed "
                 "configurations)" if floor else "(one seed: no noise estimate yet)") + ". "
              "s / network: training seconds per network, summed over the run / networks, on this machine "
              "(shared; two networks train at once).", ""]
    for name, p in pts.items():
        tasks = p["tasks"]
        lines += [f"## {name}: {p['what']}", "",
                  f"Tasks: {', '.join(f'{LETTERS.get(t, t)} = {t}' for t in tasks)}. Seeds: "
                  f"{', '.join(map(str, p['seeds']))}. Preset `{p.get('preset') or MAP[name].preset}`, overrides: "
                  f"`{json.dumps(p['overrides']) if p['overrides'] else 'none'}`.", "",
                  "| budget (SNT) | grouping | networks | SNT | objective | % below one network |", "|---|---|---|---|---|---|"]
        for b, rows in p["budgets"].items():
            for label, cell in rows.items():
                if cell is None:
                    lines.append(f"| {b} | {label} | does not fit | | | |")
                    continue
                nets = (" + ".join(cell.get("networks", [])) or
                        f"mean over {cell.get('draws')} of the {cell.get('of')} partitions into <= {int(float(b))} networks"
                        + ("" if cell.get("draws") == cell.get("of") else " (those trained)"))
                lines.append(f"| {b} | {label} | {nets} | {cell.get('snt', '')} | {cell['objective']:.4f} | {pct(cell)} |")
        lines += ["", "Pairwise gains on test, L(half single) / L(pair) - 1 (row: the task measured; column: its "
                  "partner" + ("; ± standard error over seeds" if len(p["seeds"]) > 1 else "") + "):", "",
                  "| task | " + " | ".join(LETTERS.get(t, t) for t in tasks) + " |", "|---|" + "---|" * len(tasks)]
        for a in tasks:
            cells = []
            for b in tasks:
                g = p["pairwise_gains"].get(f"{a}|{b}")
                cells.append("" if g is None else f"{g['mean']:+.1%}" + (f" ± {g['stderr']:.1%}" if g["stderr"] else ""))
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
