"""`processes:N`: N worker processes on this machine, each pinned to a device.

Worker `i` trains on `devices[i % len(devices)]` (`--devices cuda:0,cuda:1`, or `cpu`), one
network at a time. Workers are started with `spawn` (a fresh interpreter: forking a process
that already runs torch threads can deadlock) and receive the run's splits once, at start,
through shared memory (torch's multiprocessing reductions), so a job carries only its
description. Each worker sends back epoch events and its JobResult through a pipe.

A worker that dies (kill -9, a crash, out of memory) is noticed through its process sentinel:
its job is handed out again (base.PoolExecutor) and a fresh worker takes its slot. A worker
whose driver is gone stops within a second instead of finishing a network nobody will commit.

Threads: a network trains on `[train] threads` threads as everywhere; `threads = 0` (one per
core) gives each worker its share of the cores (cores // N, at least 1).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Sequence

from taskgroup_runtime.device import parse_device
from taskgroup.errors import TaskgroupError
from taskgroup.train.executors.base import PoolExecutor, WorkerLost, check_local_devices
from taskgroup.train.executors.job import Job, JobResult
from taskgroup.train.executors.job import portable_exception, run_job
from taskgroup.train.executors.base import notify


@dataclass
class _Worker:
    process: Any  # multiprocessing Process
    conn: Any  # the driver's end of the pipe
    job: Job | None = None  # the job it is training


class ProcessesExecutor(PoolExecutor):
    name = "processes"

    def __init__(self, workers: int, devices: Sequence[str] = ("cpu",), shared_storage: bool = False,
                 max_attempts: int | None = None):
        if workers < 1:
            raise TaskgroupError(f"--executor processes:N needs N >= 1, got {workers}")
        self.devices = tuple(str(parse_device(d)) for d in devices)  # `cuda` trains on cuda:0
        self.slot_devices = [self.devices[i % len(self.devices)] for i in range(workers)]
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self.shared_storage = shared_storage
        if max_attempts is not None:
            self.max_attempts = max_attempts
        self._workers: list[_Worker | None] = [None] * workers
        self._data = None
        self._context = None

    def open(self) -> "ProcessesExecutor":
        check_local_devices(self.devices)
        self._context = multiprocessing.get_context("spawn")
        return self

    def close(self) -> None:
        self._stop_all(range(len(self._workers)))

    # -- PoolExecutor -------------------------------------------------------------------

    def _prepare(self, data) -> None:
        if data is not self._data:  # workers hold the splits they were started with
            self.close()
            self._data = data

    def _capacity(self) -> int:
        return len(self._workers)

    def _submit(self, job: Job) -> tuple[Any, str]:
        slot = next(i for i, w in enumerate(self._workers) if w is None or w.job is None)
        worker = self._workers[slot] or self._start(slot)
        try:
            worker.conn.send(job)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            pass  # died just now: its sentinel reports it at the next wait, and the job is handed out again
        worker.job = job
        return slot, f"{self.slot_devices[slot]} (worker {slot + 1}, pid {worker.process.pid})"

    def _wait(self, handles: list[Any], progress) -> list[tuple[Any, Any]]:
        busy = {slot: self._workers[slot] for slot in handles}
        by_object = {}
        for slot, w in busy.items():
            by_object[w.conn] = slot
            by_object[w.process.sentinel] = slot
        ready = multiprocessing.connection.wait(list(by_object), timeout=1.0)
        out = []
        for slot in sorted({by_object[r] for r in ready}):
            w = busy[slot]
            outcome = self._receive(w, progress)
            if outcome is None and not w.process.is_alive():
                code = w.process.exitcode
                why = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
                outcome = WorkerLost(f"worker {slot + 1} (pid {w.process.pid}, {self.slot_devices[slot]}) died ({why})")
                self._stop(slot)
            if outcome is not None:
                if self._workers[slot] is not None:
                    self._workers[slot].job = None
                out.append((slot, outcome))
        return out

    def _cancel(self, handles: list[Any]) -> None:
        self._stop_all(handles)  # a job half-trained is worth nothing: never wait for it

    # -- workers ------------------------------------------------------------------------

    def _start(self, slot: int) -> _Worker:
        ctx = self._context
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker_main, name=f"taskgroup-worker-{slot + 1}", daemon=True,
                              args=(child, self.slot_devices[slot], self.threads, self._data, os.getpid()))
        process.start()
        child.close()
        self._workers[slot] = _Worker(process, parent)
        return self._workers[slot]

    def _stop(self, slot: int) -> None:
        self._stop_all([slot])

    def _stop_all(self, slots) -> None:
        """Stop these workers: idle ones are asked to exit (a few seconds at most), busy ones killed."""
        workers = [w for w in (self._workers[s] for s in slots) if w is not None]
        for s in slots:
            self._workers[s] = None
        for w in workers:
            if w.job is None:
                try:
                    w.conn.send(None)
                except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
                    pass
            else:
                w.process.kill()
        deadline = time.monotonic() + 3.0
        for w in workers:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()

    def _receive(self, w: _Worker, progress) -> Any:
        """Read what the worker sent: forward epoch events; return the job's outcome, if it came."""

        try:
            while w.conn.poll():
                kind, *payload = w.conn.recv()
                if kind == "epoch":
                    notify(progress, "epoch_done", *payload)
                elif kind == "done":
                    return payload[0]
                else:  # "error": the exception training raised, with the worker's traceback
                    exc, text = payload
                    exc.__cause__ = _RemoteTraceback(text)
                    return exc
        except (EOFError, OSError):
            pass  # the pipe closed: the process sentinel says how the worker ended
        return None


class _RemoteTraceback(Exception):
    """Carries a worker's traceback text into the driver's exception chain."""

    def __str__(self) -> str:
        return f"\n\nin the worker process:\n{self.args[0]}"


class _ForwardEpochs:
    """Progress inside a worker: epoch ends go to the driver; steps stay local (too many to send)."""

    def __init__(self, conn):
        self.conn = conn

    def epoch_done(self, name, epoch, epochs, val_total, lr) -> None:
        self.conn.send(("epoch", name, epoch, epochs, val_total, lr))

    def __getattr__(self, name):  # every other Progress event is ignored in a worker
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kw: None


def _worker_main(conn, device: str, threads: int, data, parent_pid: int) -> None:
    """A worker process: train the jobs the driver sends, one at a time, until told to stop."""
    code = 0
    try:
        _serve(conn, device, threads, data, parent_pid)
    except BaseException:  # noqa: BLE001 - e.g. a device that cannot be selected: say why, then exit
        traceback.print_exc()
        code = 1
    finally:
        # Nothing is left to save (results are sent synchronously), and tearing torch down at
        # interpreter exit takes seconds on a loaded machine: leave at once.
        sys.stderr.flush()
        os._exit(code)


def _serve(conn, device: str, threads: int, data, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers

    def watch_parent() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)  # the driver is gone: nobody would commit this network

    threading.Thread(target=watch_parent, daemon=True).start()
    if parse_device(device).kind == "cuda":
        import torch

        torch.cuda.set_device(torch.device(device))
    progress = _ForwardEpochs(conn)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            result: JobResult = run_job(job, data, device=device, threads=threads, progress=progress)
            message = ("done", result)
        except BaseException as exc:  # noqa: BLE001 - every error goes to the driver, which decides
            message = ("error", portable_exception(exc), "".join(traceback.format_exception(exc)))
        try:
            conn.send(message)
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
