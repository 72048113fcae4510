"""The pipeline's stages, in the order they run (STAGE_FUNCTIONS).

Each stage is a function of the run's context (taskgroup.pipeline.context) that reads earlier
stages' files, writes its own atomically and returns what pipeline.json records for it; the run
(taskgroup.pipeline.run) calls them in order and skips those a resumed run has finished.
"""

from __future__ import annotations

import dataclasses
import shutil
from typing import Any, Callable

from taskgroup.bench import measure_bundle
from taskgroup.errors import TaskgroupError
from taskgroup.fileio import write_json_atomic
from taskgroup.grouping import Grouping
from taskgroup.pipeline.baselines import (BASELINES_FILE, Baseline, BaselineNetwork, independent_singles,
                                          measured_baselines, one_network, random_groupings)
from taskgroup.pipeline.context import RunContext
from taskgroup.pipeline.report import write_report
from taskgroup.pipeline.report_assembly import assemble_report
from taskgroup.pipeline.report_text import stakes_of
from taskgroup.profile.profiler import ProfileConfig, run_profile, write_profile
from taskgroup.search import Selector, frontier, make_candidate
from taskgroup.search.profiled import round_up
from taskgroup.search.registry import get_estimator
from taskgroup.search.stakes import frontier_stakes
from taskgroup.search.topk import estimate_errors
from taskgroup.tasks import PAPER_TASKS
from taskgroup.train import CandidateSpec, candidate_set
from taskgroup.train.candidates import tracks_affinity
from taskgroup.train.recipes import seed_noise_for
from taskgroup.train.rounds import RoundsConfig, train_rounds
from taskgroup.train.store_integrity import verified_checkpoint_sha256
from taskgroup_exporters import export_bundle, validation_frames


def stage_profile(ctx: RunContext) -> dict[str, Any]:
    """Measure this device's cost of every candidate architecture: the budget in ms comes from it."""
    preset = ctx.config.preset
    # The run's own architecture: a --config may change it from the preset's.
    doc = run_profile(ProfileConfig(device=ctx.config.device, backend=ctx.config.backend, preset=preset,
                                    tasks=ctx.config.tasks, seed=ctx.config.seed, arch=ctx.run_config().arch),
                      report=ctx.say)
    write_profile(doc, ctx.run_dir / "profile.json")
    p = ctx.profile()
    ctx.say(f"standard network (all {len(ctx.config.tasks)} heads, full width): {p.standard_network_ms():.3f} ms; "
            f"budget {ctx.budget_ms():.3f} ms")
    return {"standard_network_ms": p.standard_network_ms(), "budget_ms": ctx.budget_ms()}


def _check_budget_feasible(ctx: RunContext) -> None:
    """Costs do not depend on losses: an impossible budget is known as soon as the profile is,
    before any training."""
    p, budget = ctx.profile(), ctx.budget_ms()
    est = get_estimator(ctx.config.estimate) if ctx.config.estimate else None
    # Affinity estimators need trained networks; they estimate every full-width group, as `all` trains.
    kind = "all" if getattr(est, "uses_table", False) else ctx.config.candidates
    cands = [make_candidate(s.tasks, s.width, {t: 0.0 for t in s.tasks}, p.cost_fn)
             for s in candidate_set(kind, ctx.config.tasks)]
    if est is not None and kind == ctx.config.candidates:
        cands = est(cands, p.cost_fn)
    cheap = Selector(cands, ctx.config.tasks, unit="ms", corun=p.corun).cheapest()
    if cheap is not None and cheap.cost > budget * (1 + 1e-9):
        nets = ", ".join("+".join(n.candidate.tasks) + f"@{n.candidate.width:g}" for n in cheap.networks)
        raise TaskgroupError(
            f"budget {budget:.4g} ms is below the cheapest grouping these candidates allow ({cheap.cost:.4g} ms: "
            f"{nets}); resume with a larger budget, e.g. --budget-ms {round_up(cheap.cost):g} or --budget-snt "
            f"{round_up(cheap.cost / p.standard_network_ms()):g} with --resume (the profile is kept)")


def stage_candidates(ctx: RunContext) -> dict[str, Any]:
    """Train the candidate set the search chooses among (to the early stage with ESA)."""
    _check_budget_feasible(ctx)  # before any training
    if ctx.config.candidates == "rounds":
        return _train_rounds(ctx)

    specs = candidate_set(ctx.config.candidates, ctx.config.tasks)
    ctx.train(specs, (ctx.candidate_stage(),), affinity=tracks_affinity(ctx.config.candidates))
    return {"networks": len(specs)}


def _train_rounds(ctx: RunContext) -> dict[str, Any]:
    """Adaptive training at the run's budget (taskgroup.train.rounds): every candidate to the early
    stage, then fully only those that can still change the choice."""
    config, p = ctx.run_config(), ctx.profile()
    data = ctx.data()
    budget = ctx.budget_ms()
    rounds = RoundsConfig(budget, budget, "ms", normalize=ctx.config.normalize, corun=p.corun)
    table, plan = train_rounds(ctx.train_dir, ctx.config.tasks, config, rounds,
                               resume=(ctx.train_dir / "runs.sqlite").exists(), seeds=ctx.config.seed_list,
                               progress=ctx.progress, data=data, executor=ctx.executor,
                               cost_fn=p.cost_fn)
    trained = sum(1 for n in table.networks if n.stage == "final")
    ctx.say(f"rounds: {trained} of {sum(1 for n in table.networks if n.stage == 'early')} networks trained "
            f"fully; {plan.reason}")
    return {"networks": len(table.networks), "trained_fully": trained}


def stage_select(ctx: RunContext) -> dict[str, Any]:
    """Choose the grouping on the candidates (selected.json) and write the whole time-vs-loss frontier."""
    cands = ctx.candidates("val", ctx.candidate_stage(), ctx.config.estimate)
    scales = ctx.scales("val")
    corun = ctx.profile().corun  # measured slowdown of networks run back to back
    result = ctx.select(cands, ctx.candidate_stage(), ctx.run_dir / "selected.json", ctx.config.top_k)
    sel = result.selection
    if ctx.config.top_k > 1:
        ctx.say(f"top-{ctx.config.top_k}: {len(result.grouping.top_k.top_k)} groupings, "
                f"{len(result.grouping.top_k.to_train)} estimated network(s) to train in finalize")
    result.grouping.save(ctx.run_dir / "selected.json")
    for warning in result.warnings:
        ctx.say(f"WARNING: {warning.message()}")
    front = frontier(cands, tasks=ctx.config.tasks, unit="ms", scales=scales, corun=corun)
    tested = ctx.candidates("test", ctx.candidate_stage())
    for point in front.points:  # the report draws each trained grouping's test score beside the curve
        if not any(n.candidate.estimated for n in point.networks):
            try:
                point.evaluate(tested, "test")
            except TaskgroupError:  # a network without test losses (e.g. an ESA-only stage): no marker
                pass
    write_json_atomic(ctx.run_dir / "frontier.json", _frontier_with_stakes(ctx, front, cands, scales, corun))
    ctx.say(_describe(sel))
    return {"objective": sel.objective, "cost_ms": sel.cost, "frontier_points": len(front.points)}


def _frontier_with_stakes(ctx: RunContext, front, cands, scales, corun: float) -> dict[str, Any]:
    """The frontier's JSON, each point with its optimum against one network at that budget
    (taskgroup.search.stakes, selection split): the budgets at which grouping matters."""
    stage = ctx.candidate_stage()
    record = seed_noise_for(ctx.config.preset, ctx.run_config()) \
        if set(ctx.config.tasks) == set(PAPER_TASKS) and stage == "final" else None
    doc = front.to_json()
    table = ctx.table()
    stakes = frontier_stakes(front.points, cands, ctx.config.tasks, "ms", scales=scales, corun=corun,
                             table=table, split="val", stage=stage, record=record,
                             objective=ctx.config.normalize)
    for point, st in zip(doc["points"], stakes):
        point["stakes"] = None if st.one_network is None else st.one_network.to_json()
    return doc


def stage_finalize(ctx: RunContext) -> dict[str, Any]:
    """Fully train the chosen networks that were only estimated or early-stopped, then
    re-choose which chosen network serves each task on their final validation losses (under the
    within-noise rule: these are fully trained losses, also after an ESA selection)."""
    chosen = Grouping.load(ctx.run_dir / "selected.json")
    # top-k: every grouping's networks (the file's summaries), else the chosen grouping's
    networks = ([n.to_json() for g in chosen.top_k.top_k for n in g.networks] if chosen.top_k and chosen.top_k.top_k
                else [n.to_json() for n in chosen.networks])
    specs = list(dict.fromkeys(CandidateSpec(tuple(n["tasks"]), float(n["width"])) for n in networks))
    ctx.train(specs, ("final",))
    keys = {(frozenset(s.tasks), s.width) for s in specs}
    final = [c for c in ctx.candidates("val", "final") if c.key in keys]
    result = ctx.select(final, "final", ctx.run_dir / "best.json", eval_label="test",
                        eval_candidates=[c for c in ctx.candidates("test", "final") if c.key in keys])
    sel, grouping = result.selection, result.grouping
    grouping = dataclasses.replace(grouping, estimate_errors=estimate_errors(networks, final))
    grouping.save(ctx.run_dir / "best.json")
    ctx.say(_describe(sel))
    for warning in result.warnings:
        ctx.say(f"WARNING: {warning.message()}")
    return {"objective": sel.objective, "evaluated_total": sel.evaluation.total, "cost_ms": sel.cost}


def stage_baselines(ctx: RunContext) -> dict[str, Any]:
    """Train and score what a practitioner would ship without the search, at the same budget."""
    p, budget, tasks = ctx.profile(), ctx.budget_ms(), ctx.config.tasks
    singles = [c for c in ctx.candidates("val", "final") if len(c.tasks) == 1]
    if ctx.candidate_stage() != "final":  # ESA: singles not trained fully yet are chosen on their early losses
        have = {(c.tasks, c.width) for c in singles}
        singles += [c for c in ctx.candidates("val", ctx.candidate_stage())
                    if len(c.tasks) == 1 and (c.tasks, c.width) not in have]
    if ctx.config.candidates in ("base", "rounds"):  # singles never trained: chosen on their estimates
        have = {(c.tasks, c.width) for c in singles}
        singles += [c for c in ctx.candidates("val", "final", ctx.config.estimate)
                    if len(c.tasks) == 1 and (c.tasks, c.width) not in have]
    baselines = [one_network(tasks, budget, p.network_ms)]
    baselines.append(independent_singles(singles, tasks, budget, "ms", ctx.scales("val"), corun=p.corun))
    best = Grouping.load(ctx.run_dir / "best.json")
    chosen = Baseline("chosen", tuple(BaselineNetwork(n.served, n.width) for n in best.networks
                                      if n.served == n.tasks))  # a random draw equal to it says nothing
    baselines += random_groupings(tasks, budget, p.network_ms, ctx.config.random_baselines, ctx.config.seed,
                                  exclude=[*baselines, chosen], corun=p.corun)
    specs = [CandidateSpec(n.tasks, n.width) for b in baselines for n in b.networks]
    ctx.train(specs, ("final",))
    test = {c.key: c for c in ctx.candidates("test", "final")}
    record = measured_baselines(baselines, budget, test, p.network_ms, p.corun)
    record.save(ctx.run_dir / BASELINES_FILE)
    return {"baselines": len(record.baselines)}


def stage_export(ctx: RunContext) -> dict[str, Any]:
    """Export the final grouping's networks as the deployable bundle (taskgroup export)."""
    # Temporary directories of an export that was killed (the run directory is locked: no other
    # process is exporting into it).
    for stale in ctx.run_dir.glob(".bundle.*"):
        if stale.is_dir() and stale.name.endswith((".partial", ".old")):
            shutil.rmtree(stale)
    config = ctx.run_config()
    frames, source = validation_frames(config.data, ctx.config.tasks, 32)
    out = export_bundle(ctx.run_dir / "best.json", ctx.run_dir / "bundle", "onnx", "fp32", frames,
                        frames_source=source, overwrite=True, log=ctx.say,
                        verify_checkpoint=verified_checkpoint_sha256)
    return {"bundle": str(out.relative_to(ctx.run_dir))}


def stage_bench(ctx: RunContext) -> dict[str, Any]:
    """Measure the bundle's latency per frame against the profile's prediction."""
    # As `taskgroup bench` measures: sessions with the profile's thread count (from the manifest) and the
    # profiler's own timing function, so measured and predicted latency compare like with like.
    result = measure_bundle(ctx.run_dir / "bundle", device=ctx.config.device, runs=300)
    result.save(ctx.run_dir / "bench.json")
    ctx.say(f"bundle p50 {result.whole.p50_ms:.3f} ms (p99 {result.whole.p99_ms:.3f}); predicted "
            f"{result.predicted_ms:.3f} ms (measured / predicted {result.measured_over_predicted:.3f}); "
             f"budget {ctx.budget_ms():.3f} ms")
    return {"p50_ms": result.whole.p50_ms, "predicted_ms": result.predicted_ms}


def stage_report(ctx: RunContext) -> dict[str, Any]:
    """Gather the run's files into the report's data and write report.md and its figures."""
    data = assemble_report(ctx)
    path = write_report(ctx.run_dir, data)
    stakes = stakes_of(data)
    ctx.say(f"stakes (test split): {stakes.conclusion()}")
    ctx.say(f"report: {path}")
    return {"report": str(path.relative_to(ctx.run_dir)), "grouping_matters": stakes.matters}


# The stages in the order they run; each reads earlier stages' files and returns what pipeline.json records.
STAGE_FUNCTIONS: tuple[tuple[str, Callable[[RunContext], dict[str, Any] | None]], ...] = (
    ("profile", stage_profile),
    ("candidates", stage_candidates),
    ("select", stage_select),
    ("finalize", stage_finalize),
    ("baselines", stage_baselines),
    ("export", stage_export),
    ("bench", stage_bench),
    ("report", stage_report),
)
STAGES = tuple(name for name, _ in STAGE_FUNCTIONS)


def _describe(sel) -> str:
    """A selection in one progress line: each network, what it serves and costs, and the rule's choice."""
    parts = []
    for net in sel.networks:
        c = net.candidate
        parts.append(f"{'+'.join(c.tasks)}@{c.width:g} serves {','.join(net.served)} ({net.cost:.3f} ms)")
    line = f"grouping: {'; '.join(parts)}; total val loss {sel.total_loss:.5f}; cost {sel.cost:.3f} ms"
    block = getattr(sel, "parsimony", None)
    if block is not None and not block.chose_the_optimum:
        line += (f" (the cheapest within {block.tolerance:.3g} of the optimum's objective: "
                 f"{' + '.join(block.optimum.networks)}, {block.optimum.objective:.5g})")
    return line

