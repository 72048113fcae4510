"""Where candidate networks train: executors behind one interface.

    local          every network in this process, one after another (the default)
    processes:N    N worker processes on this machine, each pinned to a device (--devices)
    ray            one Ray task per (network, seed), on --ray-address or a local instance

The process that calls `train_candidates` (the driver) owns the run's store: workers only
train and send back losses and checkpoints (as bytes, or as a file on storage every worker
sees: `shared_storage`); the driver verifies each checkpoint's sha256, puts it in place and
commits the network in one transaction. A job whose worker is lost is trained again (never
recorded half done); a killed driver leaves jobs `running` in the store, which `--resume`
trains again. On the CPU a network's losses do not depend on the executor: the same config,
seed and thread count give the same numbers and the same checkpoint bytes.

    spec = parse_executor("processes:2", devices="cpu")
    with create_executor(spec) as executor:
        train_candidates(run_dir, tasks, specs, config, executor=executor)

Nothing here imports torch or Ray at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskgroup.errors import TaskgroupError
from taskgroup.train.executors.base import DEFAULT_MAX_ATTEMPTS, Executor, PoolExecutor, WorkerLost, parse_devices
from taskgroup.train.executors.job import Checkpoint, Job, JobResult, run_job
from taskgroup.train.executors.local import local_executor
from taskgroup.train.executors.processes import ProcessesExecutor
from taskgroup.train.executors.ray_executor import RayExecutor

EXECUTORS = ("local", "processes:N", "ray")

__all__ = ["EXECUTORS", "ExecutorSpec", "parse_executor", "create_executor", "Executor", "PoolExecutor", "WorkerLost",
           "Job", "JobResult", "Checkpoint", "run_job", "parse_devices"]


@dataclass(frozen=True)
class ExecutorSpec:
    """Which executor to build, from the command line's --executor, --devices, --ray-address, --shared-storage."""

    kind: str = "local"  # local | processes | ray
    workers: int = 1  # processes:N
    devices: tuple[str, ...] = ("cpu",)  # cpu, cuda, cuda:N (processes: one per worker, round robin)
    ray_address: str | None = None  # an existing Ray cluster; None starts a local instance
    shared_storage: bool = False  # workers write checkpoints into the run directory (same path on every node)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # tries per job when its worker is lost

    def describe(self) -> str:
        kind = f"processes:{self.workers}" if self.kind == "processes" else self.kind
        where = f" at {self.ray_address}" if self.ray_address else ""
        return f"{kind}{where} on {','.join(self.devices)}"


def parse_executor(text: str | None = "local", *, devices: str | None = None, ray_address: str | None = None,
                   shared_storage: bool = False, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> ExecutorSpec:
    """'local' | 'processes:N' | 'ray' (+ the options that go with them) -> an ExecutorSpec, checked for form."""
    text = (text or "local").strip()
    kind, sep, arg = text.partition(":")
    workers = 1
    if kind == "processes":
        if not arg.isdigit() or int(arg) < 1:
            raise TaskgroupError(f"--executor {text!r}: give the number of worker processes, e.g. processes:2")
        workers = int(arg)
    elif kind not in ("local", "ray") or sep:
        raise TaskgroupError(f"--executor: unknown executor {text!r}; valid executors: {', '.join(EXECUTORS)}")
    if ray_address is not None and kind != "ray":
        raise TaskgroupError("--ray-address is for --executor ray")
    if shared_storage and kind == "local":
        raise TaskgroupError("--shared-storage is for --executor processes:N or ray (local writes checkpoints itself)")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise TaskgroupError(f"max_attempts must be a positive integer, got {max_attempts!r}")
    return ExecutorSpec(kind, workers, parse_devices(devices), ray_address, shared_storage, max_attempts)


def create_executor(spec: ExecutorSpec | str | None = None) -> Executor:
    """Build the executor a spec names (not yet opened: open it, or use it in a `with` block)."""
    if spec is None or isinstance(spec, str):
        spec = parse_executor(spec)
    if spec.kind == "local":
        return local_executor(spec.devices)
    if spec.kind == "processes":
        return ProcessesExecutor(spec.workers, spec.devices, spec.shared_storage, spec.max_attempts)
    if spec.kind == "ray":
        return RayExecutor(spec.ray_address, spec.devices, spec.shared_storage, spec.max_attempts)
    raise TaskgroupError(f"unknown executor kind {spec.kind!r}; valid executors: {', '.join(EXECUTORS)}")
