"""The flags `taskgroup select` and `taskgroup frontier` share, and the loading of a loss table with them.

Both commands read the same table, estimator, evaluation, normalisation, profile and solver flags;
their help texts and choices are declared once here (typer reads an option's declaration from its
default), and `load` hands their values to the library's loading (`taskgroup.search.workflow`).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from taskgroup.search.workflow import Inputs, load_inputs
from taskgroup.train.recipes import seed_noise_for

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


def load(losses: Path, split: str, stage: str, estimate: Optional[Estimate], evaluate: Optional[Path],
          evaluate_split: Optional[str], task_names: Optional[str], weights: Optional[str], normalize: Normalize,
          profile: Optional[Path], statistic: str, per_task_stopping: bool) -> Inputs:
    """The library's loading with the flags' values and the training recipes' seed-noise records."""
    return load_inputs(losses, split, stage, estimate.value if estimate else None, evaluate, evaluate_split,
                       task_names, weights, normalize.value, profile, statistic, per_task_stopping,
                       recipe_noise=seed_noise_for)


def number(value: float, unit: str) -> str:
    return f"{value:.4g}" if unit == "ms" else f"{value:g}"
