"""Seed noise of grouping decisions on the built-in scenes: is the search ranking skill or luck?

Trains, with several seeds, the pipeline's candidate set (the paper's `pairs`) plus the networks
of a fixed set of groupings, all through the normal training API into one resumable run
directory. Then, per grouping, it reports the total test loss per seed, its mean, standard
deviation and standard error, the paired difference to one network for all tasks, and how
stable the ranking of the groupings is from seed to seed; and per budget, whether the HOA
choice (the pipeline's selection, in the paper's SNT units) changes with the seed.

Groupings (tasks s, d, n, k, e = segmentation, depth, normals, 2D keypoints, texture edges):
one network; independent singles at full and at half width; the pipeline's choice (HOA on the
mean validation losses at 1.2 SNT, its networks then fully trained); and three fixed two-network
groupings. Results: benchmarks/results/seed_noise.{json,md}, with the machine.

    python benchmarks/seed_noise.py [--run-dir DIR] [--seeds 0,1,2] [--preset default] [--config F]
    python benchmarks/seed_noise.py --record-from benchmarks/results/seed_noise.json   # no training

Re-running resumes the run directory; only missing (network, seed) jobs train. Differences are
called at 95% confidence (paired t, seeds - 1 degrees of freedom). It also reports the paired
spread of every pair of groupings, and writes the preset's record the toolkit reads for its
within-noise rule and one-seed verdicts (taskgroup/data/seed_noise/PRESET.json, taskgroup.seednoise).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

from _common import PrintProgress, machine, machine_line

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parent.parent
LETTERS = {"segment_semantic": "s", "depth_zbuffer": "d", "normal": "n", "keypoints2d": "k", "edge_texture": "e"}
FIXED = {  # name -> networks as 'letters@width' (each network serves the tasks it is trained on)
    "one network": ["sdnke@1"],
    "independent singles (full)": ["s@1", "d@1", "n@1", "k@1", "e@1"],
    "independent singles (half)": ["s@0.5", "d@0.5", "n@0.5", "k@0.5", "e@0.5"],
    "sdnk + e/2": ["sdnk@1", "e@0.5"],
    "snke + d/2": ["snke@1", "d@0.5"],
    "sd + nke": ["sd@1", "nke@1"],
}
CHOICE_BUDGETS = (1.2, 1.5, 2.0, 2.5)  # SNT budgets at which the HOA choice's stability is checked
PIPELINE_BUDGET = 1.2


def parse(code: str, tasks):
    letters, width = code.split("@")
    net = tuple(t for t in tasks if LETTERS[t] in letters)
    return (net, float(width), net)


def name_of(net) -> str:
    trained, width, served = net
    text = "".join(LETTERS[t] for t in trained) + f"@{width:g}"
    return text if set(served) == set(trained) else text + "->" + "".join(LETTERS[t] for t in served)


def pairs_table(table, tasks):
    from taskgroup.losstable import LossTable
    from taskgroup.train import candidate_set

    keys = {(frozenset(s.tasks), s.width) for s in candidate_set("pairs", tasks)}
    return LossTable(table.tasks, [n for n in table.networks if (frozenset(n.tasks), n.width) in keys],
                     table.reference_losses, table.meta)


def hoa_choice(table, budget: float, tasks, normalize: str):
    """The pipeline's selection in SNT units: HOA from the pairs, exact search on validation."""
    from taskgroup.search import candidates_from_table, select
    from taskgroup.search.normalize import loss_scales

    pairs = pairs_table(table, tasks)
    cands = candidates_from_table(pairs, "val", "final", estimate="hoa")
    sel = select(cands, budget, tasks=tasks, unit="snt", scales=loss_scales(normalize, pairs, cands, "val"))
    return [(n.candidate.tasks, n.candidate.width, tuple(n.served)) for n in sel.networks]


def finalize(table, chosen, budget: float, tasks, normalize: str):
    """As the pipeline's finalize stage: which chosen network serves each task, on final validation losses."""
    from taskgroup.search import candidates_from_table, select
    from taskgroup.search.normalize import loss_scales

    keys = {(frozenset(t), w) for t, w, _ in chosen}
    every = candidates_from_table(table, "val", "final")
    cands = [c for c in every if c.key in keys]
    sel = select(cands, budget, tasks=tasks, unit="snt", scales=loss_scales(normalize, table, every, "val"))
    return [(n.candidate.tasks, n.candidate.width, tuple(n.served)) for n in sel.networks]


def totals(table, grouping, seeds, scales=None) -> dict[int, float]:
    index = {(frozenset(n.tasks), n.width): n for n in table.networks if n.stage == "final"}
    out = {}
    for s in seeds:
        out[s] = math.fsum(index[(frozenset(t), w)].seeds[s].losses["test"][task] / (scales[task] if scales else 1.0)
                           for t, w, served in grouping for task in served)
    return out


def main() -> None:
    from taskgroup.tasks import PAPER_TASKS
    from taskgroup.train import CandidateSpec, candidate_set, make_run_config, train_candidates
    from taskgroup.train.run import parse_seeds
    from taskgroup.train.store import STORE_FILENAME

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench-default"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--esa", type=float, default=0.2, help="ESA fraction recorded in the run (the same run "
                        "as benchmarks/grouping_quality.py; the final networks do not depend on it)")
    parser.add_argument("--normalize", default="reference", help="selection objective, as the pipeline's --normalize")
    parser.add_argument("--out", default="seed_noise", help="results file stem under benchmarks/results/")
    parser.add_argument("--no-record", dest="record", action="store_false",
                        help="do not write the preset's seed-noise record (taskgroup/data/seed_noise/PRESET.json)")
    parser.add_argument("--record-from", type=Path, default=None, metavar="RESULTS_JSON",
                        help="train nothing: recompute the statistics of a finished run's results file, rewrite its "
                             ".json/.md beside it under --out and write the preset's record from it")
    args = parser.parse_args()
    if args.record_from is not None:
        path = args.record_from.resolve()
        source = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        write(json.loads(path.read_text()), source, args.out, args.record)
        return

    tasks, seeds = PAPER_TASKS, parse_seeds(args.seeds)
    config = make_run_config(args.preset, args.config, seed=seeds[0], esa_fraction=args.esa)
    start_machine, start = machine(), time.perf_counter()
    fixed = {name: [parse(c, tasks) for c in codes] for name, codes in FIXED.items()}
    specs = candidate_set("pairs", tasks) + [CandidateSpec(t, w) for g in fixed.values() for t, w, _ in g]

    def train(specs):
        return train_candidates(args.run_dir, tasks, specs, config, seeds=seeds, progress=PrintProgress(),
                                resume=(args.run_dir / STORE_FILENAME).exists())

    table = train(specs)
    # The pipeline's choice on the mean over seeds; then every seed's own choice at each budget.
    norm = args.normalize
    chosen = hoa_choice(table, PIPELINE_BUDGET, tasks, norm)
    per_seed_choice = {b: {s: hoa_choice(table.for_seed(s), b, tasks, norm) for s in seeds} for b in CHOICE_BUDGETS}
    mean_choice = {b: hoa_choice(table, b, tasks, norm) for b in CHOICE_BUDGETS}
    table = train([CandidateSpec(t, w) for t, w, _ in chosen])
    groupings = {"pipeline's choice (HOA, 1.2 SNT)": finalize(table, chosen, PIPELINE_BUDGET, tasks, norm), **fixed}
    ref = {t: table.reference_losses[t]["test"] for t in tasks}

    results = {}
    for name, g in groupings.items():
        results[name] = {"networks": [name_of(n) for n in g], "snt": sum(w for _, w, _ in g),
                         "test_total_per_seed": totals(table, g, seeds),
                         "test_normalised_per_seed": totals(table, g, seeds, ref)}
    # Pairwise gains, seed by seed: L(half single) / L(pair) - 1.
    index = {(frozenset(n.tasks), n.width): n for n in table.networks if n.stage == "final"}
    gains = {}
    for a, b in itertools.combinations(tasks, 2):
        pair = index[(frozenset((a, b)), 1.0)]
        for t, p in ((a, b), (b, a)):
            half = index[(frozenset((t,)), 0.5)]
            gains[f"{LETTERS[t]}|{LETTERS[p]}"] = [half.seeds[s].losses["test"][t] / pair.seeds[s].losses["test"][t] - 1
                                                  for s in seeds]
    stability = {str(b): {"per_seed": {s: [name_of(n) for n in c] for s, c in per_seed_choice[b].items()},
                          "on_mean": [name_of(n) for n in mean_choice[b]],
                          "same_for_every_seed": len({tuple(sorted(name_of(n) for n in c))
                                                      for c in per_seed_choice[b].values()}) == 1}
                 for b in CHOICE_BUDGETS}
    doc = {
        "kind": "benchmark_seed_noise", "schema_version": 1, "machine": start_machine,
        "preset": args.preset, "config": str(args.config) if args.config else None, "run_config": config.to_dict(),
        "selection_objective": norm,
        "seeds": list(seeds), "wall_s": round(time.perf_counter() - start, 1),
        "train_s_summed": round(math.fsum(n.wall_time_s or 0 for n in table.networks if n.stage == "final"), 1),
        "networks": sum(n.stage == "final" for n in table.networks), "groupings": results,
        "pairwise_gains_per_seed": gains, "hoa_choice_stability": stability,
    }
    write(json.loads(json.dumps(doc, default=str)), f"benchmarks/results/{args.out}.json", args.out, args.record)


def derive(doc: dict) -> dict:
    """Everything computed from the per-seed values: each grouping's mean ± std, its paired difference to
    one network with the verdict at 95% confidence (two-sided t, n - 1 degrees of freedom), the spreads
    of one grouping (each distinct grouping once) and of every pair, and the ranking's stability."""
    from scipy.stats import kendalltau

    from taskgroup.seednoise import record_from_benchmark
    from taskgroup.train.recipes import shipped_preset
    from taskgroup.stats import CONFIDENCE, compare, estimate

    seeds = [str(s) for s in doc["seeds"]]
    results = doc["groupings"]
    for r in results.values():
        for key in ("test_total", "test_normalised"):
            e = estimate([r[f"{key}_per_seed"][s] for s in seeds])
            r[key] = {**e.__dict__, "stderr": e.stderr}
    one = results["one network"]
    for r in results.values():
        for key in ("test_total", "test_normalised"):
            c = compare(r[f"{key}_per_seed"], one[f"{key}_per_seed"])
            r[f"{key}_minus_one_network"] = {**c.difference.__dict__, "stderr": c.difference.stderr,
                                             "verdict": c.verdict, "threshold": c.threshold, "df": c.df,
                                             "p_value": c.p_value, "confidence": c.confidence}
    names = list(results)
    rank_key = "test_normalised_per_seed" if doc["selection_objective"] == "reference" else "test_total_per_seed"
    rank_seed = {s: sorted(names, key=lambda n: results[n][rank_key][s]) for s in seeds}
    taus = [kendalltau([rank_seed[a].index(n) for n in names], [rank_seed[b].index(n) for n in names]).statistic
            for a, b in itertools.combinations(seeds, 2)]
    record = record_from_benchmark(doc, "benchmarks/results/seed_noise.json", shipped_preset(doc["run_config"]))
    distinct = [g.name for g in record.groupings]  # the pipeline's choice counts once when it equals a fixed grouping
    total_stds = sorted(results[n]["test_total"]["std"] for n in distinct)
    norm_stds = sorted(results[n]["test_normalised"]["std"] for n in distinct)
    gain_stds = sorted(estimate(v).std for v in doc["pairwise_gains_per_seed"].values())
    paired = {}
    for objective, key in (("none", "test_total"), ("reference", "test_normalised")):
        spreads = record.paired(objective)
        paired[key] = [{"a": a, "b": b, "std": sp.std, "df": sp.df,
                        "mean": estimate([results[a][f"{key}_per_seed"][s] - results[b][f"{key}_per_seed"][s]
                                          for s in seeds]).mean}
                       for (a, b), sp in spreads.items()]
    doc.update({
        "ranking_per_seed": rank_seed, "kendall_tau_between_seeds": taus, "confidence": CONFIDENCE,
        "paired_spreads": paired,
        "summary": {"distinct_groupings": len(distinct),
                    "grouping_total_std_median": _median(total_stds), "grouping_total_std_max": total_stds[-1],
                    "grouping_total_std_pooled": record.one_grouping("none").std,
                    "grouping_normalised_std_median": _median(norm_stds),
                    "grouping_normalised_std_max": norm_stds[-1],
                    "grouping_normalised_std_pooled": record.one_grouping("reference").std,
                    "paired_total_std": _range([p["std"] for p in paired["test_total"]]),
                    "paired_normalised_std": _range([p["std"] for p in paired["test_normalised"]]),
                    "bound_total": record.bound("none").std, "bound_normalised": record.bound("reference").std,
                    "pairwise_gain_std_median": _median(gain_stds), "pairwise_gain_std_pooled": record.gain().std,
                    "kendall_tau_mean": math.fsum(taus) / len(taus)},
    })
    return doc


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _range(values):
    return {"min": min(values), "median": _median(values), "max": max(values)}


def write(doc: dict, source: str, stem: str, record: bool) -> None:
    """The results (json, md) and, with `record`, the preset's seed-noise record the toolkit reads."""
    from taskgroup.fileio import write_json_atomic
    from taskgroup.seednoise import RECORDS, record_from_benchmark
    from taskgroup.train.recipes import shipped_preset

    doc = derive(doc)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(doc) + "\n")
    if record:
        rec = record_from_benchmark(doc, source, shipped_preset(doc["run_config"]))
        RECORDS.mkdir(parents=True, exist_ok=True)
        write_json_atomic(RECORDS / f"{rec.preset}.json", rec.to_json())
        print(f"wrote the seed-noise record {RECORDS / f'{rec.preset}.json'}")
    print(markdown(doc))

def markdown(doc) -> str:
    from taskgroup.stats import confidence_words

    seeds, s = [str(x) for x in doc["seeds"]], doc["summary"]
    rc = doc["run_config"]
    level = confidence_words(doc["confidence"])
    df = len(seeds) - 1

    def diff(d) -> str:
        if d["mean"] == 0 and d["std"] == 0:
            return "the same networks"
        return f"{d['mean']:+.4f} ± {d['stderr']:.4f}, beyond ±{d['threshold']:.4f}? {d['verdict']} (p = {d['p_value']:.2g})"

    lines = [f"# Seed noise of grouping decisions ({doc['preset']} preset{', ' + doc['config'] if doc['config'] else ''})", "",
             f"Machine: {machine_line(doc['machine'])}",
             f"Recipe: {rc['train']['epochs']} epochs, {rc['train']['lr_schedule']} LR schedule from {rc['train']['lr']}, "
             f"batch {rc['train']['batch_size']}; data {rc['data'].get('n_train')} / {rc['data'].get('n_val')} / "
             f"{rc['data'].get('n_test')} views (train/val/test), {rc['data'].get('views_per_layout')} per room layout; "
             f"{rc['arch']['resolution']}x{rc['arch']['resolution']} px. Seeds {', '.join(seeds)}; "
             f"{doc['networks']} networks x {len(seeds)} seeds in the run, {doc['train_s_summed']:.0f} s of training summed "
             f"(wall {doc['wall_s']:.0f} s for this invocation; a resumed run counts only its own part).", "",
             f"Differences to one network are paired by seed: mean ± its standard error, and the verdict at {level}: "
             f"beyond Student's t with {df} degrees of freedom ({t_words(df, doc['confidence'])}) times the standard "
             "error; p is the two-sided chance of a difference at least this large if there were none.", "",
             "## Total test loss per grouping (plain sum of the five task losses)", "",
             "| grouping | networks | SNT | " + " | ".join(f"seed {x}" for x in seeds)
             + " | mean ± std | se | minus one network (paired) |", "|---|---|---|" + "---|" * len(seeds) + "---|---|---|"]
    same = {name: next((o for o, q in doc["groupings"].items() if o != name and q["networks"] == r["networks"]
                        and not o.startswith("pipeline")), None) for name, r in doc["groupings"].items()}
    for name, r in sorted(doc["groupings"].items(), key=lambda kv: kv[1]["test_total"]["mean"]):
        t, d = r["test_total"], r["test_total_minus_one_network"]
        if name.startswith("pipeline") and same[name]:
            name += f" = {same[name]}"
        lines.append(f"| {name} | {' + '.join(r['networks'])} | {r['snt']:g} | "
                     + " | ".join(f"{r['test_total_per_seed'][x]:.4f}" for x in seeds)
                     + f" | {t['mean']:.4f} ± {t['std']:.4f} | {t['stderr']:.4f} | "
                     + ("" if name == "one network" else diff(d)) + " |")
    lines += ["", "Normalised objective (each task's loss divided by its trivial predictor's test loss):", "",
              "| grouping | mean ± std | se | minus one network (paired) |", "|---|---|---|---|"]
    for name, r in sorted(doc["groupings"].items(), key=lambda kv: kv[1]["test_normalised"]["mean"]):
        t, d = r["test_normalised"], r["test_normalised_minus_one_network"]
        lines.append(f"| {name} | {t['mean']:.4f} ± {t['std']:.4f} | {t['stderr']:.4f} | "
                     + ("" if name == "one network" else diff(d)) + " |")
    lines += ["", "## Paired spreads: how much the difference between two groupings moves from seed to seed", "",
              "Two groupings trained with the same seeds share part of their luck, so their difference moves by its "
              "own standard deviation over seeds, not by one grouping's. The toolkit's within-noise rule and one-seed "
              "verdicts read these (taskgroup/data/seed_noise/, written from this file). Each distinct grouping once.", "",
              "| a | b | mean a - b (normalised) | paired std (normalised) | mean a - b (total) | paired std (total) |",
              "|---|---|---|---|---|---|"]
    totals = {(p["a"], p["b"]): p for p in doc["paired_spreads"]["test_total"]}
    for p in sorted(doc["paired_spreads"]["test_normalised"], key=lambda p: p["std"]):
        q = totals[(p["a"], p["b"])]
        lines.append(f"| {p['a']} | {p['b']} | {p['mean']:+.4f} | {p['std']:.4f} | {q['mean']:+.4f} | {q['std']:.4f} |")
    pn, pt = s["paired_normalised_std"], s["paired_total_std"]
    lines += ["", "## Stability", "",
              f"- Seed-to-seed standard deviation of one grouping ({s['distinct_groupings']} distinct groupings): total "
              f"test loss median {s['grouping_total_std_median']:.4f}, max {s['grouping_total_std_max']:.4f}, pooled "
              f"{s['grouping_total_std_pooled']:.4f}; normalised objective median "
              f"{s['grouping_normalised_std_median']:.4f}, max {s['grouping_normalised_std_max']:.4f}, pooled "
              f"{s['grouping_normalised_std_pooled']:.4f}.",
              f"- Paired standard deviation of the difference of two groupings: normalised {pn['min']:.4f} to "
              f"{pn['max']:.4f} (median {pn['median']:.4f}; {pn['min'] / s['grouping_normalised_std_pooled']:.2f}x to "
              f"{pn['max'] / s['grouping_normalised_std_pooled']:.2f}x one grouping's pooled spread); total "
              f"{pt['min']:.4f} to {pt['max']:.4f} (median {pt['median']:.4f}). The conservative bound used for a pair "
              f"not measured: {s['bound_normalised']:.4f} normalised, {s['bound_total']:.4f} total.",
              f"- Standard deviation of a pairwise gain (L(half single)/L(pair) - 1) over seeds: median "
              f"{s['pairwise_gain_std_median']:.2%}, pooled {s['pairwise_gain_std_pooled']:.2%}.",
              f"- Ranking of the groupings by the selection objective ({doc['selection_objective']}) on test, "
              f"Kendall's tau between seeds: "
              + ", ".join(f"{t:.2f}" for t in doc["kendall_tau_between_seeds"]) + f" (mean {s['kendall_tau_mean']:.2f}; 1 = same order).",
              "", f"HOA choice (pairs, validation, SNT budget, objective {doc['selection_objective']}) per seed and on "
              "the mean over seeds:", "",
              "| budget (SNT) | " + " | ".join(f"seed {x}" for x in seeds) + " | mean over seeds | same for every seed |",
              "|---|" + "---|" * len(seeds) + "---|---|"]
    for b, st in doc["hoa_choice_stability"].items():
        lines.append(f"| {b} | " + " | ".join(" + ".join(st["per_seed"][x]) for x in seeds)
                     + f" | {' + '.join(st['on_mean'])} | {'yes' if st['same_for_every_seed'] else 'no'} |")
    return "\n".join(lines)


def t_words(df: int, confidence: float) -> str:
    from taskgroup.stats import t_quantile

    return f"{t_quantile(df, confidence):.2f}"


if __name__ == "__main__":
    main()
