"""`taskgroup select` and `taskgroup frontier`: the exact grouping search from the command line.

Neither command imports PyTorch: they read a loss table, search, and write JSON (and a PNG).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app, output_console
from taskgroup.errors import TaskgroupError
from taskgroup.search.normalize import loss_scales
from taskgroup.search.robustness import NOISE_SIGMAS

BUDGET_HELP = ("Inference budget in SNT units (standard network time, the paper's unit): a full-size network costs 1, "
               "a half-size network 0.5, heads are free. The chosen networks' costs must add up to at most this. "
               "Without --profile only; with a profile use --budget-ms or --budget-snt.")
PROFILE_HELP = ("Device profile (JSON from `taskgroup profile`) to cost networks in milliseconds on that device: a "
                "network costs its trunk at its width plus the heads of the tasks it serves (auxiliary heads are "
                "dropped at deployment and cost nothing). It must cover the loss table's tasks, widths, preset and "
                "input size.")
BUDGET_MS_HELP = ("Inference budget in milliseconds per frame on the --profile device: the chosen networks' predicted "
                  "latencies (profiled trunk + served heads) must add up to at most this.")
BUDGET_SNT_HELP = ("Inference budget in SNT measured on the --profile device: Y x the profiled latency of the standard "
                   "network (full width, serving every task of the loss table). E.g. 2.5 = two and a half standard "
                   "networks' time.")
STATISTIC_HELP = ("Latency statistic of the profile to cost networks at: p50 (median, default), p90 or p99 (more "
                  "conservative; a sum of per-part p99s usually overestimates a whole network's p99).")
LOSSES_HELP = ("Loss table to select on: a loss-table JSON file, a run directory containing losses.json, or one of the "
               "paper's tab-separated tables (line 1 = half-size single-task networks, then one full-size network "
               "per line; empty cell = task absent).")
ESTIMATE_HELP = ("Estimate the losses of networks that were not trained. 'hoa' = the paper's Higher Order Approximation: "
                 "only single-task and pair networks are trained; each task's loss in a network of 3+ tasks is the mean "
                 "of its losses in the pair networks inside that group (measured 3+-task networks are replaced). "
                 "'tag' / 'cosine' = one-run affinity, for a run trained with `train --candidates affinity`: only "
                 "the singles and one all-task network are trained; each task's loss in a group is its single-task "
                 "loss scaled by its groupmates' lookahead affinity (tag) or gradient cosine (cosine) onto it, "
                 "calibrated on the all-task network. 'tag-nomomentum' = tag with the lookahead taken without the "
                 "optimizer's momentum buffer (measured in the same run). 'base' = base-model estimation, for a run "
                 "trained with `train --candidates base`: no single is trained; every group and every half-width "
                 "single is estimated from the all-task network (full and half width) and the gradient cosine "
                 "measured while training it. 'rounds' = adaptive training, for `train --candidates rounds`: networks "
                 "trained fully as measured, the others from their early-stage losses through a fit on the networks "
                 "that have both (docs/select.md).")
SERVED_NOTE = ("A task is *served* by exactly one chosen network (the one the grouping uses to predict it at "
               "deployment); a network may be trained on more tasks than it serves, its extra heads helping training "
               "only. The objective is the sum over tasks of the serving network's loss (optionally weighted and "
               "normalised).")


class Estimate(str, Enum):
    hoa = "hoa"
    tag = "tag"
    tag_nomomentum = "tag-nomomentum"
    cosine = "cosine"
    base = "base"
    rounds = "rounds"


class Normalize(str, Enum):
    auto = "auto"
    none = "none"
    reference = "reference"
    single = "single"


class Solver(str, Enum):
    auto = "auto"
    milp = "milp"
    dp = "dp"
    reference = "reference"
    colgen = "colgen"


class Statistic(str, Enum):
    p50 = "p50"
    p90 = "p90"
    p99 = "p99"


@dataclass
class Inputs:
    """Everything the two commands read, resolved and validated before any output is written."""
    tasks: tuple[str, ...]  # task names in table order
    candidates: list  # selection candidates
    eval_candidates: Optional[list]  # candidates of the evaluation table, if any
    eval_label: Optional[str]  # what the evaluation table is ("test", a file name)
    table_dir: Path  # directory checkpoint paths in the loss table are relative to
    weights: Optional[dict[str, float]]  # per-task importance weights
    scales: Optional[dict[str, float]]  # per-task normalisation divisors
    options: dict  # recorded in the output for provenance
    profile: Optional[object] = None  # DeviceProfile the costs come from (ms), or None for SNT
    standard_ms: Optional[float] = None  # one SNT on the profile: full width serving every task of the table
    reference: dict = dataclasses.field(default_factory=dict)  # task -> split -> trivial-predictor loss
    split: str = "val"  # the split selection reads
    within_noise: Optional[object] = None  # taskgroup.search.withinnoise.WithinNoise where the table's recipe was measured
    table: Optional[object] = None  # the loss table (None for the paper's tables): per-seed losses for the stakes
    stage: str = "final"  # the training stage selection reads
    seed_noise: Optional[object] = None  # taskgroup.seednoise.SeedNoise where the table's recipe was measured

    def not_learnt(self, sel) -> list:
        """Served tasks the chosen networks do not learn (loss not clearly below the trivial predictor's)."""
        from taskgroup.learnability import not_learnt

        return not_learnt([(t, n.candidate.name + (" (estimated)" if n.candidate.estimated else ""),
                            n.candidate.losses[t]) for n in sel.networks for t in n.served], self.reference, self.split)

    @property
    def corun(self) -> float:
        """The profile's measured co-run overhead per extra network (0 for SNT costs)."""
        return self.profile.corun if self.profile is not None else 0.0


@dataclass(frozen=True)
class Budget:
    """The budget as the user gave it, resolved to the unit costs are in."""
    value: Optional[float]  # in `unit` (None: no limit, for frontier)
    unit: str  # "snt" (no profile) or "ms" (costs from a profile)
    snt: Optional[float] = None  # the --budget-snt multiple, if the budget was given that way


def check_budget_flags(profile: Optional[Path], budget: Optional[float], budget_ms: Optional[float],
                       budget_snt: Optional[float]) -> None:
    """The three budget flags are exclusive and --budget-ms/--budget-snt need a profile; fail before any work."""
    if profile is None:
        if budget_ms is not None or budget_snt is not None:
            flag = "--budget-ms" if budget_ms is not None else "--budget-snt"
            raise TaskgroupError(f"{flag} needs --profile P.json (a device profile from `taskgroup profile`) to know "
                                 "what a network costs on the device; without a profile give --budget in SNT units "
                                 "(full-size network = 1, half-size = 0.5)")
        if budget is None:
            raise TaskgroupError("give a budget: --budget in SNT units, or --profile P.json with --budget-ms or "
                                 "--budget-snt")
    else:
        if budget is not None:
            raise TaskgroupError("with --profile, give the budget as --budget-ms X (milliseconds on the profiled "
                                 "device) or --budget-snt Y (Y x the profiled standard network); --budget is for "
                                 "selection without a profile")
        if budget_ms is not None and budget_snt is not None:
            raise TaskgroupError("give one of --budget-ms and --budget-snt, not both")
        if budget_ms is None and budget_snt is None:
            raise TaskgroupError("with --profile, give the budget as --budget-ms X or --budget-snt Y")
    for flag, value in (("--budget", budget), ("--budget-ms", budget_ms), ("--budget-snt", budget_snt)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise TaskgroupError(f"{flag} must be a positive number, found {value:g}")


def resolve_budget(inp: Inputs, budget: Optional[float], budget_ms: Optional[float],
                   budget_snt: Optional[float]) -> Budget:
    if inp.profile is None:
        return Budget(budget, "snt")
    if budget_ms is not None:
        return Budget(float(budget_ms), "ms")
    # A budget of many standard networks can overflow in ms (1e308 SNT x 0.3 ms): every grouping fits it as
    # well as the largest finite budget, which keeps the grouping file's numbers finite (JSON has no inf).
    ms = min(float(budget_snt) * inp.standard_ms, sys.float_info.max)
    return Budget(ms, "ms", float(budget_snt))


def _is_tsv(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() not in (".json",)


def _parse_weights(text: Optional[str]) -> Optional[dict[str, float]]:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise TaskgroupError(f"--weights: expected TASK=NUMBER[,TASK=NUMBER...], found {part.strip()!r}") from None
    return out


def load_inputs(losses: Path, split: str, stage: str, estimate: Optional[Estimate], evaluate: Optional[Path],
                evaluate_split: Optional[str], task_names: Optional[str], weights: Optional[str],
                normalize: Normalize, profile: Optional[Path] = None, statistic: str = "p50",
                per_task_stopping: bool = False) -> Inputs:
    from taskgroup.losstable import SPLITS, STAGES, LossTable, resolve_table_path
    from taskgroup.search import candidates_from_table, read_paper_table

    if split not in SPLITS:
        raise TaskgroupError(f"--split must be one of {', '.join(SPLITS)}, got '{split}'")
    if stage not in STAGES:
        raise TaskgroupError(f"--stage must be one of {', '.join(STAGES)}, got '{stage}'")
    if evaluate_split is not None and evaluate_split not in SPLITS:
        raise TaskgroupError(f"--evaluate-split must be one of {', '.join(SPLITS)}, got '{evaluate_split}'")
    if profile is None and statistic != "p50":
        raise TaskgroupError(f"--statistic {statistic} reads latencies from a device profile; give --profile P.json "
                             "(SNT costs have no statistic)")
    names = tuple(n.strip() for n in task_names.split(",")) if task_names else None
    if names is not None and not all(names):
        raise TaskgroupError(f"--task-names: empty name in {task_names!r}")
    if not losses.exists():
        raise TaskgroupError(f"{losses}: no such file or directory")
    est = estimate.value if estimate else None
    if _is_tsv(losses):
        if per_task_stopping:
            raise TaskgroupError("--per-task-stopping needs a training run's loss table (the paper's tables have "
                                 "no per-task stops)")
        table = read_paper_table(losses, names, split=split, stage=stage)
        table_dir = losses.parent
    else:
        table = LossTable.load(losses)
        table_dir = resolve_table_path(losses).parent
        if names is not None:
            raise TaskgroupError("--task-names applies to the paper's tab-separated tables; a loss-table JSON names its tasks")
    prof, standard_ms, cost_fn = None, None, None
    if profile is not None:
        from taskgroup.profile import load_profile
        from taskgroup.search.profiled import check_profile_for_table, standard_network_ms

        prof = load_profile(profile, statistic)
        check_profile_for_table(prof, table, stage, losses)
        standard_ms, cost_fn = standard_network_ms(prof, table.tasks), prof.cost_fn
    cands = candidates_from_table(table, split, stage, cost_fn=cost_fn, estimate=est,
                                  per_task_stopping=per_task_stopping)
    eval_cands, label = None, None
    if evaluate is not None:
        if not evaluate.exists():
            raise TaskgroupError(f"{evaluate}: no such file or directory")
        esplit = evaluate_split or "test"
        if _is_tsv(evaluate):
            etable = read_paper_table(evaluate, table.tasks, split=esplit)
        else:
            etable = LossTable.load(evaluate)
        if tuple(etable.tasks) != tuple(table.tasks):
            raise TaskgroupError(f"{evaluate}: tasks {list(etable.tasks)} differ from the selection table's {list(table.tasks)}")
        eval_cands = candidates_from_table(etable, esplit, "final", per_task_stopping=per_task_stopping and
                                           bool(etable.task_stops))
        label = f"{evaluate.name}:{esplit}"
    elif evaluate_split is not None:
        if _is_tsv(losses):
            raise TaskgroupError("--evaluate-split needs a loss-table JSON; for tab-separated tables give --evaluate FILE")
        eval_cands = candidates_from_table(table, evaluate_split, "final", per_task_stopping=per_task_stopping)
        label = evaluate_split
    how = normalize.value
    if how == "auto":  # as the pipeline: unit-free when the table knows its trivial losses, else the paper's sum
        how = "reference" if all((table.reference_losses.get(t) or {}).get(split, 0) > 0 for t in table.tasks) else "none"
    scales = loss_scales(how, table, cands, split)
    options = {"losses": str(losses), "split": split, "stage": stage, "estimate": est,
               **({"per_task_stopping": True} if per_task_stopping else {}),
               "evaluate": str(evaluate) if evaluate else None, "evaluate_split": evaluate_split,
               "weights": _parse_weights(weights), "normalize": how, "scales": scales}
    if prof is not None:
        options["statistic"] = statistic
    run_config = table.meta.get("run_config") if isinstance(table.meta, dict) else None
    if isinstance(run_config, dict) and isinstance(run_config.get("arch"), dict):
        # What the networks were trained at: export defaults to it and refuses another input size.
        options["preset"] = run_config.get("preset")
        options["resolution"] = run_config["arch"].get("resolution")
    record = _seed_noise(table, how, stage, options["weights"], run_config)
    return Inputs(table.tasks, cands, eval_cands, label, table_dir, _parse_weights(weights), scales, options,
                  prof, standard_ms, table.reference_losses, split,
                  _within_noise(table, how, record), None if _is_tsv(losses) else table, stage, record)


def _seed_noise(table, objective: str, stage: str, weights, run_config):
    """The preset's measured seed noise where it holds for this table's groupings: fully trained networks
    of the paper's tasks, trained with the recipe it measured, on a measured objective, no task weights."""
    from taskgroup import seednoise
    from taskgroup.tasks import PAPER_TASKS
    from taskgroup.train.recipes import seed_noise_for

    if stage != "final" or weights or objective not in seednoise.OBJECTIVES or set(table.tasks) != set(PAPER_TASKS) \
            or not isinstance(run_config, dict):
        return None
    return seed_noise_for(run_config.get("preset"), run_config)


def _within_noise(table, objective: str, record):
    """The within-noise rule for this table's groupings, where the seed noise of its recipe was measured."""
    from taskgroup.search.withinnoise import WithinNoise

    return None if record is None else WithinNoise(record, objective, max(1, len(table.seed_values())))


# Shared options (typer reads the defaults as option declarations).
OptLosses = typer.Option(..., "--losses", help=LOSSES_HELP)
OptEstimate = typer.Option(None, "--estimate", help=ESTIMATE_HELP)
OptEvaluate = typer.Option(None, "--evaluate", help=(
    "Score the chosen networks on another table (usually test): a tab-separated table for tab-separated input, or a "
    "loss-table JSON. Each task keeps the network chosen to serve it on the selection table."))
OptEvaluateSplit = typer.Option(None, "--evaluate-split", help=(
    "Split to evaluate on (e.g. 'test'); with a loss-table JSON and no --evaluate, the same table is used."))
OptSplit = typer.Option("val", "--split", help="Split of a loss-table JSON to select on ('val' or 'test').")
OptStage = typer.Option("final", "--stage", help=(
    "Training stage of a loss-table JSON to select on: 'final', or 'early' for the Early Stopping Approximation "
    "(select on briefly trained networks; evaluation always uses 'final')."))
OptTaskNames = typer.Option(None, "--task-names", help=(
    "Comma-separated names of the columns of a tab-separated table, e.g. s,d,n,k,e (default t0,t1,...)."))
OptMaxNetworks = typer.Option(None, "--max-networks", min=1, help="Choose at most K networks.")
OptWeights = typer.Option(None, "--weights", help=(
    "Per-task importance weights, e.g. 's=2,d=0.5' (unlisted tasks weigh 1). The objective sums weight x loss."))
OptNormalize = typer.Option(Normalize.auto, "--normalize", help=(
    "Make tasks with different loss scales count comparably: 'reference' (divide each task's loss by the loss "
    "table's trivial-predictor loss: every task counts by how much better than a constant it is, whatever its units "
    "or loss), 'none' (the paper's plain sum), 'single' (divide by the loss of the task's full-size single-task "
    "network) or 'auto' (default, as the pipeline: reference when the table has trivial-predictor losses, as a "
    "training run's has, none for the paper's tables)."))
OptPerTaskStopping = typer.Option(False, "--per-task-stopping", help=(
    "Also offer the run's per-task stops (trained with [train] per_task_stopping = true): a multi-task network "
    "at the epoch where one task's validation loss was best, as a network of its own. Serving two tasks of one "
    "network from two epochs then costs two networks (two trunks), and is chosen only when worth it."))
OptSolver = typer.Option(Solver.auto, "--solver", help=(
    "'auto' = branch-and-bound on small tables if it finishes within 100,000 search nodes (a fixed limit: the same "
    "input always picks the same solver), else the subset dynamic programme when it fits (up to about 14 tasks, no "
    "--max-networks), else the MILP; with an estimator's networks (--estimate hoa) above 2,100 of them (12+ tasks; "
    "8,200 and 14+ tasks for the frontier), column generation. 'milp' = exact mixed-integer programme (scipy/HiGHS); 'dp' = exact dynamic programme over sets of "
    "tasks (every budget at once); 'reference' = exact branch-and-bound (small tables); 'colgen' = column "
    "generation: estimated networks searched without listing them, with a proven lower bound and the optimality "
    "gap (0 when the exact finish completes, as it does unless it would read over 300,000 columns)."))


OptProfile = typer.Option(None, "--profile", help=PROFILE_HELP + " Give the budget with --budget-ms or --budget-snt.")
OptFrontierProfile = typer.Option(None, "--profile", help=PROFILE_HELP + " Budgets (and --max-budget) are then in ms.")
OptStatistic = typer.Option(Statistic.p50, "--statistic", help=STATISTIC_HELP)


@app.command("select", short_help="Choose the best grouping within a budget (exact).", help=(
    "Choose the networks to deploy: the set of candidate networks with the lowest total task loss whose total "
    "inference cost fits the budget (exact). " + SERVED_NOTE + " Costs are in SNT units (--budget), or in "
    "milliseconds from a device profile (--profile with --budget-ms or --budget-snt). Writes the grouping JSON "
    "(--out) and prints a summary with the predicted cost and how far under the budget it is."))
def select_cmd(
    losses: Path = OptLosses,
    budget: Optional[float] = typer.Option(None, "--budget", help=BUDGET_HELP),
    profile: Optional[Path] = OptProfile,
    budget_ms: Optional[float] = typer.Option(None, "--budget-ms", help=BUDGET_MS_HELP),
    budget_snt: Optional[float] = typer.Option(None, "--budget-snt", help=BUDGET_SNT_HELP),
    statistic: Statistic = OptStatistic,
    out: Path = typer.Option(Path("best.json"), "--out", help="Grouping JSON to write."),
    estimate: Optional[Estimate] = OptEstimate,
    evaluate: Optional[Path] = OptEvaluate,
    evaluate_split: Optional[str] = OptEvaluateSplit,
    split: str = OptSplit,
    stage: str = OptStage,
    task_names: Optional[str] = OptTaskNames,
    max_networks: Optional[int] = OptMaxNetworks,
    weights: Optional[str] = OptWeights,
    normalize: Normalize = OptNormalize,
    solver: Solver = OptSolver,
    top: int = typer.Option(1, "--top-k", help=(
        "Also list the K best distinct groupings (different sets of networks) under the same objective and budget, "
        "and the estimated networks among them still to train (each once). Training those and selecting again "
        "without --estimate chooses among measured networks only: top-k re-ranking, which corrects estimates that "
        "were wrong near the top. 1 = off.")),
    noise_sigmas: float = typer.Option(NOISE_SIGMAS, "--noise-sigmas", help=(
        "With a profile that stores its latency noise: a grouping fits the budget if its predicted cost plus this "
        "many noise standard deviations does, so a grouping within noise of the budget is left out on every run "
        "instead of in and out by chance (0 = plain predicted cost). The default, sqrt(2) x 1.645 = 2.33, is sized "
        "for the next profile's change (two profiles differ by sqrt(2) sigma): a grouping fitting exactly at the "
        "margin is predicted over the budget by the next profile with a 5% chance, one-sided (2 = 7.9%). The "
        "grouping records its margin and that risk, the budget range over which the choice holds and the optimal "
        "groupings within noise of the budget.")),
    per_task_stopping: bool = OptPerTaskStopping,
) -> None:
    from taskgroup.search import Selector

    from taskgroup.search.topk import MAX_K

    check_budget_flags(profile, budget, budget_ms, budget_snt)
    if not 1 <= top <= MAX_K:  # before any work: 0 or a negative K would otherwise be ignored silently
        raise TaskgroupError(f"--top-k must be an integer from 1 to {MAX_K}, got {top}")
    inp = load_inputs(losses, split, stage, estimate, evaluate, evaluate_split, task_names, weights, normalize,
                      profile, statistic.value, per_task_stopping)
    limit = resolve_budget(inp, budget, budget_ms, budget_snt)
    if not (math.isfinite(noise_sigmas) and noise_sigmas >= 0):
        raise TaskgroupError(f"--noise-sigmas must be a number >= 0, found {noise_sigmas:g}")
    start = time.perf_counter()
    if inp.profile is None:
        selector = Selector(inp.candidates, inp.tasks, weights=inp.weights, scales=inp.scales, solver=solver.value,
                            unit=limit.unit, corun=inp.corun)
        sel = selector.solve(limit.value, max_networks)
    else:
        from taskgroup.search.robustness import solve_under_noise

        inp.profile = inp.profile.with_relative_noise(limit.snt is not None)  # SNT: noise relative to the standard
        selector, sel, sigmas = solve_under_noise(inp.candidates, inp.profile, limit.value, noise_sigmas, max_networks,
                                                  tasks=inp.tasks, weights=inp.weights, scales=inp.scales,
                                                  solver=solver.value)
    if sel is None:
        raise _infeasible(selector, limit, inp, max_networks)
    if inp.profile is not None:
        from taskgroup.search.robustness import assess, predicted

        robust = assess(selector, sel, limit.value, inp.profile, sigmas, inp.standard_ms, max_networks,
                        asked=noise_sigmas if inp.profile.has_noise else 0.0)
        sel = predicted(sel, inp.candidates, inp.corun)
        sel.robustness = robust.to_json()
    if inp.eval_candidates is not None:
        sel.evaluate(inp.eval_candidates, inp.eval_label)
    sel.options = dict(inp.options, max_networks=max_networks, solver=solver.value)
    grouping = sel.to_grouping(out, inp.table_dir)
    if inp.profile is not None:
        from taskgroup.search.profiled import profile_record

        grouping = grouping.with_budget(**profile_record(inp.profile, out), standard_network_ms=inp.standard_ms,
                                        **({"snt": limit.snt} if limit.snt is not None else {}))
    if top > 1:
        from taskgroup.search.robustness import with_noise_margin
        from taskgroup.search.topk import grouping_summary, networks_to_train, top_k

        fit = inp.candidates if inp.profile is None else with_noise_margin(inp.candidates, inp.profile, sigmas)
        ranked = top_k(fit, limit.value, top, tasks=inp.tasks, weights=inp.weights, scales=inp.scales,
                       unit=limit.unit, max_networks=max_networks,  # the co-run factor the choice was fitted with
                       corun=inp.profile.fit_corun(sigmas) if inp.profile is not None else inp.corun)
        summaries = [grouping_summary(g) for g in ranked]
        if inp.within_noise is not None and ranked:  # each one against the best: can they be told apart?
            for g, doc in zip(ranked[1:], summaries[1:]):
                doc["within_noise_of_best"] = inp.within_noise.comparison(ranked[0], g, g.cost)
        grouping = grouping.with_extra(
            top_k=summaries, to_train=[{"tasks": list(c.tasks), "width": c.width} for c in networks_to_train(ranked)],
            **({"top_k_noise": inp.within_noise.evidence()} if inp.within_noise is not None and ranked else {}))
    excluded = None
    if inp.profile is not None:
        from taskgroup.search.robustness import excluded_by_noise

        excluded = excluded_by_noise(sel, inp.candidates, inp.profile, limit.value, sigmas, max_networks,
                                     tasks=inp.tasks, weights=inp.weights, scales=inp.scales, solver=solver.value)
        if excluded is not None:
            grouping = grouping.with_extra(excluded_by_noise=excluded)
    stakes = _stakes(sel, inp, limit.value, limit.unit,
                     singles=max_networks is None or max_networks >= len(inp.tasks))
    grouping = grouping.with_extra(stakes=stakes.to_json())
    warnings = [w.message() for w in inp.not_learnt(sel)]
    if warnings:
        grouping = grouping.with_extra(warnings=warnings)
    grouping.save(out)
    _print_selection(sel, time.perf_counter() - start, out, limit, inp)
    _print_stakes(stakes)
    if excluded is not None:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(escape(
            f"note: the noise rule, not the prediction, decided: {' + '.join(excluded['networks'])} (objective "
            f"{excluded['objective']:.5g}, better) is predicted at {excluded['cost_ms']:.4g} ms, within the "
            f"{limit.value:.4g} ms budget, but not with {excluded['sigmas']:g} sigma of latency noise (sigma "
            f"{excluded['noise_ms']:.3g} ms: {excluded['fit_cost_ms']:.4g} ms), so it was left out; `frontier` lists "
            f"it as optimal from {excluded['cost_ms']:.4g} ms. --noise-sigmas 0 selects on the prediction alone "
            "(it may then exceed the budget when the latency moves within its noise)."))
    if top > 1:
        _print_top_k(grouping.extra, inp)
    for w in warnings:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[bold yellow]warning:[/] {escape(w)}")


def _stakes(sel, inp: Inputs, budget: float, unit: str, singles: bool = True):
    """How much grouping matters at this budget (taskgroup.search.stakes), on the selection split
    (`singles`: against independent singles too, not only one network)."""
    from taskgroup.search.stakes import for_selection

    return for_selection(sel, inp.candidates, inp.tasks, budget, unit, weights=inp.weights, scales=inp.scales,
                         corun=inp.corun, table=inp.table, split=inp.split, stage=inp.stage, record=inp.seed_noise,
                         objective=inp.options["normalize"], singles=singles)


def _print_stakes(stakes) -> None:
    from rich.markup import escape

    console = output_console()
    console.print(escape(f"stakes ({stakes.split} split, % of one network's objective): {stakes.conclusion()}"))
    for line in stakes.lines()[1:]:
        console.print(escape(f"  {line}"))


def _infeasible(selector, limit: Budget, inp: Inputs, max_networks: Optional[int]) -> TaskgroupError:
    """No grouping fits: say what the cheapest one costs and the budget flag that would admit it."""
    from taskgroup.search.profiled import round_up

    cheap = selector.cheapest(max_networks)
    n = len(selector.problem.tasks)
    if cheap is None:
        return TaskgroupError(f"no grouping of at most {max_networks} network(s) serves all {n} tasks; raise "
                              "--max-networks")
    nets = ", ".join("+".join(x.candidate.tasks) + f"@{x.candidate.width:g}" for x in cheap.networks)
    within = "" if max_networks is None else f" with at most {max_networks} network(s)"
    if limit.unit == "ms":
        given = f"budget {limit.value:.4g} ms" + (f" ({limit.snt:g} SNT)" if limit.snt is not None else "")
        hint = (f"use --budget-ms {round_up(cheap.cost):g} or more (--budget-snt "
                f"{round_up(cheap.cost / inp.standard_ms):g})")
        cost = f"{cheap.cost:.4g} ms"
    else:
        given = f"budget {limit.value:.10g} snt"
        hint, cost = f"use --budget {round_up(cheap.cost):g} or more", f"{cheap.cost:.10g} snt"
    return TaskgroupError(f"{given} is below every feasible grouping{within}: the cheapest grouping serving all {n} "
                          f"tasks costs {cost} ({nets}); {hint}")


@app.command("frontier", short_help="Every budget at which the optimal grouping changes.", help=(
    "The whole time-vs-loss trade-off: every budget at which the optimal grouping changes, each with its grouping "
    "(exact). " + SERVED_NOTE + " Budgets are in SNT units (full-size network = 1, half-size = 0.5), or in "
    "milliseconds with --profile. Writes JSON (--out) and optionally a PNG plot (--plot)."))
def frontier_cmd(
    losses: Path = OptLosses,
    out: Path = typer.Option(Path("frontier.json"), "--out", help="Frontier JSON to write."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write a PNG step plot of loss against budget (a file other "
                                        "than --out; the two are written together or not at all)."),
    max_budget: Optional[float] = typer.Option(None, "--max-budget", help=(
        "Only budgets up to this: SNT units, or milliseconds with --profile.")),
    profile: Optional[Path] = OptFrontierProfile,
    statistic: Statistic = OptStatistic,
    estimate: Optional[Estimate] = OptEstimate,
    evaluate: Optional[Path] = OptEvaluate,
    evaluate_split: Optional[str] = OptEvaluateSplit,
    split: str = OptSplit,
    stage: str = OptStage,
    task_names: Optional[str] = OptTaskNames,
    max_networks: Optional[int] = OptMaxNetworks,
    weights: Optional[str] = OptWeights,
    normalize: Normalize = OptNormalize,
    solver: Solver = OptSolver,
    per_task_stopping: bool = OptPerTaskStopping,
) -> None:
    from taskgroup.fileio import atomic_path, write_json_atomic
    from taskgroup.search import frontier

    if max_budget is not None and not (math.isfinite(max_budget) and max_budget > 0):
        raise TaskgroupError(f"--max-budget must be a positive number, found {max_budget:g}")
    if plot is not None and plot.resolve() == out.resolve():
        raise TaskgroupError(f"--plot and --out are the same file ({out}); the plot would replace the JSON")
    inp = load_inputs(losses, split, stage, estimate, evaluate, evaluate_split, task_names, weights, normalize,
                      profile, statistic.value, per_task_stopping)
    unit = "snt" if inp.profile is None else "ms"
    start = time.perf_counter()
    fr = frontier(inp.candidates, tasks=inp.tasks, max_networks=max_networks, weights=inp.weights,
                  scales=inp.scales, solver=solver.value, max_budget=max_budget, unit=unit,
                  corun=inp.corun)
    seconds = time.perf_counter() - start
    if not fr.points:
        raise TaskgroupError("no grouping serves every task within the limits given"
                             + (f" (--max-budget {max_budget:g} {unit})" if max_budget is not None else ""))
    if inp.eval_candidates is not None:
        for p in fr.points:
            # A grouping with an estimated (never trained) network has nothing to evaluate: its
            # evaluated_total stays null rather than failing the whole frontier.
            if not any(n.candidate.estimated for n in p.networks):
                p.evaluate(inp.eval_candidates, inp.eval_label)
    fr.options = dict(inp.options, max_networks=max_networks, solver=solver.value)
    doc = fr.to_json()
    stakes = [_stakes(p, inp, p.cost, unit, singles=False) for p in fr.points]  # the optimum against one network
    for point, st in zip(doc["points"], stakes):
        point["stakes"] = None if st.one_network is None else st.one_network.to_json()
    if inp.profile is not None:
        from taskgroup.search.profiled import profile_record

        doc["profile"] = dict(profile_record(inp.profile, out), standard_network_ms=inp.standard_ms)
    # Both files are written to temporary names first and renamed only when both were written: a
    # plot that cannot be written (a missing permission, a full disk) leaves no JSON behind, and
    # the other way round.
    with atomic_path(out) as json_tmp, (atomic_path(plot) if plot is not None else contextlib.nullcontext()) as plot_tmp:
        write_json_atomic(json_tmp, doc)
        if plot_tmp is not None:
            fr.plot(plot_tmp, beyond_noise=[st.matters is True for st in stakes])
    _print_frontier(fr, seconds, out, plot, inp, stakes)


def _net_label(c) -> str:
    return "+".join(c.tasks) + (" (est.)" if c.estimated else "")


def _num(value: float, unit: str) -> str:
    return f"{value:.4g}" if unit == "ms" else f"{value:g}"


def _headroom_text(cost: float, budget: float, unit: str) -> str:
    """'0.287 ms of 0.312 ms budget (0.025 ms, 8.0% under)'.

    The share is spare / budget, never 100 x spare first: for a huge budget (--budget 1e308) that
    product overflows to infinity.
    """
    digits = 4 if unit == "ms" else 6
    spare = budget - cost
    pct = 100.0 * (spare / budget) if budget > 0 else 0.0
    return (f"{cost:.{digits}g} {unit} of {budget:.{digits}g} {unit} budget "
            f"({max(spare, 0.0):.{digits}g} {unit}, {max(pct, 0.0):.1f}% under)")


def _print_selection(sel, seconds: float, out: Path, limit: Budget, inp: Inputs) -> None:
    from rich.table import Table

    from taskgroup.search.profiled import device_summary

    unit = sel.unit
    title = f"Grouping within {_num(sel.budget, unit)} {unit}"
    if limit.snt is not None:
        title += f" ({limit.snt:g} SNT)"
    table = Table(title=title, show_lines=False)
    for col in ("#", "trained on", "serves", "width", f"cost ({unit})", "loss (selection)"):
        right = col in ("#", "width") or col.startswith("cost")
        table.add_column(col, justify="right" if right else "left", overflow="fold")  # wrap names, never cut
    if sel.evaluation is not None:
        table.add_column(f"loss ({sel.evaluation.split})")
    for k, n in enumerate(sel.networks):
        row = [str(k), _net_label(n.candidate), ", ".join(n.served), f"{n.candidate.width:g}", _num(n.cost, unit),
               ", ".join(f"{n.candidate.losses[t]:.5g}" for t in n.served)]
        if sel.evaluation is not None:
            row.append(", ".join(f"{sel.evaluation.losses[t]:.5g}" for t in n.served))
        table.add_row(*row)
    console = output_console()
    console.print(table)
    console.print(f"objective {sel.objective:.6g} (total loss {sel.total_loss:.6g}); {sel.candidates_searched:,} of "
                  f"{sel.candidates_total:,} candidates after pruning dominated ones; solved by {sel.solver} in "
                  f"{seconds:.3f} s")
    if sel.search is not None:
        console.print(_optimality_text(sel))
    if inp.profile is not None:
        console.print(f"predicted {_headroom_text(sel.cost, sel.budget, 'ms')} on {device_summary(inp.profile)}; "
                      f"standard network {inp.standard_ms:.4g} ms")
        if sel.corun_factor != 1:
            console.print(f"  = networks alone {sel.networks_cost:.4g} ms x {sel.corun_factor:.3f} for running "
                          f"{len(sel.networks)} networks back to back (measured in the profile)")
        if sel.robustness is not None:
            console.print(f"robustness: {sel.robustness['sentence']}")
            for g in sel.robustness["near_budget"]:
                console.print(f"  within noise of the budget: {' + '.join(g['networks'])}: {g['cost_ms']:.4g} ms "
                              f"+- {g['noise_ms']:.2g} (objective {g['objective']:.6g})")
    else:
        console.print(f"cost {_headroom_text(sel.cost, sel.budget, 'snt')}")
    if sel.evaluation is not None:
        console.print(f"evaluated on {sel.evaluation.split}: total {sel.evaluation.total:.6g} "
                      f"(best chosen network per task: {sel.evaluation.total_best_served:.6g})")
    console.print(f"wrote {out}")


def _optimality_text(sel) -> str:
    """'optimality gap 0 (proven optimal; ...)' or the gap and the proven lower bound."""
    how = (f"column generation: {sel.search.get('rounds', 0)} pricing rounds, {sel.search.get('columns_generated', 0):,} "
           f"columns generated, {sel.search.get('finish_columns', 0)} read by the exact finish")
    if sel.gap == 0:
        return f"optimality gap 0 (proven optimal; {how})"
    record = sel.optimality()
    return (f"optimality gap {sel.gap:.6g} ({100 * record['relative_gap']:.3g}%): no grouping scores below "
            f"{record['lower_bound']:.6g} ({how})")


def _print_top_k(doc: dict, inp: Inputs) -> None:
    """The k best groupings and the command that trains their estimated networks."""
    from rich.table import Table

    from taskgroup.search.topk import network_list

    noise = doc.get("top_k_noise")
    table = Table(title=f"The {len(doc['top_k'])} best distinct groupings")
    columns = ("#", "networks (serves)", "objective", "cost") + (("minus best: within noise?",) if noise else ())
    for col in columns:
        table.add_column(col, justify="right" if col in ("#", "objective", "cost") else "left", overflow="fold")
    for k, g in enumerate(doc["top_k"]):
        nets = " + ".join("+".join(n["tasks"]) + f"@{n['width']:g}" + ("~est" if n["estimated"] else "")
                          + ("" if n["served"] == n["tasks"] else f" ({','.join(n['served'])})") for n in g["networks"])
        row = [str(k), nets, f"{g['objective']:.6g}", f"{g['cost']:.4g}"]
        if noise:
            c = g.get("within_noise_of_best")
            row.append("" if c is None else f"{c['minus_optimum']:+.4g}: {'within' if c['within'] else 'beyond'} "
                                            f"{c['tolerance']:.3g} ({c['spread']['basis']})")
        table.add_row(*row)
    console = output_console()
    console.print(table)
    if noise:
        console.print(f"within noise = within one standard error of the paired difference from the best: the paired "
                      f"seed-to-seed spread over sqrt({noise['run_seeds']}) seed(s), measured for both groupings "
                      f"('paired') or the conservative bound ('bound'); from {noise['source']}.")
    if doc["to_train"]:
        nets = network_list([(n["tasks"], n["width"]) for n in doc["to_train"]])
        console.print(f"{len(doc['to_train'])} estimated network(s) to train, then select again without --estimate:")
        console.print(f"  taskgroup train --out {inp.table_dir} --resume --networks '{nets}'")
    else:
        console.print("every network of these groupings is trained: the choice above is among measured networks")


def _print_frontier(fr, seconds: float, out: Path, plot: Optional[Path], inp: Inputs, stakes=()) -> None:
    from rich.table import Table

    evaluated = next((p.evaluation for p in fr.points if p.evaluation is not None), None)
    profiled = inp.profile is not None
    table = Table(title=f"Optimal groupings by budget ({fr.unit})")
    for col in ("budget from", *(("SNT",) if profiled else ()), "objective", "networks (served tasks)"):
        table.add_column(col, overflow="fold")
    if evaluated is not None:
        table.add_column(f"total ({evaluated.split})")
    table.add_column("vs one network")
    stakes = list(stakes) or [None] * len(fr.points)
    for p, st in zip(fr.points, stakes):
        nets = " | ".join(",".join(n.served) + ("" if n.candidate.width == 1 else f" @{n.candidate.width:g}")
                          + (" (est.)" if n.candidate.estimated else "") for n in p.networks)
        row = [_num(p.cost, fr.unit), *((f"{p.cost / inp.standard_ms:.3g}",) if profiled else ()),
               f"{p.objective:.6g}", nets]
        if evaluated is not None:
            row.append("-" if p.evaluation is None else f"{p.evaluation.total:.6g}")
        row.append(_stake_cell(st))
        table.add_row(*row)
    console = output_console()
    console.print(table)
    if profiled:
        from taskgroup.search.profiled import device_summary

        console.print(f"costs on {device_summary(inp.profile)}; standard network {inp.standard_ms:.4g} ms")
    if any(st is not None for st in stakes):
        from taskgroup.stats import confidence_words

        console.print(f"vs one network: the optimum's objective below one network's (full width where it fits, "
                      f"else half), in %; 'beyond' where it is beyond noise at {confidence_words()} (paired over "
                      "seeds, else the preset's measured seed noise), 'within' where grouping does not matter, "
                      "'noise?' where the noise was not measured")
    console.print(f"{len(fr.points)} optimal groupings, found in {seconds:.3f} s; wrote {out}"
                  + (f" and {plot}" if plot else ""))
    if any(p.search is not None for p in fr.points):
        worst = max(fr.points, key=lambda p: p.optimality()["relative_gap"])
        console.print("optimality gap 0 at every budget (proven optimal, column generation)" if worst.gap == 0 else
                      f"largest optimality gap {worst.gap:.6g} ({100 * worst.optimality()['relative_gap']:.3g}%) "
                      f"at {_num(worst.cost, fr.unit)} {fr.unit}; each point's bound is in {out}")


def _stake_cell(st) -> str:
    """'3.12% beyond' / '0.40% within' / 'one network' for a frontier point's stakes."""
    one = None if st is None else st.one_network
    if one is None:
        return "-"
    if one.verdict == "same":
        return "one network"
    word = {"better": "beyond", "worse": "beyond", "within noise": "within"}.get(one.verdict, "noise?")
    return f"{one.percent:+.2f}% {word}"
