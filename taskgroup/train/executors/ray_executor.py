"""`ray`: one Ray task per (network, seed), on an existing Ray cluster or a local instance.

`--ray-address ADDRESS` connects to a running cluster (`ray start --head` on one node, `ray
start --address HEAD:6379` on the others; docs/training.md; `auto` finds the cluster this
machine belongs to); without it a new local instance is started for the run and stopped after
it. A process that already called `ray.init` keeps its own connection. Ray is an optional dependency: `pip install 'taskgrouping[ray]'`; it is imported only
here, when this executor is opened.

Each task asks for the resources one network needs: `num_cpus` = the network's threads
(`[train] threads`, 1 when it is 0), plus `num_gpus=1` with `--devices cuda` (Ray then shows
the task exactly one GPU, as cuda:0). At most as many tasks as the cluster can run at once are
submitted, so "running" in the progress means running or about to; new nodes are used as
they join. The run's splits are put in Ray's object store once per run and kept, decoded, by
each worker process between its tasks.

Tasks are submitted with Ray's own retries off (`max_retries=0`): a task whose worker or node
is lost comes back as a Ray system error and the shared scheduler (base.PoolExecutor) submits
it again, so every retry shows in the progress and counts in the store's `attempts`. An
exception raised by training comes back as a RayTaskError and is re-raised as the original
exception.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.train.executors.base import PoolExecutor, WorkerLost
from taskgroup.train.executors.job import Job, JobResult
from taskgroup.train.executors.job import portable_exception, run_job


def import_ray():
    try:
        import ray
    except ImportError:
        raise TaskgroupError("--executor ray needs Ray, which is not installed: pip install 'taskgrouping[ray]'") from None
    return ray


class RayExecutor(PoolExecutor):
    name = "ray"

    def __init__(self, address: str | None = None, devices: Sequence[str] = ("cpu",), shared_storage: bool = False,
                 max_attempts: int | None = None):
        devices = tuple(devices)
        if devices not in (("cpu",), ("cuda",)):
            raise TaskgroupError(f"--devices {','.join(devices)}: with --executor ray give cpu or cuda (Ray assigns "
                                 "each task its own GPU; indices such as cuda:1 are not chosen by taskgroup)")
        self.address = address
        self.gpu = devices == ("cuda",)
        self.devices = devices
        self.shared_storage = shared_storage
        if max_attempts is not None:
            self.max_attempts = max_attempts
        self._ray = None
        self._owned = False
        self._remote = None
        self._data = None
        self._data_ref = None
        self._capacity_cache: tuple[float, int] = (0.0, 1)
        self._data_lost = False  # the splits' object was lost with a node: put them again before the next task
        self._reaper = None  # the process that ends a local instance's leftovers when this driver is gone
        self.cpus_per_task = 0  # set (and checked against the cluster) by the first submission

    def open(self) -> "RayExecutor":
        if self._ray is not None:
            return self
        ray = import_ray()
        if not ray.is_initialized():
            check_reachable(self.address)
            try:
                # "local": always a new instance, never one somebody else started on this machine.
                ray.init(address=self.address or "local", include_dashboard=False, log_to_driver=False,
                         logging_level="warning")
            except Exception as exc:  # noqa: BLE001 - Ray raises several types for an unreachable cluster
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise TaskgroupError(f"--executor ray: could not connect to {where} ({first})") from exc
            self._owned = True
            if not self.address:
                self._reaper = start_session_reaper(ray)
        self._ray = ray
        if self.gpu and ray.cluster_resources().get("GPU", 0) < 1:
            resources = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
            self.close()
            raise TaskgroupError(f"--devices cuda: the Ray cluster has no GPU (it offers {resources})")
        self._remote = ray.remote(_ray_job)
        return self

    def close(self) -> None:
        if self._ray is not None and self._owned:
            self._ray.shutdown()
        if self._reaper is not None:  # the instance is shut down: the reaper ends what is left, at once
            try:
                self._reaper.stdin.write(b"done")
                self._reaper.stdin.close()
            except OSError:
                pass
            self._reaper.wait()
            self._reaper = None
        self._ray, self._owned, self._remote, self._data, self._data_ref = None, False, None, None, None

    # -- PoolExecutor -------------------------------------------------------------------

    def _prepare(self, data) -> None:
        if data is not self._data:
            self._data, self._data_ref = data, self._cluster_call(self._ray.put, data)

    def _threads(self, job: Job) -> int:
        return job.config.train.threads or 1

    def _capacity(self) -> int:
        """How many tasks the cluster can run at once (re-read every few seconds: nodes come and go)."""
        checked, capacity = self._capacity_cache
        if time.monotonic() - checked > 5.0:
            resources = self._cluster_call(self._ray.cluster_resources)
            if self.gpu:
                capacity = int(resources.get("GPU", 0))
            else:
                capacity = int(resources.get("CPU", 0) // max(1, self.cpus_per_task))
            capacity = max(1, capacity)
            self._capacity_cache = (time.monotonic(), capacity)
        return capacity

    def _submit(self, job: Job) -> tuple[Any, str]:
        if self._data_lost:  # the node holding the splits died: the retried task needs them again
            self._data_ref, self._data_lost = self._cluster_call(self._ray.put, self._data), False
        threads = self._threads(job)
        if threads != self.cpus_per_task:
            self._check_feasible(threads)
            self.cpus_per_task, self._capacity_cache = threads, (0.0, 1)
        options = {"num_cpus": threads, "max_retries": 0, "name": f"taskgroup train {job.label}"}
        if self.gpu:
            options["num_gpus"] = 1
        remote = self._remote.options(**options)
        ref = self._cluster_call(lambda: remote.remote(job, [self._data_ref], threads, self.gpu))
        return ref, f"Ray task ({threads} CPU{', 1 GPU' if self.gpu else ''})"

    def _cluster_call(self, call, *args):
        """A call to the cluster itself; its failure (the head or this node gone) is a one-line error."""
        try:
            return call(*args)
        except self._ray.exceptions.RayError as exc:
            text = str(exc).strip().splitlines()
            raise TaskgroupError(f"--executor ray: the Ray cluster failed ({type(exc).__name__}: "
                                 f"{text[0] if text else ''}); the networks finished so far are committed: run again "
                                 "with --resume to train the rest") from exc

    def _check_feasible(self, threads: int) -> None:
        """A task needs its CPUs on one node: refuse a request no node can meet (Ray would wait forever)."""
        largest = max((n.get("Resources", {}).get("CPU", 0) for n in self._ray.nodes() if n.get("Alive")), default=0)
        if largest < threads:
            raise TaskgroupError(f"[train] threads = {threads}: each network asks Ray for {threads} CPUs, but the "
                                 f"largest node of the cluster has {largest:g}; lower threads in the config")

    def _wait(self, handles: list[Any], progress) -> list[tuple[Any, Any]]:
        ray = self._ray
        ready, _ = self._cluster_call(lambda: ray.wait(handles, num_returns=1, timeout=1.0))
        if ready:
            ready, _ = self._cluster_call(lambda: ray.wait(handles, num_returns=len(handles), timeout=0))
        out = []
        for ref in ready:
            try:
                outcome: Any = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # training raised: the original exception
                outcome = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                if isinstance(outcome, ray.exceptions.RayError):  # not training: the cluster lost something the
                    outcome = self._lost(outcome)                    # task needed (e.g. the splits, with a node)
            except ray.exceptions.RayError as exc:  # the worker, its node or the result was lost
                outcome = self._lost(exc)
            out.append((ref, outcome))
        return out

    def _lost(self, exc: BaseException) -> WorkerLost:
        if isinstance(exc, self._ray.exceptions.ObjectLostError):
            self._data_lost = True
        text = str(exc).strip().splitlines()
        return WorkerLost(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))

    def _cancel(self, handles: list[Any]) -> None:
        for ref in handles:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or its worker already gone
                pass


def check_reachable(address: str | None, timeout_s: float = 10.0) -> None:
    """Refuse an address nothing answers at, at once: Ray itself keeps retrying for many minutes."""
    if not address or address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise TaskgroupError(f"--ray-address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:PORT "
                             "or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise TaskgroupError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the "
                             "cluster with `ray start --head` on that node, or give its address") from None


# Run by the reaper process: wait until the driver says "done" (after ray.shutdown) or dies (its end of
# the pipe closes; then give Ray's own teardown a moment), then SIGKILL whatever process of that session
# is still there. Ray's per-node agents (DashboardAgent, RuntimeEnvAgent) notice their raylet is gone
# within seconds but then try for 60 s to report it to the GCS, which died with the driver.
_REAPER = """
import os, signal, sys, time
session = sys.argv[1]
if sys.stdin.buffer.read() != b"done":  # EOF without "done": the driver died, Ray's teardown is under way
    time.sleep(float(sys.argv[2]))
for pid in [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if session.encode() in f.read():
                os.kill(int(pid), signal.SIGKILL)
    except OSError:
        pass
"""


def start_session_reaper(ray, grace_s: float = 2.0):
    """A small process that ends every process of the local Ray instance this driver started (found by
    the instance's own session directory in their command lines) once the driver is gone, also when it
    was SIGKILLed. Linux only (it reads /proc); None elsewhere, or if the session is unknown."""
    try:
        session = ray._private.worker._global_node.get_session_dir_path()
    except AttributeError:
        return None
    if not os.path.isdir("/proc") or not session or "session_" not in session:
        return None
    return subprocess.Popen([sys.executable, "-c", _REAPER, session, str(grace_s)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


_DATA: dict[str, Any] = {}  # in a Ray worker process: the run's splits, decoded once, by object id
_WATCHING: list[int] = []  # in a Ray worker process: the raylet's pid, once the watchdog runs


def _exit_with_raylet() -> None:
    """Stop this worker when its raylet (its parent) is gone: the node has left the cluster (or a
    local instance stopped with its driver), the driver already counts the job as lost, and the
    network would be trained for nobody. Ray itself only notices after the task returns."""
    if _WATCHING:
        return
    _WATCHING.append(os.getppid())

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != _WATCHING[0]:
                os._exit(1)

    threading.Thread(target=watch, name="taskgroup-raylet-watch", daemon=True).start()


def _ray_job(job: Job, data_box: list, threads: int, gpu: bool) -> JobResult:
    """The Ray task: fetch the splits (once per worker process) and train the job."""
    import ray


    _exit_with_raylet()

    ref = data_box[0]  # passed inside a list so that Ray does not fetch it again for every task
    key = ref.hex()
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = ray.get(ref)
    try:
        return run_job(job, _DATA[key], device="cuda:0" if gpu else "cpu", threads=threads)
    except Exception as exc:
        portable = portable_exception(exc)
        if portable is exc:
            raise
        raise portable from None  # Ray's error still carries this worker's traceback text
