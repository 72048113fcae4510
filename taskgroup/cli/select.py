"""`taskgroup select` and `taskgroup frontier`: the exact grouping search from the command line.

Neither command imports PyTorch: they read a loss table, search, and write JSON (and a PNG).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app
from taskgroup.errors import TaskgroupError

BUDGET_HELP = ("Inference budget in SNT units (standard network time): a full-size network costs 1, a half-size "
               "network 0.5. The chosen networks' costs must add up to at most this.")
LOSSES_HELP = ("Loss table to select on: a loss-table JSON file, a run directory containing losses.json, or one of the "
               "paper's tab-separated tables (line 1 = half-size single-task networks, then one full-size network "
               "per line; empty cell = task absent).")
ESTIMATE_HELP = ("Estimate the losses of networks that were not trained. 'hoa' = the paper's Higher Order Approximation: "
                 "only single-task and pair networks are trained; each task's loss in a network of 3+ tasks is the mean "
                 "of its losses in the pair networks inside that group (measured 3+-task networks are replaced).")
SERVED_NOTE = ("A task is *served* by exactly one chosen network (the one the grouping uses to predict it at "
               "deployment); a network may be trained on more tasks than it serves, its extra heads helping training "
               "only. The objective is the sum over tasks of the serving network's loss (optionally weighted and "
               "normalised).")


class Estimate(str, Enum):
    hoa = "hoa"


class Normalize(str, Enum):
    none = "none"
    reference = "reference"
    single = "single"


class Solver(str, Enum):
    auto = "auto"
    milp = "milp"
    reference = "reference"


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
                normalize: Normalize) -> Inputs:
    from taskgroup.losstable import LossTable
    from taskgroup.search import candidates_from_table, read_paper_table

    names = tuple(n.strip() for n in task_names.split(",")) if task_names else None
    if names is not None and not all(names):
        raise TaskgroupError(f"--task-names: empty name in {task_names!r}")
    if not losses.exists():
        raise TaskgroupError(f"{losses}: no such file or directory")
    est = estimate.value if estimate else None
    if _is_tsv(losses):
        table = read_paper_table(losses, names, split=split, stage=stage)
        table_dir = losses.parent
    else:
        table = LossTable.load(losses)
        table_dir = losses if losses.is_dir() else losses.parent
        if names is not None:
            raise TaskgroupError("--task-names applies to the paper's tab-separated tables; a loss-table JSON names its tasks")
    cands = candidates_from_table(table, split, stage, estimate=est)
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
        eval_cands, label = candidates_from_table(etable, esplit, "final"), f"{evaluate.name}:{esplit}"
    elif evaluate_split is not None:
        if _is_tsv(losses):
            raise TaskgroupError("--evaluate-split needs a loss-table JSON; for tab-separated tables give --evaluate FILE")
        eval_cands, label = candidates_from_table(table, evaluate_split, "final"), evaluate_split
    scales = None
    if normalize == Normalize.reference:
        scales = {}
        for t in table.tasks:
            ref = (table.reference_losses.get(t) or {}).get(split)
            if not isinstance(ref, (int, float)) or not ref > 0:
                raise TaskgroupError(f"--normalize reference: the loss table has no positive reference loss for task '{t}' "
                                     f"on split '{split}'; use --normalize single or none")
            scales[t] = float(ref)
    elif normalize == Normalize.single:
        scales = {}
        for t in table.tasks:
            singles = [c for c in cands if c.tasks == (t,) and c.width == 1.0 and not c.estimated]
            if not singles or not singles[0].losses.get(t, 0) > 0:
                raise TaskgroupError(f"--normalize single: no full-size single-task network with a positive loss for "
                                     f"task '{t}'; use --normalize none")
            scales[t] = singles[0].losses[t]
    options = {"losses": str(losses), "split": split, "stage": stage, "estimate": est,
               "evaluate": str(evaluate) if evaluate else None, "evaluate_split": evaluate_split,
               "weights": _parse_weights(weights), "normalize": normalize.value, "scales": scales}
    return Inputs(table.tasks, cands, eval_cands, label, table_dir, _parse_weights(weights), scales, options)


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
OptNormalize = typer.Option(Normalize.none, "--normalize", help=(
    "Make tasks with different loss scales count comparably: 'none' (the paper's plain sum), 'reference' (divide "
    "each task's loss by the loss table's trivial-predictor reference loss) or 'single' (divide by the loss of the "
    "task's full-size single-task network)."))
OptSolver = typer.Option(Solver.auto, "--solver", help=(
    "'auto' = branch-and-bound on small tables if it finishes within 0.25 s, else the MILP; 'milp' = exact mixed-integer programme (scipy/HiGHS; fast); 'reference' = exact branch-and-bound (small tables)."))


@app.command("select", help=(
    "Choose the networks to deploy: the set of candidate networks with the lowest total task loss whose total "
    "inference cost fits the budget (exact). " + SERVED_NOTE + " Writes the grouping JSON (--out) and prints a summary."))
def select_cmd(
    losses: Path = OptLosses,
    budget: float = typer.Option(..., "--budget", help=BUDGET_HELP),
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
) -> None:
    from taskgroup.fileio import write_json_atomic
    from taskgroup.search import select

    inp = load_inputs(losses, split, stage, estimate, evaluate, evaluate_split, task_names, weights, normalize)
    start = time.perf_counter()
    sel = select(inp.candidates, budget, tasks=inp.tasks, max_networks=max_networks, weights=inp.weights,
                 scales=inp.scales, solver=solver.value)
    if inp.eval_candidates is not None:
        sel.evaluate(inp.eval_candidates, inp.eval_label)
    sel.options = dict(inp.options, max_networks=max_networks, solver=solver.value)
    doc = sel.to_grouping_json(out, inp.table_dir)
    write_json_atomic(out, doc)
    _print_selection(sel, time.perf_counter() - start, out)


@app.command("frontier", help=(
    "The whole time-vs-loss trade-off: every budget at which the optimal grouping changes, each with its grouping "
    "(exact). " + SERVED_NOTE + " Budgets are in SNT units (full-size network = 1, half-size = 0.5). Writes JSON "
    "(--out) and optionally a PNG plot (--plot)."))
def frontier_cmd(
    losses: Path = OptLosses,
    out: Path = typer.Option(Path("frontier.json"), "--out", help="Frontier JSON to write."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write a PNG step plot of loss against budget."),
    max_budget: Optional[float] = typer.Option(None, "--max-budget", help="Only budgets up to this (SNT)."),
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
) -> None:
    from taskgroup.fileio import write_json_atomic
    from taskgroup.search import frontier

    inp = load_inputs(losses, split, stage, estimate, evaluate, evaluate_split, task_names, weights, normalize)
    start = time.perf_counter()
    fr = frontier(inp.candidates, tasks=inp.tasks, max_networks=max_networks, weights=inp.weights,
                  scales=inp.scales, solver=solver.value, max_budget=max_budget)
    seconds = time.perf_counter() - start
    if not fr.points:
        raise TaskgroupError("no grouping serves every task within the limits given"
                             + (f" (--max-budget {max_budget:g})" if max_budget is not None else ""))
    if inp.eval_candidates is not None:
        for p in fr.points:
            p.evaluate(inp.eval_candidates, inp.eval_label)
    fr.options = dict(inp.options, max_networks=max_networks, solver=solver.value)
    doc = fr.to_json()
    if plot is not None:
        fr.plot(plot)
    write_json_atomic(out, doc)
    _print_frontier(fr, seconds, out, plot)


def _net_label(c) -> str:
    return "+".join(c.tasks) + (" (est.)" if c.estimated else "")


def _print_selection(sel, seconds: float, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Grouping within {sel.budget:g} {sel.unit}", show_lines=False)
    for col in ("#", "trained on", "serves", "width", "cost", "loss (selection)"):
        table.add_column(col, justify="right" if col in ("#", "width", "cost") else "left")
    if sel.evaluation is not None:
        table.add_column(f"loss ({sel.evaluation.split})")
    for k, n in enumerate(sel.networks):
        row = [str(k), _net_label(n.candidate), ", ".join(n.served), f"{n.candidate.width:g}", f"{n.cost:g}",
               ", ".join(f"{n.candidate.losses[t]:.5g}" for t in n.served)]
        if sel.evaluation is not None:
            row.append(", ".join(f"{sel.evaluation.losses[t]:.5g}" for t in n.served))
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(f"objective {sel.objective:.6g} (total loss {sel.total_loss:.6g}), cost {sel.cost:g} of "
                  f"{sel.budget:g} {sel.unit}; {sel.candidates_searched} of {sel.candidates_total} candidates after "
                  f"pruning dominated ones; solved by {sel.solver} in {seconds:.3f} s")
    if sel.evaluation is not None:
        console.print(f"evaluated on {sel.evaluation.split}: total {sel.evaluation.total:.6g} "
                      f"(best chosen network per task: {sel.evaluation.total_best_served:.6g})")
    console.print(f"wrote {out}")


def _print_frontier(fr, seconds: float, out: Path, plot: Optional[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    evaluated = fr.points[0].evaluation is not None
    table = Table(title=f"Optimal groupings by budget ({fr.unit})")
    for col in ("budget from", "objective", "networks (served tasks)"):
        table.add_column(col)
    if evaluated:
        table.add_column(f"total ({fr.points[0].evaluation.split})")
    for p in fr.points:
        nets = " | ".join(",".join(n.served) + ("" if n.candidate.width == 1 else f" @{n.candidate.width:g}")
                          for n in p.networks)
        row = [f"{p.cost:g}", f"{p.objective:.6g}", nets]
        if evaluated:
            row.append(f"{p.evaluation.total:.6g}")
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(f"{len(fr.points)} optimal groupings, found in {seconds:.3f} s; wrote {out}"
                  + (f" and {plot}" if plot else ""))
