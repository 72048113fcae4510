"""TAG's lookahead with and without the optimizer's momentum buffer, on real all-task runs.

The lookahead affinity A[u][t] = 1 - L_t(theta_u') / L_t(theta) takes theta_u' as the step the
optimizer would take on task u alone. With SGD momentum that step is mostly the momentum buffer
(the previous steps of every task), which is the same whichever task u is: it moves every
lookahead alike and pulls the rows of A together, compressing the difference between a helpful
and a harmful partner. The tracker measures both lookaheads on the same batches of the same run
(`tag` with the buffer, `tag-nomomentum` without; taskgroup.train.affinity).

This trains what a TAG pipeline trains (`--candidates affinity`: every task alone at full and
half width, and the all-task network with affinity tracking), with several seeds, and reports per
kind of affinity (tag, tag-nomomentum, gradient cosine):
- compression: the groupmate affinity S_t(u) = A[u][t] / A[t][t] (what the estimate reads) over
  the 20 (source, target) pairs: its mean, its spread, and per target the gap between the most
  and the least helpful partner;
- agreement with the measured pairs: benchmarks/results/seed_noise.json holds, for the same preset
  and seeds, the test loss gain of every task from every partner, L(half single) / L(pair) - 1,
  measured by training the pairs. Spearman's rank correlation of S_t(u) with it; and the
  estimate's own pair losses against the measured ones (the measured pair loss is L(half single)
  / (1 + gain), the half singles coming from this run: training is deterministic, and the report
  checks that this run's half singles give seed_noise's totals);
- the grouping each kind's estimate chooses (validation, normalised objective, SNT budgets 1-3,
  per seed): whether the momentum term changes the choice. Regret needs every subset trained:
  benchmarks/grouping_quality.py reports it for every kind a run measured.

    python benchmarks/tag_momentum.py [--run-dir runs/tag-momentum] [--seeds 0,1,2] [--preset default]

Results: benchmarks/results/tag_momentum.{json,md}, with the machine. Re-running resumes the run.
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
LETTERS = {"segment_semantic": "s", "depth_zbuffer": "d", "normal": "n", "keypoints2d": "k", "edge_texture": "e"}
KINDS = ("tag", "tag-nomomentum", "cosine")
BUDGETS = tuple(1.0 + 0.25 * i for i in range(9))  # SNT


def groupmate_affinity(matrix, tasks) -> dict[tuple[str, str], float]:
    """(source, target) -> A[source][target] / A[target][target], as the estimate reads it."""
    out = {}
    for j, t in enumerate(tasks):
        own = matrix[j][j]
        for i, u in enumerate(tasks):
            if i != j and own > 0:
                out[(u, t)] = matrix[i][j] / own
    return out


def compression(s: dict[tuple[str, str], float], tasks) -> dict[str, float]:
    from taskgroup.stats import estimate

    values = list(s.values())
    gaps = []
    for t in tasks:
        row = [v for (u, target), v in s.items() if target == t]
        if row:
            gaps.append(max(row) - min(row))
    e = estimate(values)
    return {"mean": e.mean, "std": e.std, "min": min(values), "max": max(values),
            "best_minus_worst_partner_mean": math.fsum(gaps) / len(gaps)}


def name_of(net) -> str:
    trained, width, served = net
    text = "".join(LETTERS.get(t, t) for t in trained) + f"@{width:g}"
    return text if set(served) == set(trained) else text + "->" + "".join(LETTERS.get(t, t) for t in served)


def main() -> None:
    from scipy.stats import spearmanr

    from taskgroup.errors import TaskgroupError
    from taskgroup.search import candidates_from_table, select
    from taskgroup.search.affinity import affinity_candidates
    from taskgroup.train.recipes import same_recipe
    from taskgroup.tasks import PAPER_TASKS
    from taskgroup.train import candidate_set, make_run_config, train_candidates
    from taskgroup.train.run import parse_seeds
    from taskgroup.train.store import STORE_FILENAME

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/tag-momentum"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--esa", type=float, default=0.2, help="ESA fraction recorded in the run config, as "
                        "benchmarks/seed_noise.py's run (the final networks do not depend on it)")
    parser.add_argument("--pairs", type=Path, default=RESULTS / "seed_noise.json",
                        help="seed_noise results with the measured pairwise gains per seed (same preset)")
    parser.add_argument("--out", default="tag_momentum", help="results file stem under benchmarks/results/")
    args = parser.parse_args()

    tasks, seeds = PAPER_TASKS, parse_seeds(args.seeds)
    config = make_run_config(args.preset, seed=seeds[0], esa_fraction=args.esa)
    start_machine, start = machine(), time.perf_counter()
    table = train_candidates(args.run_dir, tasks, candidate_set("affinity", tasks), config, seeds=seeds,
                             stages=("final",), progress=PrintProgress(),
                             resume=(args.run_dir / STORE_FILENAME).exists(), affinity=True)
    pairs_doc = json.loads(args.pairs.read_text()) if args.pairs.exists() else None
    same = pairs_doc is not None and same_recipe(pairs_doc["run_config"], config.to_dict())
    measured_gain: dict[tuple[str, str], dict[int, float]] = {}
    if same:
        code = {v: k for k, v in LETTERS.items()}
        for name, values in pairs_doc["pairwise_gains_per_seed"].items():
            t, u = (code[x] for x in name.split("|"))
            measured_gain[(u, t)] = {s: v for s, v in zip(pairs_doc["seeds"], values)}

    pairs = list(itertools.combinations(tasks, 2))
    groups = [g for k in range(2, len(tasks)) for g in itertools.combinations(tasks, k)]
    per_seed, determinism = {}, {}
    for seed in seeds:
        t = table.for_seed(seed)
        half = {n.tasks[0]: n.losses["test"][n.tasks[0]] for n in t.networks if len(n.tasks) == 1 and n.width == 0.5}
        if same and str(seed) in pairs_doc["groupings"]["independent singles (half)"]["test_total_per_seed"]:
            theirs = pairs_doc["groupings"]["independent singles (half)"]["test_total_per_seed"][str(seed)]
            determinism[seed] = {"this_run": math.fsum(half.values()), "seed_noise": theirs}
        scales = {x: t.reference_losses[x]["val"] for x in tasks}
        final_val = candidates_from_table(t, "val", "final")
        measured = [c for c in final_val if len(c.tasks) == 1 or len(c.tasks) == len(tasks)]
        per_seed[seed] = {}
        for kind in KINDS:
            matrix = t.affinity.mean(kind)
            s = groupmate_affinity(matrix, tasks)
            row: dict = {"matrix": matrix, "compression": compression(s, tasks)}
            have = [k for k in s if seed in measured_gain.get(k, {})]
            if len(have) > 2:
                rho = spearmanr([s[k] for k in have], [measured_gain[k][seed] for k in have]).statistic
                est = {c.tasks: c.losses for c in affinity_candidates(t, pairs, kind=kind, split="test")}
                errors, est_gain, true_gain = [], [], []
                for (u, x) in have:  # the estimate of x's loss in the pair {u, x}
                    pair = tuple(y for y in tasks if y in (u, x))
                    truth = half[x] / (1 + measured_gain[(u, x)][seed])
                    errors.append(math.log(est[pair][x] / truth))
                    est_gain.append(half[x] / est[pair][x] - 1)
                    true_gain.append(measured_gain[(u, x)][seed])
                row["agreement"] = {
                    "spearman_groupmate_affinity_vs_measured_gain": rho,
                    "pair_loss_log_error_mean_abs": math.fsum(abs(e) for e in errors) / len(errors),
                    "pair_loss_log_error_mean": math.fsum(errors) / len(errors),
                    "spearman_estimated_vs_measured_pair_gain": spearmanr(est_gain, true_gain).statistic,
                    "pairs": len(have)}
            estimated = measured + affinity_candidates(t, groups, kind=kind, split="val")
            choices = {}
            for b in BUDGETS:
                try:
                    sel = select(estimated, b, tasks=tasks, unit="snt", scales=scales)
                except TaskgroupError:
                    continue
                choices[str(b)] = sorted(name_of((n.candidate.tasks, n.candidate.width, n.served))
                                         for n in sel.networks)
            row["choices"] = choices
            per_seed[seed][kind] = row
    seconds = {r.seed: r.seconds for r in table.affinity.runs if r.stage == "final"}
    whole = {s: next(n.seeds[s].wall_time_s for n in table.networks if len(n.tasks) == len(tasks)) for s in seeds}
    doc = {"kind": "benchmark_tag_momentum", "schema_version": 1, "machine": start_machine,
           "run_config": config.to_dict(), "tasks": list(tasks), "seeds": list(seeds),
           "wall_s": round(time.perf_counter() - start, 1), "pairs_source": _repo_path(args.pairs) if same else None,
           "affinity_seconds_per_seed": seconds, "all_task_network_train_s_per_seed": whole,
           "half_singles_test_total_check": determinism, "per_seed": per_seed, "summary": summarize(per_seed, seeds)}
    doc = json.loads(json.dumps(doc, default=str))  # as it is read back: seeds and budgets as string keys
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(doc) + "\n")
    print(markdown(doc))


def _repo_path(path: Path) -> str:
    path, root = path.resolve(), RESULTS.parent.parent
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def summarize(per_seed, seeds) -> dict:
    from taskgroup.stats import estimate

    out = {}
    for kind in KINDS:
        rows = [per_seed[s][kind] for s in seeds]
        k = {"groupmate_affinity_std": estimate([r["compression"]["std"] for r in rows]).__dict__,
             "best_minus_worst_partner": estimate([r["compression"]["best_minus_worst_partner_mean"] for r in rows]).__dict__,
             "groupmate_affinity_mean": estimate([r["compression"]["mean"] for r in rows]).__dict__}
        if all("agreement" in r for r in rows):
            for name in ("spearman_groupmate_affinity_vs_measured_gain", "pair_loss_log_error_mean_abs",
                         "pair_loss_log_error_mean", "spearman_estimated_vs_measured_pair_gain"):
                k[name] = estimate([r["agreement"][name] for r in rows]).__dict__
        out[kind] = k
    budgets = sorted({b for s in seeds for b in per_seed[s]["tag"]["choices"]}, key=float)
    out["same_choice_with_and_without_momentum"] = {
        b: [per_seed[s]["tag"]["choices"].get(b) == per_seed[s]["tag-nomomentum"]["choices"].get(b) for s in seeds]
        for b in budgets}
    return out


def markdown(doc) -> str:
    seeds, tasks, summ = doc["seeds"], doc["tasks"], doc["summary"]
    rc = doc["run_config"]
    letters = [LETTERS.get(t, t) for t in tasks]

    def pm(e, digits=3):
        return f"{e['mean']:.{digits}f}" + ("" if e["std"] is None else f" ± {e['std']:.{digits}f}")

    lines = [f"# TAG's lookahead with and without the momentum buffer ({rc['preset']} preset)", "",
             f"Machine: {machine_line(doc['machine'])}",
             f"Recipe: {rc['train']['epochs']} epochs, {rc['train']['lr_schedule']} LR from {rc['train']['lr']}, "
             f"momentum {rc['train']['momentum']}, batch {rc['train']['batch_size']}; affinity measured every "
             f"{rc['train'].get('affinity_every', '?')} steps. Seeds {', '.join(map(str, seeds))}. All-task network "
             "with tracking: " + ", ".join(f"{v:.0f} s" for v in doc["all_task_network_train_s_per_seed"].values())
             + " (of which measuring affinity, both lookaheads and the cosine: "
             + ", ".join(f"{v:.0f} s" for v in doc["affinity_seconds_per_seed"].values()) + ").", "",
             "S_t(u) = A[u][t] / A[t][t]: the affinity of source u onto target t in units of t's own step, what "
             "the estimate reads (docs/select.md). Mean ± standard deviation over seeds.", "",
             "| kind | mean S | spread of S (std over the 20 pairs) | best - worst partner (mean over targets) |"
             + (" Spearman: S vs measured pair gain | Spearman: estimated vs measured pair gain | pair-loss error "
                "(mean abs log) | pair-loss bias (mean log) |" if "pair_loss_log_error_mean" in summ["tag"] else ""),
             "|---|---|---|---|" + ("---|---|---|---|" if "pair_loss_log_error_mean" in summ["tag"] else "")]
    for kind in KINDS:
        k = summ[kind]
        line = (f"| {kind} | {pm(k['groupmate_affinity_mean'])} | {pm(k['groupmate_affinity_std'])} | "
                f"{pm(k['best_minus_worst_partner'])} |")
        if "pair_loss_log_error_mean" in k:
            line += (f" {pm(k['spearman_groupmate_affinity_vs_measured_gain'], 2)} | "
                     f"{pm(k['spearman_estimated_vs_measured_pair_gain'], 2)} | "
                     f"{pm(k['pair_loss_log_error_mean_abs'])} | {pm(k['pair_loss_log_error_mean'], 3)} |")
        lines.append(line)
    if doc["pairs_source"]:
        check = doc["half_singles_test_total_check"]
        lines += ["", f"Measured pair gains: {doc['pairs_source']} (the same recipe and seeds). This run's half-width "
                  "singles against that run's, total test loss per seed: "
                  + ", ".join(f"seed {s}: {c['this_run']:.6f} vs {c['seed_noise']:.6f}" for s, c in check.items())
                  + "."]
    lines += ["", "Lookahead affinity (x 1000), mean over seeds, row = source, column = target:", ""]
    for kind in ("tag", "tag-nomomentum"):
        mean = [[math.fsum(doc["per_seed"][str(s)][kind]["matrix"][i][j] for s in seeds) / len(seeds)
                 for j in range(len(tasks))] for i in range(len(tasks))]
        lines += [f"{kind}:", "", "| source | " + " | ".join(letters) + " |", "|---|" + "---|" * len(tasks)]
        lines += [f"| {letters[i]} | " + " | ".join(f"{1000 * v:+.2f}" for v in row) + " |" for i, row in enumerate(mean)]
        lines.append("")
    lines += ["Grouping chosen by each estimate (validation, normalised objective, SNT):", "",
              "| budget | " + " | ".join(f"seed {s}: tag | seed {s}: tag-nomomentum" for s in seeds) + " |",
              "|---|" + "---|---|" * len(seeds)]
    for b, same in summ["same_choice_with_and_without_momentum"].items():
        cells = []
        for s in seeds:
            for kind in ("tag", "tag-nomomentum"):
                c = doc["per_seed"][str(s)][kind]["choices"].get(b)
                cells.append(" + ".join(c) if c else "")
        lines.append(f"| {float(b):g} | " + " | ".join(cells) + " |")
    n_same = sum(sum(v) for v in summ["same_choice_with_and_without_momentum"].values())
    n_all = sum(len(v) for v in summ["same_choice_with_and_without_momentum"].values())
    lines += ["", f"The two lookaheads choose the same grouping in {n_same} of {n_all} (budget, seed) cases."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
