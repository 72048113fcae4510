"""The executor interface, and the scheduling every multi-worker executor shares.

An executor runs jobs (taskgroup.train.executors.job) and yields their results in the order
they finish; the driver, which owns the run's store, commits each one as it arrives. Its
contract:

- `started(job)` is called just before a job is handed to a worker (the driver marks it
  `running` in the store, so a driver killed now leaves it to be retrained by `--resume`);
- a job whose worker is lost (process killed, crashed, node gone) is handed out again, up to
  `max_attempts` tries in all; its half-trained state is simply dropped;
- a job whose training raises (e.g. it diverged) is not retried: that would fail again. No new
  job starts after such an error or after a job ran out of attempts; the jobs already running
  finish and are yielded (so they are committed), then the first error is raised.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from taskgroup_runtime.device import parse_device, parse_device_list
from taskgroup_runtime.errors import BackendUnavailableError
from taskgroup.errors import TaskgroupError
from taskgroup.train.executors.job import Job, JobResult

DEFAULT_MAX_ATTEMPTS = 3  # tries per job when its worker is lost


class WorkerLost(Exception):
    """The worker running a job died before returning it (killed, crashed, node lost)."""


class Executor:
    """Runs training jobs; yields a JobResult per job. Open before use (connects, checks devices)."""

    name = "executor"
    shared_storage = False  # workers write checkpoints into the run directory themselves (see job.py)
    devices: tuple[str, ...] = ("cpu",)  # where its workers train: cpu, cuda, cuda:N

    def open(self) -> "Executor":
        return self

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, jobs: Sequence[Job], data, progress, started: Callable[[Job], None]) -> Iterator[JobResult]:
        raise NotImplementedError


class PoolExecutor(Executor):
    """Keeps up to `_capacity()` jobs on workers at once; retries lost workers' jobs (see module doc).

    Subclasses provide `_prepare(data)`, `_capacity()`, `_submit(job) -> (handle, where)`,
    `_wait(handles, progress) -> [(handle, JobResult | WorkerLost | Exception)]` (returning
    within about a second, forwarding worker events to `progress`) and `_cancel(handles)`."""

    max_attempts = DEFAULT_MAX_ATTEMPTS

    def run(self, jobs: Sequence[Job], data, progress, started: Callable[[Job], None]) -> Iterator[JobResult]:
        pending = collections.deque(jobs)
        inflight: dict[Any, Job] = {}
        error: BaseException | None = None
        self._prepare(data)
        try:
            while pending or inflight:
                while error is None and pending and len(inflight) < self._capacity():
                    job = pending.popleft()
                    started(job)
                    handle, where = self._submit(job)
                    inflight[handle] = job
                    notify(progress, "job_started", job.label, where)
                if not inflight:
                    break
                for handle, outcome in self._wait(list(inflight), progress):
                    job = inflight.pop(handle)
                    if isinstance(outcome, JobResult):
                        yield outcome
                        continue
                    discard_staged(job)
                    if isinstance(outcome, WorkerLost) and job.attempt < self.max_attempts:
                        notify(progress, "job_failed", job.label,
                               f"{outcome} (try {job.attempt} of {self.max_attempts}); trying again", True)
                        pending.appendleft(job.retry())
                    elif isinstance(outcome, WorkerLost):
                        notify(progress, "job_failed", job.label, f"{outcome} (try {job.attempt} of {self.max_attempts})",
                               False)
                        error = error or TaskgroupError(
                            f"network {job.label}: its worker was lost {job.attempt} times (last: {outcome}); the "
                            "networks finished so far are committed: run again with --resume to train the rest")
                    else:
                        notify(progress, "job_failed", job.label, f"{type(outcome).__name__}: {outcome}", False)
                        error = error or outcome
            if error is not None:
                raise error
        finally:
            if inflight:
                self._cancel(list(inflight))
                for job in inflight.values():
                    discard_staged(job)

    def _prepare(self, data) -> None:
        raise NotImplementedError

    def _capacity(self) -> int:
        raise NotImplementedError

    def _submit(self, job: Job) -> tuple[Any, str]:
        raise NotImplementedError

    def _wait(self, handles: list[Any], progress) -> list[tuple[Any, Any]]:
        raise NotImplementedError

    def _cancel(self, handles: list[Any]) -> None:
        raise NotImplementedError


def notify(progress, event: str, *args) -> None:
    """Call a progress method if the progress object has it (progress objects are duck-typed)."""
    method = getattr(progress, event, None)
    if method is not None:
        method(*args)


def discard_staged(job: Job) -> None:
    """Remove what a failed attempt may have written on shared storage."""
    paths = [job.staged_path(stage) for stage in job.stages]
    paths += [job.staged_path(stage, task) for stage, stops in job.stop_checkpoints.items() for task in stops]
    for path in paths:
        if path is not None:
            Path(path).unlink(missing_ok=True)


def parse_devices(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'cpu', 'cuda', 'cuda:0,cuda:1' -> a tuple of canonical device names, in the runtime's grammar
    (`taskgroup_runtime.device`); checked for form only (`check_local_devices` checks they exist)."""
    try:
        return parse_device_list(text)
    except BackendUnavailableError as exc:
        raise TaskgroupError(f"--devices: {exc}") from None


def check_local_devices(devices: Sequence[str]) -> None:
    """Refuse CUDA devices this machine's torch cannot see (before anything is trained)."""
    cuda = [d for d in devices if parse_device(d).kind == "cuda"]
    if not cuda:
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise TaskgroupError(f"--devices {','.join(devices)}: torch {torch.__version__} sees no CUDA device on this "
                             "machine; valid devices here: cpu")
    for d in cuda:
        try:
            parse_device(d, cuda_count=count)
        except BackendUnavailableError as exc:
            raise TaskgroupError(f"--devices: {exc}") from None
