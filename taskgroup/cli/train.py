"""`taskgroup train`: train candidate networks into a run directory; `taskgroup results`: show its loss table.

`results` reads RUN_DIR/losses.json with the standard library only (no torch import).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app, output_console
from taskgroup.cli.executor_options import (DEVICES_HELP, EXECUTOR_HELP, RAY_ADDRESS_HELP, SHARED_STORAGE_HELP,
                                            executor_spec)
from taskgroup.cli.progress import RichProgress
from taskgroup.cli.results_view import render_affinity, render_table
from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable, NetworkResult
from taskgroup.profile import load_profile
from taskgroup.search.profiled import check_profile_for_table, standard_network_ms
from taskgroup.tasks import parse_task_list
from taskgroup.train import RunStore, candidate_set, make_run_config, train_candidates
from taskgroup.train.candidates import normalise_spec, parse_networks, tracks_affinity
from taskgroup.train.rounds import DEFAULT_FRACTION, ROUNDS_FILE, RoundsConfig, RoundsLog, train_rounds
from taskgroup.train.run import default_stages, parse_seeds
from taskgroup.train.stored_config import run_config_from_store


@app.command("train", short_help="Train candidate networks into a run directory (resumable).")
def train_command(
    tasks: Optional[str] = typer.Option(None, help="Comma-separated task names, e.g. segment_semantic,depth_zbuffer,"
                                                   "normal. Required for a new run; with --resume the run's own."),
    candidates: Optional[str] = typer.Option(
        None, help="Candidate set (default pairs; with --resume: the run's own set): singles (every task alone, "
                   "full and half width) | pairs (singles + every pair at full width; the paper's default) | all "
                   "(every subset at full width + half singles) | affinity (singles + one full-width network of all "
                   "tasks trained with inter-task affinity tracking, for `select --estimate "
                   "tag|tag-nomomentum|cosine`; measured every [train] affinity_every steps) | base (only the all-task network, with affinity tracking, "
                   "and the same at half width, for `select --estimate base`) | rounds (adaptive: every subset to "
                   "the --esa fraction of its schedule, default 0.1, then fully, round by round, only the networks "
                   "that can still change the choice at the --budget range; for `select --estimate rounds`; a run "
                   "trained in rounds resumes in rounds)."),
    networks: Optional[str] = typer.Option(
        None, help="Train exactly these networks instead of a candidate set: tasks joined by '+', '@width' "
                   "(default 1), comma-separated, e.g. 'segment_semantic+normal+depth_zbuffer@1,normal@0.5'. "
                   "With --resume, adds them to the run's own set (e.g. a network HOA only estimated)."),
    out: Path = typer.Option(..., help="Run directory (created; must be empty unless --resume)."),
    preset: Optional[str] = typer.Option(None, help="Preset: tiny (seconds per network, for tests) | default (the "
                                                    "CPU pipeline, a narrow encoder: 10-40 s per network on 2 cores, see "
                                                    "docs/training.md) | wide (default's recipe and the full encoder: one network is the honest answer there) | "
                                                    "gpu (128x128, the paper's channels, 24,000 views; for a GPU). "
                                                    "Default: 'default' for a new run; with "
                                                    "--resume and no --preset/--config, the run's stored config."),
    config: Optional[Path] = typer.Option(None, help="TOML file overriding preset fields in \\[train], \\[data] and "
                                                     "\\[arch] tables and declaring tasks of your own in "
                                                     "\\[tasks.NAME] tables (see docs/training.md, docs/data.md)."),
    esa: Optional[float] = typer.Option(
        None, help="Early Stopping Approximation: also record each network after this fraction of the training "
                   "schedule (0 < FRACTION < 1) as stage 'early'. The snapshot is taken during the full run and "
                   "equals what a separate short run would give."),
    esa_only: bool = typer.Option(False, "--esa-only", help="With --esa: train only that fraction of the schedule "
                                                            "and record only the 'early' stage (cheaper)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out: its own networks and seeds, as "
                                                        "first asked for; finished ones are kept, interrupted ones "
                                                        "retrained. --candidates, --networks or --seeds add to that "
                                                        "set (said on the console). The config must match."),
    seed: Optional[int] = typer.Option(None, help="One seed for weight initialisation and batch order (the same for "
                                                  "every network); default 0. Same as --seeds N."),
    seeds: Optional[str] = typer.Option(
        None, help="Train every network once per seed, e.g. '0,1,2' or '0-4', into the same run; the loss table "
                   "then gives each loss as the mean over seeds with its standard deviation. Resumable seed by "
                   "seed; with --resume, new seeds can be added to a run. Default: 0 (with --resume: the run's "
                   "seeds)."),
    strategy: Optional[str] = typer.Option(
        None, help="How a batch becomes optimiser steps ([train] strategy): sum (one step on the summed loss; the "
                   "default) | alternating[:shuffled] (one step per task) | alternating-independent[:shuffled] (as "
                   "alternating, one optimiser state per task) | random-groups:G[:epoch] (G random task groups, one "
                   "step each). Part of the run's config. See docs/training.md."),
    weighting: Optional[str] = typer.Option(
        None, help="Per-task loss weights ([train] weighting): none | static (needs [train] task_weights) | scale "
                   "(1 / the trivial predictor's training loss) | uncertainty (learned, Kendall et al. 2018). "
                   "Part of the run's config."),
    amp: Optional[str] = typer.Option(
        None, "--amp", help="Mixed precision of the forward pass ([train] amp): off (float32, the default) | bf16 "
                            "(bfloat16 autocast; the CPU or a GPU of compute capability 8.0+) | fp16 (float16 "
                            "autocast with a loss scaler; CUDA only). Weights, losses and evaluation stay float32. "
                            "Part of the run's config: a resumed run keeps its precision."),
    executor: str = typer.Option("local", "--executor", help=EXECUTOR_HELP),
    devices: Optional[str] = typer.Option(None, "--devices", help=DEVICES_HELP),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
    shared_storage: bool = typer.Option(False, "--shared-storage", help=SHARED_STORAGE_HELP),
    budget: Optional[str] = typer.Option(
        None, "--budget", help="With --candidates rounds: the budgets the choice must hold at, in SNT units (a "
                               "full-width network costs 1, a half-width one 0.5), as LOW-HIGH or one value, e.g. "
                               "1.25-3. With --profile: multiples of the profiled standard network."),
    profile: Optional[Path] = typer.Option(
        None, "--profile", help="With --candidates rounds: cost networks in milliseconds on this device profile "
                                "(trunk + served heads, its co-run overhead); --budget is then in its SNT."),
    tolerance: Optional[float] = typer.Option(
        None, "--tolerance", help="With --candidates rounds: a network is left untrained when it could improve the "
                                  "objective by at most this at every budget. Default: the seed noise of a "
                                  "grouping's objective (the preset's measurement, else the run's seeds; 0 with one "
                                  "seed of a configuration never measured)."),
    confidence: float = typer.Option(
        0.95, "--confidence", help="With --candidates rounds: coverage of the interval each final loss is predicted "
                                   "in from its early one (lower: fewer networks trained, more risk of a wrong drop)."),
    round_size: int = typer.Option(
        2, "--round-size", help="With --candidates rounds: networks trained per round once the optimum under the "
                                "estimates is trained (more: fewer rounds, possibly more networks)."),
) -> None:
    """Train the candidate networks (SGD with momentum and best-on-validation weights; the learning rate
    follows the preset's [train] lr_schedule: a cosine decay to zero in the default preset, halving on a
    validation plateau (the paper's) in tiny) and write RUN_DIR/runs.sqlite, RUN_DIR/losses.json and
    RUN_DIR/checkpoints/. Regression targets are trained standardised ((value - mean) / std per task;
    Taskonomy: the paper's constants, else measured on the training split). Losses are masked means in
    the data's units: cross-entropy (nats per pixel) for classification, L1 (mean absolute error in the
    data's units) or L2 (mean squared error, in the data's units squared) for regression, as each task
    declares."""

    if esa_only and esa is None:
        raise TaskgroupError("--esa-only needs --esa FRACTION")
    spec_of_executor = executor_spec(executor, devices, ray_address, shared_storage)
    if seed is not None and seeds is not None:
        raise TaskgroupError("give --seed N or --seeds LIST, not both")
    seed_list = parse_seeds(seeds) if seeds is not None else (None if seed is None else parse_seeds(str(seed)))
    stored = None
    if resume:
        store = RunStore.open(out)
        try:
            stored = (store.tasks(), run_config_from_store(store), *store.requested())
        finally:
            store.close()
    seed_list = seed_list or (0,)
    if tasks is None and stored is None:
        raise TaskgroupError("--tasks is required for a new run (with --resume the run's own tasks are used)")
    if preset is None and config is None and stored is not None:
        run_config = stored[1]  # the run's own recipe and data: --resume continues it as it was
    else:
        run_config = make_run_config(preset or "default", config, seed=seed_list[0], esa_fraction=esa)  # declares [tasks.*]
    options = {k: v for k, v in (("strategy", strategy), ("weighting", weighting), ("amp", amp)) if v is not None}
    if options:
        if stored is not None and amp is not None and amp != stored[1].train.amp:
            raise TaskgroupError(f"{out}: refusing to resume with --amp {amp}: the run trains with amp "
                                 f"{stored[1].train.amp!r} (networks of one run share one precision); use a new "
                                 f"--out, or resume with --amp {stored[1].train.amp}")
        recipe = dataclasses.replace(run_config.train, **options)
        recipe.validate("--" + "/--".join(options))
        run_config = dataclasses.replace(run_config, train=recipe)
    task_list = parse_task_list(tasks) if tasks is not None else stored[0]
    if networks is not None and candidates is not None:
        raise TaskgroupError("give --candidates SET or --networks LIST, not both")

    # A run trained in rounds resumes in rounds: continuing its own set would train every network fully.
    adaptive = candidates == "rounds" or (stored is not None and candidates is None and networks is None
                                          and (out / ROUNDS_FILE).is_file())
    rounds_options = (budget, profile, tolerance) != (None, None, None) or confidence != 0.95 or round_size != 2
    if rounds_options and not adaptive:
        raise TaskgroupError("--budget, --profile, --tolerance, --confidence and --round-size set up adaptive "
                             "training: use them with --candidates rounds")
    if adaptive and esa_only:
        raise TaskgroupError("--candidates rounds trains every network's early stage and then some fully: drop "
                             "--esa-only")
    if adaptive:
        recorded = RoundsLog.load(out).last_settings() if stored is not None else None
        rounds, cost_fn = _rounds_config(budget, profile, tolerance, confidence, round_size, task_list, run_config,
                                         recorded)
        if stored is not None:  # the run's seeds, and any new ones given
            given_seeds = parse_seeds(seeds) if seeds is not None else (parse_seeds(str(seed)) if seed is not None
                                                                        else ())
            seed_list = tuple(stored[3]) + tuple(x for x in given_seeds if x not in stored[3])
        if run_config.esa_fraction is None:
            run_config = dataclasses.replace(run_config, esa_fraction=DEFAULT_FRACTION)

        with RichProgress() as progress:
            table, plan = train_rounds(out, task_list, run_config, rounds, resume=resume, seeds=seed_list,
                                       progress=progress, executor=spec_of_executor, cost_fn=cost_fn)
    else:
        given = (parse_networks(networks, task_list) if networks is not None else
                 candidate_set(candidates, task_list) if candidates is not None else
                 [] if stored is not None else candidate_set("pairs", task_list))
        specs = given
        if stored is not None:  # continue the run's own networks and seeds; anything given is an explicit addition
            specs, seed_list = _continue_run(out, task_list, stored[2], stored[3], given,
                                             parse_seeds(seeds) if seeds is not None else
                                             (parse_seeds(str(seed)) if seed is not None else ()))
        stages = default_stages(run_config, esa_only)
        with RichProgress() as progress:
            table = train_candidates(out, task_list, specs, run_config, resume=resume, stages=stages,
                                     progress=progress, seeds=seed_list,
                                     affinity=candidates is not None and tracks_affinity(candidates),
                                     executor=spec_of_executor)
    from rich.console import Console

    output_console().print(render_table(table.to_json(), "val"))
    for t in render_affinity(table.to_json()):
        output_console().print(t)
    Console(stderr=True).print(f"loss table: {out / 'losses.json'}")


def _rounds_config(budget: Optional[str], profile: Optional[Path], tolerance: Optional[float], confidence: float,
                   round_size: int, tasks, run_config, recorded: Optional[dict] = None):
    """The RoundsConfig and cost function of `train --candidates rounds`; on resume, the settings the run's
    rounds were planned with (`recorded`) fill in what is not given."""

    if budget is None and recorded is not None and recorded.get("unit") == "snt":
        return RoundsConfig(recorded["budget_low"], recorded["budget_high"], "snt",
                            tolerance if tolerance is not None else recorded.get("tolerance"),
                            confidence if confidence != 0.95 else recorded.get("confidence", confidence),
                            round_size if round_size != 2 else recorded.get("round_size", round_size)), None
    if budget is None:
        raise TaskgroupError("--candidates rounds needs the budgets the choice must hold at: --budget LOW-HIGH "
                             "(SNT units, e.g. 1.25-3) or one value" + (" with --profile, as the run's rounds were "
                                                                        "planned" if recorded else ""))
    low, _, high = budget.partition("-")
    try:
        lo, hi = float(low), float(high or low)
    except ValueError:
        raise TaskgroupError(f"--budget: {budget!r} is not a budget or a range (write e.g. 2 or 1.25-3)") from None
    if profile is None:
        return RoundsConfig(lo, hi, "snt", tolerance, confidence, round_size), None

    prof = load_profile(profile)
    probe = LossTable(tuple(tasks), [NetworkResult((t,), w, "final", {}) for t in tasks for w in (1.0, 0.5)],
                      meta={"run_config": run_config.to_dict()})
    check_profile_for_table(prof, probe, "final", profile)  # the profile must measure this run's networks
    snt = standard_network_ms(prof, tuple(tasks))
    return RoundsConfig(lo * snt, hi * snt, "ms", tolerance, confidence, round_size, corun=prof.corun), prof.cost_fn


def _continue_run(out: Path, tasks, own_specs, own_seeds, given, given_seeds):
    """The run's own networks and seeds, plus those given on the command line (said on the console)."""
    from rich.console import Console

    names = {s.name for s in own_specs}
    added = [s for s in (normalise_spec(g, tasks) for g in given) if s.name not in names and not names.add(s.name)]
    new_seeds = [s for s in given_seeds if s not in own_seeds]
    console = Console(stderr=True)
    if added:
        console.print(f"adding {len(added)} network(s) to the {len(own_specs)} of the run in {out}: "
                      + ", ".join(s.name for s in added))
    if new_seeds:
        console.print(f"adding seed(s) {', '.join(map(str, new_seeds))} to the run's seeds "
                      f"{', '.join(map(str, own_seeds))}")
    return list(own_specs) + added, tuple(own_seeds) + tuple(new_seeds)


@app.command("results", short_help="Print a run's loss table with the trivial-predictor reference.")
def results_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `taskgroup train`."),
    as_json: bool = typer.Option(False, "--json", help="Print the loss table as JSON (the losses.json document)."),
    split: str = typer.Option("val", help="Split whose losses to show: val (what selection uses) | test."),
) -> None:
    """Print the loss table of a run: per network (tasks, width, stage) the loss of every task it was
    trained on, and per task the loss of the trivial constant predictor as a reference scale."""
    if split not in ("val", "test"):
        raise TaskgroupError(f"--split must be val or test, got '{split}'")
    table = LossTable.load(run_dir)
    doc = table.to_json()
    if as_json:
        print(json.dumps(doc, indent=2))
        return

    output_console().print(render_table(doc, split))
    for t in render_affinity(doc):
        output_console().print(t)


