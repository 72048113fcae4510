"""Train a set of candidate networks into a run directory, resumably.

RUN_DIR/
  runs.sqlite               results store (taskgroup.train.store): config, candidates, results
  losses.json               the loss table, re-exported after every finished candidate
  checkpoints/<name>_<stage>.pt   best-on-validation weights of each finished (network, stage)

Each candidate is trained, its checkpoints renamed into place, then committed in one
transaction; `resume=True` skips committed (network, stage) pairs and retrains interrupted
candidates from scratch. The same function adds more networks to an existing run later
(`train_more`), e.g. the pipeline fully training networks that were only estimated.

Where networks train is the executor's business (taskgroup.train.executors: this process,
worker processes, or Ray tasks); this process stays the driver: it alone writes the store,
committing each network as its worker returns it (`commit_job`).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any, Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import DirectoryLock, differences
from taskgroup.losstable import LossTable
from taskgroup.tasks import parse_task_list
from taskgroup.train.candidates import CandidateSpec, normalise_spec
from taskgroup.train.config import RunConfig, TrainConfig
from taskgroup.train.store import CHECKPOINT_DIR, RunStore


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
                     seeds: Sequence[int] | None = None, executor=None) -> LossTable:
    """Train `specs` (those not yet finished) into `run_dir`, once per seed; return the run's loss table.

    `seeds` defaults to the config's one seed. Jobs are handed out seed by seed (every network
    of the first seed, then of the next), so an interrupted multi-seed run has complete tables
    for its first seeds. A new run refuses a non-empty directory; `resume=True` reopens it,
    refusing a different config (the seed aside: seeds are an axis of the run), and also
    retrains jobs a previous process left unfinished. `data` (a RunData) may be passed to reuse
    splits already in memory. `executor`: where networks train: an ExecutorSpec or its text
    ('local', 'processes:2', 'ray'; default local), built, opened and closed here, or an
    Executor the caller opened and closes (e.g. kept across several calls).
    """
    from taskgroup.train.executors import Executor, create_executor
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
    model = build_model(config, CandidateSpec(tasks))  # bad model_config fails before anything is written
    run_dir = Path(run_dir)
    config_doc = json.loads(json.dumps(dataclasses.replace(config, seed=seeds[0]).to_dict()))
    if resume:
        store = RunStore.open(run_dir)
    else:
        RunStore.check_creatable(run_dir)
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
            _check_same_run(store, config_doc, tasks)
            for note in store.verify_checkpoints():
                progress.message(note)
            for stale in (run_dir / CHECKPOINT_DIR).glob(".*.tmp"):  # temp files of a killed checkpoint write
                stale.unlink()
        jobs: list[tuple[CandidateSpec, int, tuple[str, ...]]] = [(s, seed, stages) for seed in seeds for s in specs]
        wanted = {(s, seed) for s, seed, _ in jobs}
        for spec, seed in store.interrupted():
            if (spec, seed) not in wanted:
                jobs.append((spec, seed, store.interrupted_stages(spec, seed)))
        todo = [(s, seed, st) for s, seed, st in jobs if set(st) - store.done_stages(s, seed)]
        progress.run_started(len(jobs), len(jobs) - len(todo))
        for spec, seed, st in jobs:
            if not set(st) - store.done_stages(spec, seed):
                progress.candidate_skipped(job_name(spec, seed, seeds), "already trained")
        if data is None and todo:
            progress.message("loading data (rendered and cached on first use)")
            data = load_run_data(config, tasks)
        if data is not None and not store.reference_losses():
            store.set_reference_losses(data.reference)
        if data is not None:
            _record_transforms(store, data)
        store.export()
        if todo:
            executor.open()
            jobs = [job for spec, seed, st in todo
                    if (job := make_job(store, spec, dataclasses.replace(config, seed=seed), st,
                                        job_name(spec, seed, seeds), executor.shared_storage)) is not None]
            run_jobs(store, jobs, data, executor, progress)
        return store.export()
    finally:
        store.close()
        lock.release()
        if owned:
            executor.close()


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
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(part)])
        except ValueError:
            raise TaskgroupError(f"--seeds: {part!r} is not a seed or a range (write e.g. 0,1,2 or 0-4)") from None
    return check_seeds(out)


def job_name(spec: CandidateSpec, seed: int, seeds: Sequence[int]) -> str:
    return spec.name if len(seeds) == 1 else f"{spec.name} seed {seed}"


def checkpoint_path(spec: CandidateSpec, seed: int, base_seed: int, stage: str) -> str:
    """Checkpoint path relative to the run: the run's creation seed keeps the one-seed file names."""
    tag = "" if seed == base_seed else f"_s{seed}"
    return f"{CHECKPOINT_DIR}/{spec.file_stem}{tag}_{stage}.pt"


def make_job(store: RunStore, spec: CandidateSpec, config: RunConfig, stages: Sequence[str], label: str,
             shared_storage: bool = False, session: str | None = None):
    """The job training the stages of (spec, config.seed) not yet committed; None if there are none."""
    from taskgroup.train.executors import Job

    seed = config.seed
    missing = tuple(s for s in ("early", "final") if s in stages and s not in store.done_stages(spec, seed))
    if not missing:
        return None
    staging = str((store.run_dir / CHECKPOINT_DIR).resolve()) if shared_storage else None
    return Job(spec, seed, missing, config, label, {s: checkpoint_path(spec, seed, store.base_seed(), s) for s in missing},
               staging, session or _SESSION)


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
    import hashlib

    job = result.job
    rows = []
    for stage in job.stages:
        r, ckpt = result.results[stage], result.checkpoints[stage]
        _place_checkpoint(store.run_dir / job.checkpoints[stage], ckpt, job.label, hashlib.sha256)
        rows.append(dict(stage=stage, fraction=r.fraction, best_epoch=r.best_epoch, steps=r.steps,
                         wall_time_s=r.wall_time_s, losses=r.losses, checkpoint=job.checkpoints[stage]))
    store.commit_results(job.spec, job.seed, rows)
    store.export()


def _place_checkpoint(dest: Path, ckpt, label: str, sha256) -> None:
    import os

    from runtime.manifest import sha256_file
    from taskgroup.fileio import default_file_mode, fsync_directory, write_bytes_atomic

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


def train_into_store(store: RunStore, spec: CandidateSpec, config: RunConfig, data, stages: Sequence[str], progress=None,
                     label: str | None = None) -> None:
    """Train the missing stages of one candidate with `config.seed` in this process, write its
    checkpoints, commit, export the table."""
    from taskgroup.train.executors.local import LocalExecutor
    from taskgroup.train.trainer import Progress

    job = make_job(store, spec, config, stages, label or spec.name)
    if job is not None:
        run_jobs(store, [job], data, LocalExecutor(), progress or Progress())


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


def run_config_from_store(store: RunStore) -> RunConfig:
    """Rebuild the RunConfig a run was started with (the data cache location is not stored)."""
    from taskgroup.data import DataConfig
    from taskgroup.presets import ArchPreset

    doc = store.config()
    try:
        arch = ArchPreset(model=doc["arch"]["model"], model_config=doc["arch"]["model_config"],
                          resolution=doc["arch"]["resolution"])
        return RunConfig(preset=doc["preset"], arch=arch, data=DataConfig.from_dict(doc["data"]),
                         train=TrainConfig(**doc["train"]), seed=doc["seed"], esa_fraction=doc["esa_fraction"])
    except (KeyError, TypeError) as exc:
        raise TaskgroupError(f"{store.path}: stored run config is incomplete or malformed ({exc})") from exc


def _record_transforms(store: RunStore, data) -> None:
    """Store the run's target transforms once; later loads must reproduce them (the networks
    of one run are all trained in the same standardised space)."""
    stored = store.target_transforms()
    if not stored:
        store.set_target_transforms(data.transforms)
        return
    for task, tr in data.transforms.items():
        old = stored.get(task)
        if old is None:
            continue
        same = old.mean == tr.mean if old.mean is None or tr.mean is None else (
            len(old.mean) == len(tr.mean)
            and all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(old.mean + old.std, tr.mean + tr.std)))
        if not same:
            raise TaskgroupError(f"{store.path}: refusing to continue: task '{task}' is standardised with mean "
                                 f"{list(old.mean or [])} / std {list(old.std or [])} in this run, but the data now "
                                 f"gives {list(tr.mean or [])} / {list(tr.std or [])} (did the data change?); "
                                 "use a new --out")


def _check_same_run(store: RunStore, config_doc: dict[str, Any], tasks: tuple[str, ...]) -> None:
    # The stored config is rebuilt through RunConfig, so fields added since the run was created
    # compare at their defaults (which reproduce the old behaviour); the seed is an axis, not identity.
    stored = json.loads(json.dumps(run_config_from_store(store).to_dict()))
    stored["data_format"] = store.config().get("data_format")  # what the run was trained on, not today's
    stored.pop("seed", None)
    config_doc = {k: v for k, v in config_doc.items() if k != "seed"}
    if store.tasks() != tasks:
        raise TaskgroupError(f"{store.run_dir}: refusing to resume: the run was started with tasks {list(store.tasks())}, "
                             f"now given {list(tasks)}")
    if stored != config_doc:
        diffs = differences(stored, config_doc)
        raise TaskgroupError(f"{store.run_dir}: refusing to resume with a different config: "
                             + "; ".join(f"{k}: run has {a!r}, now {b!r}" for k, a, b in diffs[:8])
                             + " (use a new --out directory, or the original settings)")


def _dedupe(specs: list[CandidateSpec]) -> list[CandidateSpec]:
    seen, out = set(), []
    for s in specs:
        if s.name not in seen:
            seen.add(s.name)
            out.append(s)
    return out
