"""`taskgroup select` and `taskgroup frontier`: the exact grouping search from the command line.

Neither command imports PyTorch: they read a loss table, search, and write JSON (and a PNG).
"""

from __future__ import annotations

import contextlib
import math
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app, output_console
from taskgroup.errors import TaskgroupError
from taskgroup.search.robustness import NOISE_SIGMAS
from taskgroup.search.workflow import (Budget, Inputs, SelectionRequest, check_budget_flags, check_top_k, load_inputs,
                                       resolve_budget, select_grouping)
from taskgroup.train.recipes import seed_noise_for
from taskgroup.search.stakes import frontier_stakes
from taskgroup.fileio import atomic_path, write_json_atomic
from taskgroup.search import frontier
from taskgroup.search.profiled import profile_record
from taskgroup.search.profiled import device_summary
from taskgroup.search.topk import network_list
from taskgroup.stats import confidence_words

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
    check_budget_flags(profile, budget, budget_ms, budget_snt)
    check_top_k(top)
    inp = _load(losses, split, stage, estimate, evaluate, evaluate_split, task_names, weights, normalize, profile,
                statistic.value, per_task_stopping)
    limit = resolve_budget(inp.standard_ms, budget, budget_ms, budget_snt)
    request = SelectionRequest.from_inputs(inp, limit, out, max_networks=max_networks, solver=solver.value,
                                           noise_sigmas=noise_sigmas, top_k=top, options=inp.options)
    result = select_grouping(request)
    result.grouping.save(out)
    inp.profile = result.profile  # as the choice used it: noise relative to the standard network for SNT budgets
    _print_selection(result.selection, result.seconds, out, limit, inp)
    _print_stakes(result.stakes)
    from rich.console import Console
    from rich.markup import escape

    excluded = result.excluded
    if excluded is not None:
        Console(stderr=True).print(escape(
            f"note: the noise rule, not the prediction, decided: {' + '.join(excluded['networks'])} (objective "
            f"{excluded['objective']:.5g}, better) is predicted at {excluded['cost_ms']:.4g} ms, within the "
            f"{limit.value:.4g} ms budget, but not with {excluded['sigmas']:g} sigma of latency noise (sigma "
            f"{excluded['noise_ms']:.3g} ms: {excluded['fit_cost_ms']:.4g} ms), so it was left out; `frontier` lists "
            f"it as optimal from {excluded['cost_ms']:.4g} ms. --noise-sigmas 0 selects on the prediction alone "
            "(it may then exceed the budget when the latency moves within its noise)."))
    if top > 1:
        _print_top_k(result.grouping.extra, inp)
    for w in result.warnings:
        Console(stderr=True).print(f"[bold yellow]warning:[/] {escape(w.message())}")


def _load(losses: Path, split: str, stage: str, estimate: Optional[Estimate], evaluate: Optional[Path],
          evaluate_split: Optional[str], task_names: Optional[str], weights: Optional[str], normalize: Normalize,
          profile: Optional[Path], statistic: str, per_task_stopping: bool) -> Inputs:
    """The library's loading with the flags' values and the training recipes' seed-noise records."""
    return load_inputs(losses, split, stage, estimate.value if estimate else None, evaluate, evaluate_split,
                       task_names, weights, normalize.value, profile, statistic, per_task_stopping,
                       recipe_noise=seed_noise_for)


def _print_stakes(stakes) -> None:
    from rich.markup import escape

    console = output_console()
    console.print(escape(f"stakes ({stakes.split} split, % of one network's objective): {stakes.conclusion()}"))
    for line in stakes.lines()[1:]:
        console.print(escape(f"  {line}"))


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

    if max_budget is not None and not (math.isfinite(max_budget) and max_budget > 0):
        raise TaskgroupError(f"--max-budget must be a positive number, found {max_budget:g}")
    if plot is not None and plot.resolve() == out.resolve():
        raise TaskgroupError(f"--plot and --out are the same file ({out}); the plot would replace the JSON")
    inp = _load(losses, split, stage, estimate, evaluate, evaluate_split, task_names, weights, normalize,
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
    stakes = frontier_stakes(fr.points, inp.candidates, inp.tasks, unit, weights=inp.weights, scales=inp.scales,
                             corun=inp.corun, table=inp.table, split=inp.split, stage=inp.stage,
                             record=inp.seed_noise, objective=inp.options["normalize"])
    for point, st in zip(doc["points"], stakes):
        point["stakes"] = None if st.one_network is None else st.one_network.to_json()
    if inp.profile is not None:

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

        console.print(f"costs on {device_summary(inp.profile)}; standard network {inp.standard_ms:.4g} ms")
    if any(st is not None for st in stakes):

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
