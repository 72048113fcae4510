"""`taskgroup frontier`: every budget at which the optimal grouping changes, from the command line.

It reads the same flags as `select` (`taskgroup.cli.selection_flags`), writes the frontier JSON (and a
PNG) together or not at all, and renders the table; it never imports PyTorch.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app, output_console
from taskgroup.cli.selection_flags import (SERVED_NOTE, Estimate, Normalize, OptEstimate, OptEvaluate,
                                           OptEvaluateSplit, OptFrontierProfile, OptLosses, OptMaxNetworks,
                                           OptNormalize, OptPerTaskStopping, OptSolver, OptSplit, OptStage,
                                           OptStatistic, OptTaskNames, OptWeights, Solver, Statistic, load, number)
from taskgroup.errors import TaskgroupError
from taskgroup.fileio import atomic_path, write_json_atomic
from taskgroup.search import frontier
from taskgroup.search.profiled import device_summary, profile_record
from taskgroup.search.stakes import frontier_stakes
from taskgroup.search.workflow import Inputs
from taskgroup.stats import confidence_words

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
    inp = load(losses, split, stage, estimate, evaluate, evaluate_split, task_names, weights, normalize,
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
        row = [number(p.cost, fr.unit), *((f"{p.cost / inp.standard_ms:.3g}",) if profiled else ()),
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
                      f"at {number(worst.cost, fr.unit)} {fr.unit}; each point's bound is in {out}")


def _stake_cell(st) -> str:
    """'3.12% beyond' / '0.40% within' / 'one network' for a frontier point's stakes."""
    one = None if st is None else st.one_network
    if one is None:
        return "-"
    if one.verdict == "same":
        return "one network"
    word = {"better": "beyond", "worse": "beyond", "within noise": "within"}.get(one.verdict, "noise?")
    return f"{one.percent:+.2f}% {word}"
