"""Load a deployment bundle and run all of its networks on each frame.

    bundle = load_bundle("deploy/", device="cpu")
    outputs = bundle.run(frame)            # {task: (N, C, H, W) float32}

Loading verifies every file's sha256 against the manifest and refuses paths leaving the
bundle, picks the backend, warms the networks up, and (with several networks) measures
whether running them one after another or concurrently is faster on this machine, keeping
the faster (`bundle.execution`, with the timings in `bundle.load_report`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from taskgroup_runtime.backends import BACKENDS, make_runner, resolve_backend
from taskgroup_runtime.device import parse_device
from taskgroup_runtime.errors import BackendUnavailableError, BundleError
from taskgroup_runtime.fields import MAX_THREADS
from taskgroup_runtime.integrity import safe_member
from taskgroup_runtime.load_checks import activate, check_io, probe
from taskgroup_runtime.manifest import Manifest, read_manifest, verify_files
from taskgroup_runtime.measurement import FrameLatency, LatencySummary, Measurement, NetworkLatency
from taskgroup_runtime.preprocess import to_network_input
from taskgroup_runtime.runner import Runner
from taskgroup_runtime.timing import TimingConfig, measure

EXECUTION_MODES = ("auto", "sequential", "concurrent")


CONCURRENT_MARGIN = 0.9  # execution="auto" picks concurrent only when its median is below this x sequential's


def cpu_cores() -> int:
    """Cores this process may use (affinity-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class Bundle:
    """The loaded networks of a bundle; `run` is safe to call from several threads at once."""

    def __init__(self, manifest: Manifest, runners: list[Runner], execution: str, backend: str, device: str,
                 load_report: dict[str, Any], threads: int | None = None):
        self.manifest = manifest
        self.input = manifest.input
        self.tasks: tuple[str, ...] = tuple(manifest.tasks)
        self.backend = backend
        self.device = device
        self.execution = execution  # "sequential" or "concurrent", chosen at load
        self.load_report = load_report  # how the backend and execution mode were chosen (timings)
        self._runners = runners
        self.threads = threads or cpu_cores()  # intra-op threads of a session running alone
        self._pool = ThreadPoolExecutor(max_workers=len(runners) - 1) if execution == "concurrent" else None
        self._closed = False
        self._in_flight = 0  # run() calls in progress; close() waits for them before releasing the sessions
        self._state = threading.Condition()

    # -- inference -------------------------------------------------------------------------
    def _feed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {self.input.name: x}

    def _run_networks(self, x: np.ndarray) -> list[dict[str, np.ndarray]]:
        with self._state:
            if self._closed:
                raise RuntimeError("bundle is closed")
            self._in_flight += 1
        try:
            feed = self._feed(x)  # validated against the manifest, which was checked against every model at load
            if self._pool is None:
                return [r.infer(feed, False) for r in self._runners]
            futures = [self._pool.submit(r.infer, feed, False) for r in self._runners[1:]]
            first = self._runners[0].infer(feed, False)  # the calling thread runs one network itself
            return [first] + [f.result() for f in futures]
        finally:
            with self._state:
                self._in_flight -= 1
                self._state.notify_all()

    def run(self, frame: np.ndarray, color_order: str = "RGB") -> dict[str, np.ndarray]:
        """All tasks on a frame or batch (see manifest FRAME_FORMS); each output is (N, C, H, W) at the
        bundle's size. `color_order`: "RGB" or "BGR" (OpenCV's). A uint8 frame of another size is resized
        as the training images were (manifest input.resize)."""
        x = to_network_input(frame, self.input, color_order)
        results = self._run_networks(x)
        return {t: results[o.network][o.output] for t, o in self.manifest.tasks.items()}

    def example_frame(self, batch: int = 1, seed: int = 0) -> np.ndarray:
        """A deterministic uint8 HWC test frame of the bundle's size (warm-up, benchmarks)."""
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, size=(batch, self.input.height, self.input.width, 3), dtype=np.uint8)

    # -- measurement -----------------------------------------------------------------------
    def benchmark(self, frame: np.ndarray | None = None, runs: int = 200, warmup: int = 10) -> FrameLatency:
        """Latency of `run` (pre-processing included): p50/p90/p99 in ms over `runs` calls, and how it ran."""
        frame = self.example_frame() if frame is None else frame
        timing = measure({"bundle": lambda: self.run(frame)},
                         TimingConfig(warmup_runs=warmup, min_runs=runs, min_seconds=0.0, rounds=1, max_runs=runs))
        labels = self._labels(frame)
        return FrameLatency(LatencySummary.of(timing["bundle"]), labels["execution"], labels["backend"],
                            labels["device"], labels["batch"])

    def standalone_runners(self) -> list[Runner]:
        """Fresh runners, one per network, each configured as a lone session (the load's thread count).

        The bundle's own overhead is measured against these: running the networks of a
        bundle should cost no more than running each on its own. Thread spinning stays off:
        a spinning session keeps its threads busy after returning and slows whatever runs
        next (measured: 5x on 2 cores), which would make every comparison meaningless.
        """
        # The model bytes are not kept after loading (they can be large); read and verify them again.
        blobs = verify_files(self.manifest, keep=_needed_files(self.manifest, self.backend))
        return _make_runners(self.manifest, blobs, self.backend, self.device, self.threads, allow_fallback=False)

    def benchmark_networks(self, runs: int = 100, warmup: int = 10) -> list[dict[str, Any]]:
        """Each network alone in a standalone runner: p50/p90/p99 per network (timed interleaved)."""
        return self.measure(timing=TimingConfig(warmup_runs=warmup, min_runs=runs, min_seconds=0.0)).to_json()["standalone"]

    def measure(self, runs: int = 300, timing: TimingConfig | None = None) -> Measurement:
        """The whole bundle per frame next to each network alone in its own session, timed together.

        All of them run in the same interleaved rounds (`taskgroup_runtime.timing.measure`, the profiler's
        own timing), so load from other processes affects them alike: at least `runs` timed
        frames each and the profiler's default timed seconds, unless `timing` says otherwise.
        """
        timing = timing or TimingConfig(warmup_runs=20, min_runs=runs)
        frame = self.example_frame()
        feed = self._feed(to_network_input(frame, self.input))
        alone = self.standalone_runners()
        try:
            for r in alone:
                r.activate()
            calls = {"bundle": lambda: self.run(frame)}
            calls.update({f"network:{r.name}": (lambda r=r: r.infer(feed, False)) for r in alone})
            timed = measure(calls, timing)
        finally:
            for r in alone:
                r.deactivate()
        labels = self._labels(frame)
        return Measurement(LatencySummary.of(timed["bundle"]), labels["execution"], labels["backend"], labels["device"],
                           labels["batch"], tuple(NetworkLatency(net.name, tuple(net.tasks),
                                                                 LatencySummary.of(timed[f"network:{net.name}"]))
                                                  for net in self.manifest.networks), timing)

    def _labels(self, frame: np.ndarray) -> dict[str, Any]:
        return {"execution": self.execution, "backend": self.backend, "device": self.device,
                "batch": int(to_network_input(frame, self.input).shape[0])}

    def describe(self) -> dict[str, Any]:
        return {"bundle": str(self.manifest.path.parent), "backend": self.backend, "device": self.device,
                "execution": self.execution, "tasks": list(self.tasks),
                "runners": [r.describe() for r in self._runners], "load_report": self.load_report}

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Refuse new calls, wait for the calls in progress, then release the sessions."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            self._state.wait_for(lambda: self._in_flight == 0)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for r in self._runners:
            r.deactivate()

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _make_runners(manifest: Manifest, blobs: dict[str, bytes], backend: str, device: str, threads: int,
                  allow_fallback: bool) -> list[Runner]:
    """One runner per network, built from the verified bytes (external weights included). Files above
    the in-memory limit were hashed as a stream and load from their path (read a second time)."""
    runners: list[Runner] = []
    for net in manifest.networks:
        if backend == "tensorrt":
            model, external = _engine_bytes(manifest, blobs, net), None
        else:
            in_memory = net.onnx in blobs and (net.onnx_data is None or net.onnx_data in blobs)
            model = blobs[net.onnx] if in_memory else safe_member(manifest.path.parent, net.onnx, "onnx", manifest.path)
            external = {net.onnx_data: blobs[net.onnx_data]} if in_memory and net.onnx_data else None
        runners.append(make_runner(backend, model, device=device, name=net.name, threads=threads,
                                   allow_fallback=allow_fallback, external_data=external,
                                   fp16=manifest.precision == "fp16", release_after_load=True))
    return runners


def _needed_files(manifest: Manifest, backend: str) -> set[str]:
    """The files a backend loads: engines for native TensorRT, ONNX models (and weights) otherwise."""
    if backend == "tensorrt":
        return {n.engine for n in manifest.networks if n.engine}
    return {f for n in manifest.networks for f in (n.onnx, n.onnx_data) if f}


def _engine_bytes(manifest: Manifest, blobs: dict[str, bytes], net) -> bytes:
    """A network's engine: the verified bytes, or (above the in-memory limit) re-read from its path."""
    return blobs.get(net.engine) or safe_member(manifest.path.parent, net.engine, "engine", manifest.path).read_bytes()


def _time_modes(sets: dict[str, list[Runner]], x: np.ndarray, name: str, rounds: int) -> dict[str, float]:
    """Median seconds per full pass for each execution mode, one pass of each per round."""
    pools = {m: ThreadPoolExecutor(max_workers=len(rs) - 1) for m, rs in sets.items() if m == "concurrent"}
    feed = {name: x}

    def one(mode: str) -> None:
        rs = sets[mode]
        if mode == "concurrent":
            futures = [pools[mode].submit(r.infer, feed, False) for r in rs[1:]]
            rs[0].infer(feed, False)
            for f in futures:
                f.result()
        else:
            for r in rs:
                r.infer(feed, False)

    try:
        timed = measure({m: (lambda m=m: one(m)) for m in sets},
                        TimingConfig(warmup_runs=3, min_runs=rounds, min_seconds=0.0, rounds=rounds, max_runs=rounds))
    finally:
        for p in pools.values():
            p.shutdown(wait=True)
    return {m: t.p50_ms / 1e3 for m, t in timed.items()}


def load_bundle(path: str | os.PathLike, backend: str = "auto", device: str = "cpu", *, execution: str = "auto",
                threads: int | None = None, allow_fallback: bool = False, warmup: int = 3,
                measure_rounds: int = 15, expected_digest: str | None = None) -> Bundle:
    """Verify and load a bundle directory.

    backend: auto | onnxruntime | onnxruntime-tensorrt | tensorrt (native engines).
    device: cpu | cuda | cuda:N.
    execution: auto (measure at load) | sequential | concurrent.
    threads: ONNX Runtime intra-op threads per session in sequential mode. Default: the thread
        count the grouping's latency profile was measured with (recorded in the manifest), so the
        bundle runs as it was costed; all cores if none is recorded. Concurrent mode splits
        `threads` (at least one each) between the sessions so they do not oversubscribe.
    allow_fallback: accept a session that ONNX Runtime placed on another provider than asked.
    expected_digest: the manifest's `content_sha256` this deployment was validated with. The
        manifest seals itself (which catches damage, not a deliberate edit that re-seals it);
        pinning the digest in the robot's own configuration makes any other bundle fail to load.
    """
    if execution not in EXECUTION_MODES:
        raise ValueError(f"unknown execution mode {execution!r}; valid options: {', '.join(EXECUTION_MODES)}")
    for name, value, least, most in (("threads", threads, 1, MAX_THREADS), ("warmup", warmup, 0, None),
                                     ("measure_rounds", measure_rounds, 1, None)):
        if value is None and name == "threads":
            continue
        if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least
                or (most is not None and value > most)):
            raise ValueError(f"{name} must be an integer >= {least}" + (f" and <= {most}" if most else "")
                             + f"{' or None' if name == 'threads' else ''}, got {value!r}")
    _check_arguments(backend, device, expected_digest)
    threads = int(threads) if threads is not None else None
    manifest = read_manifest(path)
    if expected_digest is not None and manifest.content_sha256 != expected_digest:
        raise BundleError(f"{manifest.path}: content_sha256 {str(manifest.content_sha256)[:16]}... is not "
                          f"the expected {expected_digest[:16]}...; this is not the bundle the deployment pinned")
    backend, why = resolve_backend(backend, device, has_engines=all(n.engine for n in manifest.networks))
    # Every file is verified; only the ones this backend loads are kept in memory, until the sessions exist.
    blobs = verify_files(manifest, keep=_needed_files(manifest, backend))
    kind = parse_device(device).kind
    if threads is None and manifest.profiled_threads is not None:
        threads = manifest.profiled_threads
        threads_source = "as profiled (manifest)"
    else:
        threads_source = "asked for" if threads is not None else "all cores (no profiled setting recorded)"
    cores = threads or cpu_cores()
    n = len(manifest.networks)
    report: dict[str, Any] = {"backend_choice": why, "cores": cpu_cores(), "networks": n,
                              "threads": cores, "threads_source": threads_source}

    # Thread budget per execution mode (CPU only): sequential gives each session every core;
    # concurrent splits the cores so that sessions running at once do not oversubscribe.
    modes = ["sequential"] if n == 1 else (["sequential", "concurrent"] if execution == "auto" else [execution])
    if n > 1 and execution != "auto":
        report["execution_choice"] = "asked for"
    elif n == 1:
        report["execution_choice"] = "one network"
    sets: dict[str, list[Runner]] = {}
    try:
        for m in modes:
            per = cores if m == "sequential" or kind != "cpu" else max(1, cores // n)
            if kind != "cpu" and sets:  # GPU: thread counts do not matter, both modes share runners
                sets[m] = next(iter(sets.values()))
                continue
            sets[m] = _make_runners(manifest, blobs, backend, device, per, allow_fallback)
            activate(manifest, sets[m], backend)
            check_io(manifest, sets[m], backend)
        x = to_network_input(np.full((1, manifest.input.height, manifest.input.width, 3), 128, np.uint8),
                             manifest.input)
        for rs in {id(v): v for v in sets.values()}.values():
            probe(manifest, rs, x, backend)
            for _ in range(warmup):
                for r in rs:
                    r.infer({manifest.input.name: x}, False)
        if len(modes) > 1:
            medians = _time_modes(sets, x, manifest.input.name, measure_rounds)
            # Sequential is how the grouping was costed; concurrent must be clearly faster to replace it
            # (a short measurement at load is noisy).
            chosen = "concurrent" if medians["concurrent"] < CONCURRENT_MARGIN * medians["sequential"] else "sequential"
            report["execution_choice"] = "measured at load (median ms per frame: " + ", ".join(
                f"{m} {v * 1e3:.3f}" for m, v in medians.items()) + ")"
            report["execution_medians_ms"] = {m: v * 1e3 for m, v in medians.items()}
        else:
            chosen = modes[0]
        keep = sets[chosen]
        for m, rs in sets.items():
            if rs is not keep:
                for r in rs:
                    r.deactivate()
    except BaseException:
        for rs in sets.values():
            for r in rs:
                r.deactivate()
        raise
    report["threads_per_session"] = [getattr(r, "intra_op_threads", None) for r in keep]
    effective = _effective_device(device, keep, report)
    if effective != device and backend != "tensorrt":
        backend = "onnxruntime"  # fell back to the CPU: later sessions (standalone timing) are plain CPU ones
    return Bundle(manifest, keep, chosen, backend, effective, report, threads)


def _check_arguments(backend: object, device: object, expected_digest: object) -> None:
    """A malformed argument is the caller's mistake (ValueError), not a backend missing here
    (BackendUnavailableError): checked before any file is read."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid options: {', '.join(BACKENDS)}")
    try:
        parse_device(device)
    except BackendUnavailableError as exc:
        raise ValueError(str(exc)) from None
    if expected_digest is not None and not (isinstance(expected_digest, str) and len(expected_digest) == 64
                                            and all(c in "0123456789abcdef" for c in expected_digest)):
        raise ValueError(f"expected_digest must be the manifest's content_sha256 (64 lower-case hex digits) or None, "
                         f"got {expected_digest!r}")


def _effective_device(device: str, runners: list[Runner], report: dict[str, Any]) -> str:
    """The device the sessions really run on: a GPU request that fell back (allowed) is the CPU.

    Timings and descriptions use this, so a CPU timing is never labelled as a GPU one.
    """
    if parse_device(device).kind == "cpu":
        return device
    active = [list(getattr(r, "active_providers", None) or []) for r in runners]
    if any(a and a[0] == "CPUExecutionProvider" for a in active):
        report["fallback"] = f"asked for {device}; ONNX Runtime runs on {active}"
        return "cpu"
    return device
