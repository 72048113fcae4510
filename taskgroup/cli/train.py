"""`taskgroup train`: train candidate networks into a run directory; `taskgroup results`: show its loss table.

`results` reads RUN_DIR/losses.json with the standard library only (no torch import).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app, output_console
from taskgroup.errors import TaskgroupError
from taskgroup.train.executors import parse_executor
from taskgroup.tasks import parse_task_list
from taskgroup.train import candidate_set, make_run_config, train_candidates
from taskgroup.train.candidates import parse_networks
from taskgroup.train.run import default_stages, parse_seeds
from taskgroup.train.rounds import ROUNDS_FILE, RoundsLog
from taskgroup.train import RunStore
from taskgroup.train.stored_config import run_config_from_store
from taskgroup.train.rounds import train_rounds
from taskgroup.train.candidates import tracks_affinity
from taskgroup.train.rounds import DEFAULT_FRACTION
from taskgroup.train.rounds import RoundsConfig
from taskgroup.losstable import LossTable, NetworkResult
from taskgroup.profile import load_profile
from taskgroup.search.profiled import check_profile_for_table, standard_network_ms
from taskgroup.train.candidates import normalise_spec
from taskgroup.affinity import AffinityTable
from taskgroup.learnability import is_learnt

# Where networks train: shared by `train` and `pipeline` (taskgroup.train.executors, docs/training.md).
EXECUTOR_HELP = ("Where networks train: local (this process, one after another; the default) | processes:N (N worker "
                 "processes on this machine, one per device of --devices in turn) | ray (one Ray task per network "
                 "and seed, on --ray-address or a local Ray instance; pip install 'taskgrouping\\[ray]'). This process "
                 "commits every result; on the CPU the losses are the same whatever the executor.")
DEVICES_HELP = ("Devices to train on: cpu (default), cuda:N for local, a list such as cuda:0,cuda:1 for processes:N "
                "(worker i uses the i-th, in turn), cuda for ray (one GPU per task). Training on a GPU is written to "
                "PyTorch's and Ray's documentation but has never been run on one.")
RAY_ADDRESS_HELP = "With --executor ray: the address of a running cluster (e.g. 10.0.0.5:6379 or auto)."
SHARED_STORAGE_HELP = ("With processes:N or ray: workers write checkpoints straight into the run directory, which every "
                       "node must see at the same path (e.g. NFS). Default: workers send checkpoint bytes to this "
                       "process.")


def executor_spec(executor: str, devices: Optional[str], ray_address: Optional[str], shared_storage: bool):

    return parse_executor(executor, devices=devices, ray_address=ray_address, shared_storage=shared_storage)


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
        import dataclasses

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
            import dataclasses


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


def render_affinity(doc: dict) -> list:
    """Rich tables of the run's inter-task affinity (mean over seeds, whole run), if it has one."""
    from rich.table import Table


    if not doc.get("affinity"):
        return []
    affinity = AffinityTable.from_json(doc["affinity"], "losses.json")
    stage = "final" if "final" in affinity.stages() else affinity.stages()[0]
    seeds = affinity.seeds(stage)
    titles = {"tag": "lookahead affinity (TAG): 1 - L_target after a step on the source alone / L_target before",
              "tag-nomomentum": "the same lookahead without the optimizer's momentum buffer",
              "cosine": "cosine similarity of the per-task gradients on the shared parameters"}
    out = []
    for kind, title in titles.items():
        if kind not in affinity.kinds(stage):
            continue
        matrix = affinity.mean(kind, stage)
        table = Table(title=f"{title} (row = source, column = target; mean over seeds {','.join(map(str, seeds))}, "
                            f"{stage} stage)")
        table.add_column("source", overflow="fold")
        for t in affinity.tasks:
            table.add_column(t, justify="right")
        for t, row in zip(affinity.tasks, matrix):
            table.add_row(t, *[f"{v:.3g}" if kind != "cosine" else f"{v:.3f}" for v in row])
        out.append(table)
    return out


def render_table(doc: dict, split: str):
    """A rich table: one row per network, one column per task; the trivial predictor as the first row.

    With several seeds a cell is 'mean ± standard deviation' over seeds. A validation loss that
    does not beat the trivial predictor is marked '!' (the network learnt nothing about that task)."""
    from rich.table import Table

    tasks = doc["tasks"]
    status = doc.get("meta", {}).get("status", {})
    seeds = doc.get("meta", {}).get("seeds")
    title = f"{split} losses ({len(doc['networks'])} networks"
    if seeds:
        title += f", mean ± std over seeds {','.join(map(str, seeds))}"
    title += f"; {status['running']} interrupted)" if status.get("running") else ")"
    ref = doc.get("reference_losses", {})
    flagged = [(t, "+".join(n["tasks"]) + f"@{n['width']:g}" + ("" if n["stage"] == "final" else f"/{n['stage']}"))
               for n in doc["networks"] for t in n["tasks"]
               if _not_below(n["losses"].get("val", {}).get(t), ref.get(t, {}).get("val"))]
    caption = ("Per task its loss (cross_entropy: nats/pixel; l1: mean absolute error in the data's units; l2: mean "
               "squared error in the data's units squared; bce: nats per label and pixel), over labelled pixels; "
               "lower is better. Trivial = best constant predictor fitted on the training split.")
    recipe = (doc.get("meta", {}).get("run_config") or {}).get("train") or {}
    if isinstance(recipe, dict) and recipe:
        caption += (f" Trained with strategy {recipe.get('strategy', 'sum')}, weighting {recipe.get('weighting', 'none')}"
                    + (f" ({', '.join(f'{t} {w:g}' for t, w in recipe['task_weights'].items())})"
                       if recipe.get("task_weights") else "")
                    + (", per-task stopping" if recipe.get("per_task_stopping") else "") + ".")
    if flagged:
        caption += (f" ! = not clearly (1%) below the trivial predictor on validation (not learnt): "
                    + ", ".join(f"{t} in {net}" for t, net in flagged) + ".")
    table = Table(title=title, caption=caption)
    table.add_column("network", overflow="fold")  # names identify the rows: wrap them, never cut them
    table.add_column("width", justify="right")
    table.add_column("stage")
    if seeds:
        table.add_column("seeds", justify="right")
    for t in tasks:
        table.add_column(t, justify="right")
    table.add_column("steps", justify="right")
    table.add_column("time s", justify="right")
    ref = doc.get("reference_losses", {})
    table.add_row("trivial predictor", "", "", *([""] if seeds else []), *[_fmt(ref.get(t, {}).get(split)) for t in tasks],
                  "", "", style="dim")
    counts = doc.get("meta", {}).get("labelled_samples") or {}
    labelled = counts.get("labelled") or {}
    for part in dict.fromkeys(("train", split)):  # the training split too: where labels are most often missing
        size = (counts.get("samples") or {}).get(part)
        if size and any(labelled.get(t, {}).get(part, size) < size for t in tasks):  # partial labels: say how many
            table.add_row(f"labelled {part} samples", "", "", *([""] if seeds else []),
                          *[f"{labelled.get(t, {}).get(part, '?')} of {size}" for t in tasks], "", "", style="dim")
    for n in doc["networks"] + doc.get("task_stops", []):
        losses = n["losses"].get(split, {})
        std = (n.get("loss_std") or {}).get(split, {})
        stage = n["stage"] if n["stage"] == "final" else f"{n['stage']} ({n['fraction']:.2f})"
        if n.get("stopped_for"):
            stage += f", best epoch of {n['stopped_for']}"
        cells = []
        for t in tasks:
            cell = _fmt(losses.get(t))
            if cell and std.get(t) is not None:
                cell += f" ± {std[t]:.4f}"
            if cell and _not_below(n["losses"].get("val", {}).get(t), ref.get(t, {}).get("val")):
                cell += " !"
            cells.append(cell)
        table.add_row("+".join(n["tasks"]), f"{n['width']:g}", stage, *([str(n.get("n_seeds", 1))] if seeds else []),
                      *cells, str(n.get("steps") or ""), _fmt(n.get("wall_time_s"), 1))
    return table


def _not_below(loss, trivial) -> bool:

    return loss is not None and trivial is not None and not is_learnt(loss, trivial)


def _fmt(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


class RichProgress:
    """Rich progress display: an overall bar over candidates, and a bar for each network training now.

    A network trained in this process has a bar in steps; one trained by a worker (processes:N,
    ray) has a bar in epochs where its executor forwards them (processes) or a pulsing one (ray).
    The overall bar counts networks running, done and failed across workers."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                             console=Console(stderr=True))
        self._overall = None
        self._current = None
        self._jobs: dict[str, object] = {}  # name -> bar of a network on a worker
        self._done = 0
        self._failed = 0

    def __enter__(self) -> "RichProgress":
        self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.stop()

    def run_started(self, total: int, finished: int) -> None:
        self._overall = self._bar.add_task("all candidates", total=total, completed=finished, info="")

    def candidate_started(self, name: str, total_steps: int) -> None:
        if self._current is not None:
            self._bar.remove_task(self._current)
        self._current = self._bar.add_task(f"  {name}", total=total_steps, info="")

    def advance(self, steps: int = 1) -> None:
        self._bar.advance(self._current, steps)

    def epoch_done(self, name: str, epoch: int, epochs: int, val_total: float, lr: float) -> None:
        if name in self._jobs:
            self._bar.update(self._jobs[name], total=epochs, completed=epoch, info=f"val {val_total:.4f} lr {lr:.3g}")
        else:
            self._bar.update(self._current, info=f"epoch {epoch}/{epochs} val {val_total:.4f} lr {lr:.3g}")

    def candidate_done(self, name: str, summary: str) -> None:
        self._bar.console.print(f"[green]done[/] {name}: {summary}")
        self._bar.advance(self._overall, 1)
        self._done += 1
        if name in self._jobs:
            self._bar.remove_task(self._jobs.pop(name))
            self._show_counts()

    def job_started(self, name: str, where: str) -> None:
        self._jobs[name] = self._bar.add_task(f"  {name}", total=None, info=f"on {where}")
        self._show_counts()

    def job_failed(self, name: str, reason: str, retrying: bool) -> None:
        self._failed += 1
        self._bar.console.print(f"[red]failed[/] {name}: {reason}")
        if name in self._jobs:
            self._bar.remove_task(self._jobs.pop(name))
        self._show_counts()

    def _show_counts(self) -> None:
        if self._overall is not None:
            info = f"running {len(self._jobs)}, done {self._done}, failed {self._failed}"
            self._bar.update(self._overall, info=info)

    def candidate_skipped(self, name: str, reason: str) -> None:
        self._bar.console.print(f"[dim]skip {name}: {reason}[/]")

    def message(self, text: str) -> None:
        self._bar.console.print(text)
