"""One training job, as every executor runs it, and what it sends back to the driver.

A job is one candidate network with one seed: the stages still missing, the run's config
with that seed, and where its checkpoints go. A worker (this process, a worker process or a
Ray task) calls `run_job`, which trains with `train_one` and turns the kept weights into
checkpoint bytes; it never touches the run's store. The driver verifies each checkpoint
against the sha256 the worker computed, puts it in place and commits the job's rows in one
transaction (taskgroup.train.run.commit_job).

Checkpoints travel in one of two ways:
- bytes (the default): the checkpoint's bytes are part of the result; works on any cluster;
- shared storage (`Job.staging_dir`): the worker writes the file under a temporary name into
  the run's checkpoint folder, which every worker sees at the same path, and returns that
  path; the driver checks its hash and renames it into place.

`JobResult.results` is what `train_one` returned with the weights taken out (they are in the
checkpoints), so anything training adds to its results (losses, affinity, loss weights, the
epochs and losses of per-task stops) travels to the driver unchanged. A per-task stop at
another epoch than the kept weights' has a checkpoint of its own (`stop_checkpoints`), sent
the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskgroup.errors import TaskgroupError
from taskgroup.train.candidates import CandidateSpec
from taskgroup.train.config import RunConfig
from taskgroup.tasks import tasks_declared
from taskgroup.models.checkpoint import checkpoint_bytes


@dataclass(frozen=True)
class Job:
    spec: CandidateSpec  # the network: task set and width
    seed: int  # weights and batch order
    stages: tuple[str, ...]  # stages still to train ("early", "final")
    config: RunConfig  # the run's config, with `seed`
    label: str  # the job's name in progress and messages
    checkpoints: dict[str, str]  # stage -> checkpoint path relative to the run directory
    staging_dir: str | None = None  # shared storage: the run's checkpoint folder as every worker sees it
    session: str = ""  # names the driver process in temporary file names (another driver never reuses them)
    attempt: int = 1  # 1 for the first try; a job whose worker was lost is submitted again with attempt + 1
    affinity: bool = False  # also measure inter-task affinity (train_one(affinity=True))
    replace: bool = False  # the driver replaces committed rows of these stages (retrained to add affinity)
    # per-task stopping: stage -> task -> where that task's best-epoch checkpoint goes (used when
    # its epoch is not the kept weights')
    stop_checkpoints: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return self.spec.name, self.seed

    def staged_path(self, stage: str, task: str | None = None) -> Path | None:
        """Where a worker on shared storage writes this attempt's checkpoint of `stage` (with `task`:
        of that task's per-task stop) (None: send bytes).

        A hidden temporary name in the checkpoint folder: the driver renames it into place once
        verified, and a resumed run removes any left by a worker that died."""
        if self.staging_dir is None:
            return None
        final = Path(self.checkpoints[stage] if task is None else self.stop_checkpoints[stage][task]).name
        return Path(self.staging_dir) / f".{final}.{self.session}.attempt{self.attempt}.tmp"

    def retry(self) -> "Job":
        return dataclasses.replace(self, attempt=self.attempt + 1)


@dataclass(frozen=True)
class Checkpoint:
    sha256: str  # of the checkpoint file's bytes, computed by the worker
    data: bytes | None = None  # the bytes (default transfer)
    staged: str | None = None  # or: the temporary file the worker wrote on shared storage


@dataclass
class JobResult:
    job: Job
    results: dict[str, Any]  # train_one's results (stage -> StageResult) with the weights taken out
    checkpoints: dict[str, Checkpoint]  # stage -> the checkpoint to commit
    worker: dict[str, Any] = field(default_factory=dict)  # where it ran: host, pid, device, threads
    # per-task stopping: stage -> task -> the checkpoint of a stop whose epoch is not the kept
    # weights' (a stop without one here uses the stage's checkpoint)
    stop_checkpoints: dict[str, dict[str, Checkpoint]] = field(default_factory=dict)


def portable_exception(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling (it travels from a worker to the driver), else a TaskgroupError
    or RuntimeError with its message (e.g. exceptions whose __init__ takes other arguments)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - whatever pickling raises, send the message instead
        if isinstance(exc, TaskgroupError):
            return TaskgroupError(str(exc))
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def run_job(job: Job, data, *, device: str = "cpu", threads: int | None = None, progress=None) -> JobResult:
    """Train `job` on `device` and return its results and checkpoints (the worker's side of a job).

    `threads`: torch threads when the config says 0 ("one per core"): the executor's share of
    the cores for one network. An explicit `[train] threads` is always kept, so a network trains
    on the same number of threads whatever the executor (the count changes the last digits of
    the losses)."""

    # The job's recipe is the run's, from its store, with the run's own task declarations: a worker
    # process starts with none (the registry is per process) and may have served another run before.
    with tasks_declared(job.config.declared_tasks):
        return _run_job(job, data, device=device, threads=threads, progress=progress)


def _run_job(job: Job, data, *, device: str, threads: int | None, progress) -> JobResult:
    from taskgroup.train.trainer import build_model, train_one

    config = job.config
    if config.train.threads == 0 and threads is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, threads=threads))
    staging = Path(job.staging_dir) if job.staging_dir is not None else None
    if staging is not None and not staging.is_dir():
        raise TaskgroupError(f"{staging}: the run's checkpoint folder is not visible on {socket.gethostname()}; "
                             "shared storage needs the run directory mounted at the same path on every node")
    results = train_one(job.spec, config, data, stages=job.stages, progress=progress, label=job.label,
                        affinity=job.affinity, device=device)
    checkpoints, stop_checkpoints = {}, {}
    for stage in job.stages:
        r = results[stage]
        model = build_model(config, job.spec)
        model.target_transforms = {t: data.transforms[t] for t in job.spec.tasks if t in data.transforms}
        model.load_state_dict(r.state_dict)
        checkpoints[stage] = _ship(checkpoint_bytes(model, stage=stage, fraction=r.fraction, steps=r.steps,
                                                    best_epoch=r.best_epoch, seed=job.seed), job.staged_path(stage))
        stops = {}
        for task, stop in (r.task_stops or {}).items():  # per-task stopping: each task's best epoch
            if stop.state_dict is not None:  # another epoch than the kept weights': a checkpoint of its own
                model.load_state_dict(stop.state_dict)
                blob = checkpoint_bytes(model, stage=stage, fraction=r.fraction, steps=r.steps, best_epoch=stop.epoch,
                                        seed=job.seed, stopped_for=task)
                stop_checkpoints.setdefault(stage, {})[task] = _ship(blob, job.staged_path(stage, task))
            stops[task] = dataclasses.replace(stop, state_dict=None)
        results[stage] = dataclasses.replace(r, state_dict={}, task_stops=stops if r.task_stops is not None else None)
    worker = {"host": socket.gethostname(), "pid": os.getpid(), "device": str(device),
              "threads": config.train.torch_threads()}
    return JobResult(job, results, checkpoints, worker, stop_checkpoints)


def _ship(blob: bytes, staged: Path | None) -> Checkpoint:
    """A checkpoint as it travels to the driver: its bytes, or (shared storage) the file written at `staged`."""
    sha = hashlib.sha256(blob).hexdigest()
    if staged is None:
        return Checkpoint(sha, data=blob)
    with open(staged, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    return Checkpoint(sha, staged=str(staged))
