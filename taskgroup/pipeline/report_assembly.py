"""The report's data gathered from a run's files (assemble_report): best.json, baselines.json,
bench.json, frontier.json, the loss table and the profile, each read through its contract.

What the report needs is computed here from what the stages wrote (pairwise gains, per-seed losses,
the compute spent on the search, notes on the method), apart from running them: a finished run's
report can be assembled again without training anything.
"""

from __future__ import annotations

import math
import os
import platform
from math import comb
from pathlib import Path
from typing import Any

import numpy as np

from taskgroup.bench import BenchResult
from taskgroup.grouping import Grouping, GroupingNetwork
from taskgroup.losstable import LossTable
from taskgroup.pipeline.baselines import BASELINES_FILE, BaselinesRecord
from taskgroup.pipeline.context import RunContext
from taskgroup.pipeline.report_model import GroupingResult, ReportData, frontier_points
from taskgroup.pipeline.report_text import parsimony_text, robustness_text
from taskgroup.profile.device import cpu_model
from taskgroup.search.affinity import calibration_for
from taskgroup.search.frontier import Frontier
from taskgroup.search.profiled import device_summary
from taskgroup.tasks import PAPER_TASKS
from taskgroup.train import candidate_set
from taskgroup.train.recipes import estimator_quality_for, seed_noise_for
from taskgroup.train.rounds import RoundsLog


def assemble_report(ctx: RunContext) -> ReportData:
    """Everything the report shows, from the finished stages' files (no training, no measuring)."""
    best = Grouping.load(ctx.run_dir / "best.json")
    base = BaselinesRecord.load(ctx.run_dir / BASELINES_FILE)
    bench = BenchResult.load(ctx.run_dir / "bench.json")
    front = Frontier.load(ctx.run_dir / "frontier.json")
    p = ctx.profile()
    table = ctx.table()

    def result(name: str, networks: list[GroupingNetwork], cost: float, losses: dict[str, float]) -> GroupingResult:
        return GroupingResult(name, networks, cost, losses, per_seed=served_per_seed(table, networks, "test"))

    chosen = result("chosen", list(best.networks), best.cost, best.evaluation.losses)
    baselines = [result(b.name, list(b.networks), b.cost_ms, dict(b.test_losses)) for b in base.baselines]
    record = seed_noise_for(ctx.config.preset, ctx.run_config()) \
        if set(ctx.config.tasks) == set(PAPER_TASKS) else None
    return ReportData(
        tasks=list(ctx.config.tasks), budget=ctx.budget_ms(), budget_unit="ms",
        device=device_summary(p),
        chosen=chosen, baselines=baselines,
        pairwise_gains=pairwise_gains(table, "test", ctx.candidate_stage()), gains_split="test",
        frontier=frontier_points(front),
        latency={"p50_ms": bench.whole.p50_ms, "p90_ms": bench.whole.p90_ms, "p99_ms": bench.whole.p99_ms,
                 "predicted_ms": bench.predicted_ms, "standalone_sum_ms": bench.standalone_p50_sum_ms},
        compute=search_compute(table, ctx.config.tasks, ctx.candidate_stage(), ctx.config.candidates,
                               rounds_networks(ctx.train_dir) if ctx.config.candidates == "rounds" else None),
        machine=machine_description(), notes=method_notes(ctx, best), test_scales=ctx.scales("test"),
        seeds=list(table.seed_values()) or [ctx.config.seed], objective=ctx.config.normalize,
        seed_noise=record,
        warnings=[w.message() for w in ctx.not_learnt(best)],
        gains_per_seed=pairwise_gains_per_seed(table, "test", ctx.candidate_stage()),
        # Robustness of the choice among every candidate (selection), not only among the chosen networks.
        robustness=robustness_text(Grouping.load(ctx.run_dir / "selected.json")),
        parsimony=parsimony_text(Grouping.load(ctx.run_dir / "selected.json"), best),
        estimate_errors=[e.to_json() for e in best.estimate_errors or ()],
        affinity=affinity_summary(ctx),
    )


def affinity_summary(ctx: RunContext) -> dict[str, Any] | None:
    """The run's affinity (mean matrices) and how the estimator in use reads it, for the report."""
    table, stage = ctx.table(), ctx.candidate_stage()
    if table.affinity is None or stage not in table.affinity.stages():
        return None
    doc: dict[str, Any] = {"tasks": list(table.affinity.tasks), "seeds": table.affinity.seeds(stage),
                           "every": table.affinity.runs[0].every}
    for kind in table.affinity.kinds(stage):
        doc[kind] = table.affinity.mean(kind, stage)
    if ctx.config.estimate in table.affinity.kinds(stage):
        cal = calibration_for(table, ctx.config.estimate, "val", stage)
        doc["estimate"] = ctx.config.estimate
        doc["calibration"] = {t: {"ratio": cal.ratio[t], "explained": cal.explained(t),
                                  "residual": cal.residual[t]} for t in cal.ratio}
    return doc


def method_notes(ctx: RunContext, best: Grouping) -> list[str]:
    """Plain-language notes on how the choice was made: estimator, ESA, co-run overhead, the SNT budget."""
    notes = [f"Selection used {selection_inputs(ctx.config.estimate, len(ctx.config.tasks))}"
             + (f" and ESA (candidates trained for {ctx.config.esa:g} of the schedule)"
                if ctx.candidate_stage() == "early" else "")
             + f"; the chosen networks were then trained fully and re-scored (validation objective "
             f"{best.objective:.5f})."]
    quality = estimator_quality_for(ctx.config.preset, ctx.run_config(), ctx.config.tasks, ctx.config.normalize)
    if quality is not None and ctx.candidate_stage() == "final":
        sentence = quality.sentence(ctx.config.candidates, ctx.config.estimate, ctx.config.top_k)
        if sentence:
            notes.append(sentence)
    factor = best.corun_factor
    if factor != 1:
        notes.append(f"Predicted latencies include the co-run overhead measured in the profile: the "
                     f"{len(best.networks)} chosen networks run back to back are predicted to take "
                     f"{factor:.3f}x the sum of each alone; the baselines are costed the same way.")
    if ctx.config.budget_snt is not None:
        notes.append(f"The budget {ctx.config.budget_snt:g} SNT is {ctx.budget_ms():.3f} ms: "
                     f"{ctx.config.budget_snt:g} x the profiled standard network (all tasks, full width).")
    return notes + label_notes(ctx.table())


def label_notes(table: LossTable) -> list[str]:
    """Tasks labelled on only part of a split (partial labels): their losses average over fewer samples."""
    notes = []
    doc = table.meta.get("labelled_samples") if isinstance(table.meta, dict) else None
    doc = doc if isinstance(doc, dict) else {}
    sizes, labelled = doc.get("samples") or {}, doc.get("labelled") or {}
    for task, per in labelled.items():
        partial = [f"{per[s]} of {sizes[s]} {s}" for s in ("train", "val", "test")
                   if s in per and s in sizes and per[s] < sizes[s]]
        if partial:
            notes.append(f"{task} is labelled on {', '.join(partial)} samples; its losses average over the labelled "
                         "pixels only.")
    return notes


def pairwise_gains(table: LossTable, split: str, stage: str) -> dict[str, dict[str, float]]:
    """The paper's pairwise table: L(half-size single of t) / L(pair {t, p} on t) - 1."""
    half = {n.tasks[0]: n.losses[split][n.tasks[0]] for n in table.networks
            if len(n.tasks) == 1 and n.width == 0.5 and n.stage == stage and split in n.losses}
    gains: dict[str, dict[str, float]] = {}
    for n in table.networks:
        if len(n.tasks) == 2 and n.width == 1.0 and n.stage == stage and split in n.losses:
            a, b = n.tasks
            for t, partner in ((a, b), (b, a)):
                if t in half and n.losses[split].get(t, 0) > 0:
                    gains.setdefault(t, {})[partner] = half[t] / n.losses[split][t] - 1
    return gains


def served_per_seed(table: LossTable, networks: list[GroupingNetwork], split: str) -> dict[int, dict[str, float]]:
    """seed -> served task -> loss of a grouping's fully trained networks, over the seeds all of them have."""
    index = {n.key: n for n in table.networks}
    per_seed: dict[int, dict[str, float]] = {}
    seed_sets = []
    for n in networks:
        net = index.get((frozenset(n.tasks), float(n.width), "final"))
        if net is None or not net.seeds:
            return {}
        seed_sets.append(set(net.seeds))
        for t in n.served:
            for seed, value in net.per_seed(split, t).items():
                per_seed.setdefault(seed, {})[t] = value
    common = set.intersection(*seed_sets) if seed_sets else set()
    return {seed: losses for seed, losses in sorted(per_seed.items()) if seed in common}


def pairwise_gains_per_seed(table: LossTable, split: str, stage: str) -> dict[str, dict[str, dict[int, float]]]:
    """The pairwise gains of `pairwise_gains`, seed by seed (seeds both networks have)."""
    half = {n.tasks[0]: n for n in table.networks if len(n.tasks) == 1 and n.width == 0.5 and n.stage == stage}
    gains: dict[str, dict[str, dict[int, float]]] = {}
    for n in table.networks:
        if len(n.tasks) == 2 and n.width == 1.0 and n.stage == stage and len(n.seeds) > 1:
            for t, partner in ((n.tasks[0], n.tasks[1]), (n.tasks[1], n.tasks[0])):
                if t not in half:
                    continue
                h, pair = half[t].per_seed(split, t), n.per_seed(split, t)
                gains.setdefault(t, {})[partner] = {s: h[s] / pair[s] - 1 for s in sorted(set(h) & set(pair))
                                                    if pair[s] > 0}
    return gains


def rounds_networks(train_dir: Path) -> set[tuple]:
    """(tasks, width) of every network adaptive rounds trained fully (RUN/rounds.json)."""
    return {(frozenset(n["tasks"]), float(n["width"])) for r in RoundsLog.load(train_dir).rounds for n in r.networks}


def search_compute(table: LossTable, tasks: tuple[str, ...], stage: str, candidate_kind: str,
                   rounds: set[tuple] | None = None) -> dict[str, float]:
    """Training time spent on the search vs the time to train every subset at full width.

    The time of a k-task network is extrapolated linearly in k from the measured networks of
    the candidate stage (each extra head adds decoder compute). Adaptive rounds (`rounds`: the
    networks they trained fully) spent every candidate's early stage plus those networks' full runs."""
    searched = {(frozenset(c.tasks), c.width) for c in candidate_set(candidate_kind, tasks)}
    measured = [n for n in table.networks if n.stage == stage and n.wall_time_s]
    spent = math.fsum(n.wall_time_s for n in measured if (frozenset(n.tasks), n.width) in searched)
    n_trained = sum(1 for n in measured if (frozenset(n.tasks), n.width) in searched)
    if rounds is not None:
        early = [n for n in table.networks if n.stage == "early" and n.wall_time_s]
        full = [n for n in measured if (frozenset(n.tasks), n.width) in rounds]
        spent = math.fsum(n.wall_time_s for n in early) + math.fsum(n.wall_time_s for n in full)
        n_trained = len(full)
    # Per-network times come from every measured network (baselines included): more points, same recipe.
    full = [(len(n.tasks), n.wall_time_s) for n in measured if n.width == 1.0]
    half = [n.wall_time_s for n in measured if n.width == 0.5]
    ks = np.array([k for k, _ in full], dtype=float)
    ts = np.array([t for _, t in full], dtype=float)
    if len(set(ks)) >= 2:
        slope, intercept = np.polyfit(ks, ts, 1)
    else:
        slope, intercept = 0.0, float(ts.mean()) if len(ts) else 0.0
    n = len(tasks)
    all_time = sum(comb(n, k) * max(0.0, intercept + slope * k) for k in range(1, n + 1))
    all_time += n * (float(np.mean(half)) if half else 0.0)
    return {"search_train_s": spent, "n_trained": n_trained,
            "all_candidates_train_s": all_time, "n_all": 2 ** n - 1 + n}


def machine_description() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def selection_inputs(estimate: str | None, n_tasks: int) -> str:
    """What the selection chose among, in words: HOA estimates networks of three or more tasks, so with two
    tasks there is nothing for it to estimate."""
    if estimate == "hoa" and n_tasks < 3:
        return f"measured networks only (HOA estimates networks of 3+ tasks; a {n_tasks}-task run has none)"
    used = {"hoa": "HOA-estimated higher-order networks",
            "tag": "networks estimated from the all-task network's lookahead affinity (TAG)",
            "tag-nomomentum": "networks estimated from the all-task network's lookahead affinity without the "
                              "momentum buffer",
            "cosine": "networks estimated from the all-task network's gradient cosine similarity",
            "base": "networks estimated from the all-task network alone (base-model estimation: full and half "
                    "width, and its gradient cosine; no single trained)",
            "rounds": "adaptive training in rounds (every network to an early stage, fully only those that could "
                      "still change the choice; the rest estimated from their early losses)"}
    return used.get(estimate, f"{estimate}-estimated networks") if estimate else "measured networks only"
