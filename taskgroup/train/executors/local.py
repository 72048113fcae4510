"""`local`: every network in this process, one after another (the default; no extra dependency)."""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

from taskgroup_runtime.device import parse_device
from taskgroup.errors import TaskgroupError
from taskgroup.train.executors.base import Executor, check_local_devices
from taskgroup.train.executors.job import Job, JobResult, run_job


class LocalExecutor(Executor):
    """Trains in the calling process on one device; progress is reported step by step.

    A training error is raised at once (no other job is under way)."""

    name = "local"

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.devices = (device,)

    def open(self) -> "LocalExecutor":
        check_local_devices([self.device])
        return self

    def run(self, jobs: Sequence[Job], data, progress, started: Callable[[Job], None]) -> Iterator[JobResult]:
        for job in jobs:
            started(job)
            # threads=None: a config asking for "one per core" gets every core, as this process has them all.
            yield run_job(job, data, device=self.device, threads=None, progress=progress)


def local_executor(devices: Sequence[str]) -> LocalExecutor:
    if len(devices) != 1:
        raise TaskgroupError(f"--devices {','.join(devices)}: the local executor trains one network at a time on one "
                             "device; use --executor processes:N to train on several devices at once")
    return LocalExecutor(str(parse_device(devices[0])))  # `cuda` trains on cuda:0
