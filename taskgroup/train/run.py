"""Train a set of candidate networks into a run directory, resumably.

RUN_DIR/
  runs.sqlite               results store (taskgroup.train.store): config, candidates, results
  losses.json               the loss table, re-exported after every finished candidate
  checkpoints/<name>_<stage>.pt   best-on-validation weights of each finished (network, stage)

Each candidate is trained, its checkpoints renamed into place, then committed in one
transaction; `resume=True` skips committed (network, stage) pairs and retrains interrupted
candidates from scratch.

Two entry points: `train_candidates` trains a set of networks into a new or resumed run;
`train_more` adds networks to an existing run with its stored recipe and seeds (e.g. networks
selection only estimated) by calling `train_candidates` with `resume=True`. The steps of
`train_candidates` around the executor: `make_job` (one network and seed, the stages still
missing), `run_jobs` (hand them out) and `commit_job` (one result into the store).

Where networks train is the executor's business (taskgroup.train.executors: this process,
worker processes, or Ray tasks); this process stays the driver: it alone writes the store,
committing each network as its worker returns it (`commit_job`). What the run's store says about
its recipe, and holding every job to it, is taskgroup.train.stored_config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Sequence

from taskgroup.affinity import ALL_KINDS, AffinityRun
from taskgroup.errors import TaskgroupError
from taskgroup.fileio import DirectoryLock, default_file_mode, fsync_directory, write_bytes_atomic
from taskgroup.losstable import LossTable
from taskgroup.resultrows import LossWeights, ResultRow, TaskStopRow
from taskgroup.tasks import parse_task_list
from taskgroup.train.candidates import FULL, CandidateSpec, normalise_spec
from taskgroup.train.config import RunConfig
from taskgroup.train.executors import Executor, Job, create_executor
from taskgroup.train.precision import check_amp_affinity, check_amp_devices
from taskgroup.train.store import RunStore
from taskgroup.train.store_file import CHECKPOINT_DIR, check_creatable
from taskgroup.train.stored_config import check_same_run, record_transforms, run_config_from_store, stored_recipe
from taskgroup.train.strategies import check_affinity
from taskgroup.train.weighting import check_task_weights
from taskgroup_runtime.integrity import sha256_file


_SESSION = uuid.uuid4().hex[:8]  # names this process in temporary checkpoint names on shared storage


def default_stages(config: RunConfig, esa_only: bool = False) -> tuple[str, ...]:
    """`final`; plus `early` when an ESA fraction is set; only `early` with esa_only."""
    if esa_only:
        if config.esa_fraction is None:
            raise TaskgroupError("--esa-only needs --esa FRACTION")
        return ("early",)
    return ("early", "final") if config.esa_fraction is not None else ("final",)


def train_candidates(run_dir: str | Path, tasks: Sequence[str], specs: Sequence[CandidateSpec], config: RunConfig, *,
                     resume: bool = False, stages: Sequence[str] | None = None, progress=None, data=None,
                     seeds: Sequence[int] | None = None, affinity: bool = False, executor=None) -> LossTable:
    """Train `specs` (those not yet finished) into `run_dir`, once per seed; return the run's loss table.

    `seeds` defaults to the config's one seed. Jobs are handed out seed by seed (every network
    of the first seed, then of the next), so an interrupted multi-seed run has complete tables
    for its first seeds. A new run refuses a non-empty directory; `resume=True` reopens it,
    refusing a different config (the seed aside: seeds are an axis of the run), and also
    retrains jobs a previous process left unfinished. `data` (a RunData) may be passed to reuse
    splits already in memory.

    `affinity=True` trains the full-width network of all `tasks` (added to `specs` if absent)
    with inter-task affinity tracking (taskgroup.train.affinity) and records that in the run:
    every later job of that network tracks it too. A job of it already trained without affinity
    is trained again (deterministic: the same weights and losses) to measure it.

    `executor`: where networks train: an ExecutorSpec or its text ('local', 'processes:2',
    'ray'; default local), built, opened and closed here, or an Executor the caller opened and
    closes (e.g. kept across several calls). Whatever the executor, this process commits every
    (network, seed) as its worker returns it.
    """
    from taskgroup.train.trainer import Progress, build_model, check_trainable, load_run_data

    progress = progress or Progress()
    owned = not isinstance(executor, Executor)
    executor = create_executor(executor) if owned else executor  # a malformed spec fails before anything is written
    tasks = parse_task_list(list(tasks))
    seeds = check_seeds(seeds if seeds is not None else (config.seed,))
    stages = tuple(stages) if stages is not None else default_stages(config)
    if not stages or not set(stages) <= {"early", "final"}:
        raise TaskgroupError(f"stages must be 'final' and/or 'early', got {list(stages)}")
    if "early" in stages and config.esa_fraction is None:
        raise TaskgroupError("the early (ESA) stage needs an ESA fraction (--esa FRACTION)")
    specs = _dedupe([normalise_spec(s, tasks) for s in specs])

    check_amp_devices(config.train.amp, executor.devices)  # e.g. fp16 on the CPU, before anything is written

    check_task_weights(config.train.task_weights, tasks)
    if affinity:
        if len(tasks) < 2:
            raise TaskgroupError("affinity needs at least two tasks (it measures how tasks affect each other)")

        check_affinity(config.train.strategy)
        check_amp_affinity(config.train.amp)
        specs = _dedupe(specs + [affinity_spec(tasks)])
    model = build_model(config, CandidateSpec(tasks))  # bad model_config fails before anything is written
    run_dir = Path(run_dir)
    config_doc = json.loads(json.dumps(dataclasses.replace(config, seed=seeds[0]).to_dict()))
    if resume:
        store = RunStore.open(run_dir)
    else:
        check_creatable(run_dir)
        if data is None and specs:
            # Data problems (missing Taskonomy root, too few images for a batch, class ids beyond
            # the segmentation head) must surface before the run directory exists: a directory
            # created for a run that cannot start would refuse both a fixed config and a fresh run.
            progress.message("loading data (rendered and cached on first use)")
            data = load_run_data(config, tasks)
        if data is not None:
            check_trainable(config, data, model)
        if specs:
            executor.open()  # an unreachable cluster or a missing device must not leave a run directory behind
        store = RunStore.create(run_dir, config_doc, tasks)
    lock = DirectoryLock(run_dir)
    try:
        lock.acquire()  # one process per run: a second one would retrain the first one's networks
        if resume:
            check_same_run(store, config_doc, tasks)
            for note in store.verify_checkpoints():
                progress.message(note)
            for stale in (run_dir / CHECKPOINT_DIR).glob(".*.tmp"):  # temp files of a killed checkpoint write
                stale.unlink()
        if affinity:
            store.set_affinity_network(affinity_spec(tasks))
        store.add_requested(specs, seeds)  # what `train --resume` continues
        tracked = store.affinity_network()
        jobs: list[tuple[CandidateSpec, int, tuple[str, ...]]] = [(s, seed, stages) for seed in seeds for s in specs]
        wanted = {(s, seed) for s, seed, _ in jobs}
        for spec, seed in store.interrupted():
            if (spec, seed) not in wanted:
                jobs.append((spec, seed, store.interrupted_stages(spec, seed)))

        def pending(spec: CandidateSpec, seed: int, st: tuple[str, ...]) -> bool:
            return bool(set(st) - store.done_stages(spec, seed)) or (
                spec.name == tracked and not store.has_affinity(spec, seed, st))

        todo = [(s, seed, st) for s, seed, st in jobs if pending(s, seed, st)]
        progress.run_started(len(jobs), len(jobs) - len(todo))
        for spec, seed, st in jobs:
            if not pending(spec, seed, st):
                progress.candidate_skipped(job_name(spec, seed, seeds), "already trained")
        if data is None and todo:
            progress.message("loading data (rendered and cached on first use)")
            data = load_run_data(config, tasks)
        if data is not None and not store.reference_losses():
            store.set_reference_losses(data.reference)
        if data is not None:
            record_transforms(store, data)
            if not store.labelled_samples():
                store.set_labelled_samples({s: len(getattr(data, s)) for s in ("train", "val", "test")}, data.labelled)
        store.export()
        if todo:
            executor.open()
            recipe = stored_recipe(store, config)
            jobs = [job for spec, seed, st in todo
                    if (job := make_job(store, spec, dataclasses.replace(recipe, seed=seed), st,
                                        job_name(spec, seed, seeds), executor.shared_storage,
                                        affinity=spec.name == tracked)) is not None]
            run_jobs(store, jobs, data, executor, progress)
        return store.export()
    finally:
        store.close()
        lock.release()
        if owned:
            executor.close()


MAX_SEEDS = 1000  # more would train every network a thousand times: a typo, never a plan


def check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """Distinct non-negative integer seeds, in the order given."""
    seeds = tuple(seeds)
    if not seeds:
        raise TaskgroupError("give at least one seed")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise TaskgroupError(f"seeds must be non-negative integers, got {seed!r}")
    if len(set(seeds)) != len(seeds):
        raise TaskgroupError(f"a seed is listed twice: {list(seeds)}")
    return seeds


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' or a range '0-4' (inclusive) -> seeds."""
    out: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            seeds = range(int(lo), int(hi) + 1) if sep else [int(part)]
        except ValueError:
            raise TaskgroupError(f"--seeds: {part!r} is not a seed or a range (write e.g. 0,1,2 or 0-4)") from None
        if len(out) + len(seeds) > MAX_SEEDS:  # checked before the list is built: '0-99999999999' is a typo
            raise TaskgroupError(f"--seeds: {text!r} asks for more than {MAX_SEEDS} seeds (each trains every network "
                                 "again); write e.g. 0,1,2 or 0-4")
        out.extend(seeds)
    return check_seeds(out)


def job_name(spec: CandidateSpec, seed: int, seeds: Sequence[int]) -> str:
    return spec.name if len(seeds) == 1 else f"{spec.name} seed {seed}"


def checkpoint_path(spec: CandidateSpec, seed: int, base_seed: int, stage: str) -> str:
    """Checkpoint path relative to the run: the run's creation seed keeps the one-seed file names."""
    tag = "" if seed == base_seed else f"_s{seed}"
    return f"{CHECKPOINT_DIR}/{spec.file_stem}{tag}_{stage}.pt"


def task_stop_checkpoint_path(spec: CandidateSpec, seed: int, base_seed: int, stage: str, task: str) -> str:
    """Checkpoint of a network at the epoch where `task`'s validation loss was best (per-task stopping)."""
    return checkpoint_path(spec, seed, base_seed, stage)[:-len(".pt")] + f"_best-{task}.pt"


def affinity_spec(tasks: Sequence[str]) -> CandidateSpec:
    """The network affinity is measured on: all the run's tasks, full width."""
    return CandidateSpec(tuple(tasks), FULL)


def make_job(store: RunStore, spec: CandidateSpec, config: RunConfig, stages: Sequence[str], label: str,
             shared_storage: bool = False, session: str | None = None, affinity: bool = False):
    """The job training the stages of (spec, config.seed) not yet committed; None if there are none.

    With `affinity`, the job also measures inter-task affinity; stages committed before without
    it are trained again (the same weights: training is deterministic) and their rows replaced."""

    seed = config.seed
    done = store.done_stages(spec, seed)
    redo = affinity and not store.has_affinity(spec, seed, stages)
    missing = tuple(s for s in ("early", "final") if s in stages and (redo or s not in done))
    if not missing:
        return None
    base_seed = store.base_seed()
    per_task = config.train.per_task_stopping and len(spec.tasks) > 1  # where train_one keeps per-task stops
    stops = {s: {t: task_stop_checkpoint_path(spec, seed, base_seed, s, t) for t in spec.tasks}
             for s in missing if per_task and s == "final"}
    staging = str((store.run_dir / CHECKPOINT_DIR).resolve()) if shared_storage else None
    return Job(spec, seed, missing, config, label, {s: checkpoint_path(spec, seed, base_seed, s) for s in missing},
               staging, session or _SESSION, affinity=affinity, replace=bool(done & set(missing)),
               stop_checkpoints=stops)


def run_jobs(store: RunStore, jobs: Sequence, data, executor, progress) -> None:
    """Hand `jobs` to `executor`; commit each result as it comes back (this process owns the store)."""
    def started(job) -> None:
        store.mark_running(job.spec, job.seed, job.stages)

    for result in executor.run(jobs, data, progress, started):
        commit_job(store, result)
        final = result.results.get("final") or result.results["early"]
        val = ", ".join(f"{t} {v:.4f}" for t, v in final.losses["val"].items())
        where = "" if executor.name == "local" else f" on {result.worker.get('host')} {result.worker.get('device')}"
        progress.candidate_done(result.job.label, f"val {val} ({final.wall_time_s:.1f} s{where})")


def commit_job(store: RunStore, result) -> None:
    """Put a job's checkpoints in place (each verified against the hash its worker computed), then
    commit its result rows in one transaction and re-export the loss table.

    A checkpoint that does not match its hash is refused before anything is recorded: the job
    stays `running`, so `--resume` trains it again."""
    job = result.job
    rows = []
    for stage in job.stages:
        r, ckpt = result.results[stage], result.checkpoints[stage]
        rel = job.checkpoints[stage]
        _place_checkpoint(store.run_dir / rel, ckpt, job.label, hashlib.sha256)
        stops = []
        for task, stop in (r.task_stops or {}).items():  # per-task stopping: each task's best epoch
            stop_rel = rel  # the kept weights' epoch: the stage's checkpoint
            own = result.stop_checkpoints.get(stage, {}).get(task)
            if own is not None:  # another epoch than the kept weights': its own checkpoint
                stop_rel = job.stop_checkpoints[stage][task]
                _place_checkpoint(store.run_dir / stop_rel, own, f"{job.label} (best for {task})", hashlib.sha256)
            stops.append(TaskStopRow(task, stop.epoch, stop.losses, stop_rel))
        rows.append(ResultRow(stage, r.fraction, r.best_epoch, r.steps, r.wall_time_s, r.losses, rel,
                              affinity=_affinity_run(r.affinity, job.seed, stage),
                              loss_weights=LossWeights.from_snapshot(r.loss_weights),
                              task_stops=tuple(stops)))
    store.commit_results(job.spec, job.seed, rows, replace=job.replace)
    store.export()


def _affinity_run(measured: dict | None, seed: int, stage: str) -> AffinityRun | None:
    """The affinity tracker's result (taskgroup.train.affinity: steps, every, seconds, one matrix per kind)
    as the record the store commits."""
    if not measured:
        return None
    return AffinityRun(seed, stage, measured["steps"], measured["every"], measured["seconds"],
                       {k: measured[k] for k in ALL_KINDS if k in measured})


def _place_checkpoint(dest: Path, ckpt, label: str, sha256) -> None:
    damaged = (f"{dest}: the checkpoint of {label} does not match the sha256 its worker computed "
               f"({ckpt.sha256[:12]}...): damaged on the way; nothing was recorded for it (--resume trains it again)")
    if ckpt.data is not None:
        if sha256(ckpt.data).hexdigest() != ckpt.sha256:
            raise TaskgroupError(damaged)
        write_bytes_atomic(dest, ckpt.data)
        return
    staged = Path(ckpt.staged)
    if not staged.is_file() or sha256_file(staged) != ckpt.sha256:
        staged.unlink(missing_ok=True)
        raise TaskgroupError(damaged)
    staged.chmod(default_file_mode())
    os.replace(staged, dest)  # same folder: atomic
    fsync_directory(dest.parent)


def train_more(run_dir: str | Path, specs: Sequence[CandidateSpec], *, stages: Sequence[str] = ("final",),
               progress=None, data=None, seeds: Sequence[int] | None = None, executor=None) -> LossTable:
    """Train further networks (e.g. ones selection only estimated) into an existing run, with its
    config, for `seeds` (default: every seed the run has results for)."""
    store = RunStore.open(run_dir)
    try:
        config, tasks = run_config_from_store(store), store.tasks()
        seeds = seeds if seeds is not None else (store.seeds() or [store.base_seed()])
    finally:
        store.close()
    return train_candidates(run_dir, tasks, specs, config, resume=True, stages=stages, progress=progress, data=data,
                            seeds=seeds, executor=executor)


def _dedupe(specs: list[CandidateSpec]) -> list[CandidateSpec]:
    seen, out = set(), []
    for s in specs:
        if s.name not in seen:
            seen.add(s.name)
            out.append(s)
    return out
