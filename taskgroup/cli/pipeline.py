"""`taskgroup pipeline`: the whole method end to end on the local device."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app
from taskgroup.cli.executor_options import (DEVICES_HELP, EXECUTOR_HELP, RAY_ADDRESS_HELP, SHARED_STORAGE_HELP,
                                            executor_spec)
from taskgroup.cli.progress import RichProgress
from taskgroup.errors import TaskgroupError
from taskgroup.tasks import PAPER_TASKS
from taskgroup.pipeline.config import PipelineConfig
from taskgroup.pipeline.run import Pipeline
from taskgroup.train.run import parse_seeds


@app.command("pipeline", short_help="Run everything: profile, train, select, export, benchmark, report.")
def pipeline_command(
    out: Path = typer.Option(Path("runs/pipeline"), "--out", help="Run directory; every artefact goes here."),
    preset: str = typer.Option("default", help="tiny (seconds, for tests), default (a few minutes on a CPU), wide (the "
                                                    "full encoder) or gpu (128x128, the paper's channels; for a GPU)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file overriding preset fields "
                                          "(\\[data], \\[train], \\[arch] tables, as for `taskgroup train`) and declaring tasks "
                                          "of your own (\\[tasks.NAME] tables, docs/data.md)."),
    tasks: str = typer.Option(",".join(PAPER_TASKS), help="Comma-separated tasks to group."),
    candidates: str = typer.Option("pairs", help="Candidates trained for the search: singles | pairs | all | "
                                   "affinity | base | rounds. With pairs, higher-order networks are estimated (HOA); "
                                   "with affinity (the singles plus one all-task network trained with inter-task "
                                   "affinity tracking), every other group is estimated from the affinity (TAG); with "
                                   "base (the all-task network alone, full and half width, with affinity tracking), "
                                   "every group from it; with rounds, every subset is trained to the --esa fraction "
                                   "(default 0.1) and then fully, round by round, only where it can still change the "
                                   "choice at the budget."),
    estimate: Optional[str] = typer.Option(None, help="Estimator for untrained networks: hoa (mean of the pairs "
                                           "inside the group, as in the paper; needs pairs), tag, tag-nomomentum "
                                           "or cosine (from the lookahead affinity, with or without the momentum "
                                           "buffer, or the gradient cosine of --candidates affinity), base "
                                           "(--candidates base), rounds (--candidates rounds) or none. Default: the "
                                           "one the candidate set is for (hoa for pairs, tag for affinity)."),
    normalize: str = typer.Option("reference", help="Objective: reference (default: each task's loss divided by "
                                  "its trivial predictor's loss, so every task counts by how much better than a "
                                  "constant it is, whatever its units or loss), none (the paper's plain sum of task "
                                  "losses, in which a task with large losses decides alone) or single (divided by its "
                                  "single-task network's loss)."),
    esa: Optional[float] = typer.Option(None, help="Early Stopping Approximation: train candidates for this "
                                        "fraction of the schedule only; the chosen networks are then trained fully."),
    budget_ms: Optional[float] = typer.Option(None, "--budget-ms", help="Budget in milliseconds per frame, "
                                              "measured on this device (batch 1)."),
    budget_snt: Optional[float] = typer.Option(None, "--budget-snt", help="Budget in standard-network times: "
                                               "multiples of the measured latency of one full-width network "
                                               "serving all tasks. Default 1.5 when no budget is given (more than one network, less than one "
                                               "network per task on the default preset)."),
    random_baselines: int = typer.Option(3, help="Random groupings trained as baselines."),
    top_k: int = typer.Option(1, "--top-k", help="Top-k re-ranking: finalize trains the networks of the K best "
                              "distinct groupings under the estimate (each once) and chooses among those measured "
                              "networks; the report shows each estimate's error. 1 = train only the chosen "
                              "grouping's networks."),
    seed: int = typer.Option(0, help="Seed for weights, batch order and random baselines."),
    seeds: Optional[str] = typer.Option(
        None, help="Train every network once per seed, e.g. '0,1,2' (the first also seeds the random baselines). "
                   "Selection then ranks mean losses over seeds and the report gives each loss ± its standard "
                   "deviation and calls a difference only at 95% confidence (two-sided): beyond Student's t with "
                   "seeds - 1 degrees of freedom times its standard error (4.3 with 3 seeds). Costs one training "
                   "per seed: use it for decisions that matter."),
    device: str = typer.Option("cpu", help="Device to profile and benchmark on: cpu or cuda:N."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run; finished stages are skipped."),
    executor: str = typer.Option("local", "--executor", help=EXECUTOR_HELP + " Used by every training stage "
                                 "(candidates, finalize, baselines); a run may be resumed with another one."),
    devices: Optional[str] = typer.Option(None, "--devices", help=DEVICES_HELP + " (Training only: --device is where "
                                          "the bundle is profiled and benchmarked.)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
    shared_storage: bool = typer.Option(False, "--shared-storage", help=SHARED_STORAGE_HELP),
) -> None:
    """Profile this device, train candidate networks, select the best grouping under the budget,
    train the chosen networks fully, train baselines at the same budget, export and benchmark
    the bundle, and write a report (RUN_DIR/report/report.md).

    Selection fits a grouping when its predicted cost plus 2.33 standard deviations of latency
    noise fits the budget (a 5% one-sided risk that the next profile predicts a grouping at that
    margin over the budget), and, where the preset's seed-to-seed noise was measured, takes the
    cheapest grouping within one standard error of its paired difference from the optimum (which
    the report names): groupings that close cannot be told apart."""

    if seeds is not None and seed != 0:
        raise TaskgroupError("give --seed N or --seeds LIST, not both")
    spec_of_executor = executor_spec(executor, devices, ray_address, shared_storage)
    # The config is read before the task names are checked: it may declare tasks ([tasks.NAME]).
    cfg = PipelineConfig(preset=preset, config_file=str(config) if config else None,
                         tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
                         candidates=candidates, estimate=_estimator(estimate, candidates), normalize=normalize, esa=esa,
                         budget_ms=budget_ms, budget_snt=budget_snt, random_baselines=random_baselines,
                         seed=seed, seeds=None if seeds is None else parse_seeds(seeds), device=device,
                         top_k=top_k)
    from rich.markup import escape

    with RichProgress() as progress:
        pipeline = Pipeline(out, cfg, resume=resume, say=lambda text: progress.message(escape(text)), progress=progress,
                            executor=spec_of_executor)
        report = pipeline.run()
    typer.echo(f"report: {report}")


def _estimator(option: Optional[str], candidates: str) -> Optional[str]:
    """--estimate as given ('none': measured networks only), or the one the candidate set calls for."""
    if option is None:
        return {"affinity": "tag", "base": "base", "rounds": "rounds"}.get(candidates, "hoa")
    return None if option == "none" else option
