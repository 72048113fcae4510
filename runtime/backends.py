"""Backend runners with one small interface (after Polygraphy's runners).

    with OrtRunner(model_bytes, name="net0", providers=["CPUExecutionProvider"]) as r:
        outputs = r.infer({"image": x})          # dict output name -> np.ndarray

`activate()` does the expensive set-up (session or engine creation), `infer()` is
thread-safe, `deactivate()` releases resources. Backends check that they really run where
they were asked to (ONNX Runtime's `get_providers()`), and never fall back silently.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from runtime.errors import BackendUnavailableError

BACKENDS = ("auto", "onnxruntime", "onnxruntime-tensorrt", "tensorrt")


class Runner:
    """Base class: activate / infer / deactivate, usable as a context manager."""

    name: str = "runner"
    is_active: bool = False

    def activate(self) -> None:
        if not self.is_active:
            self._activate()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.is_active:
            raise RuntimeError(f"runner {self.name} is not active; call activate() or use it in a `with` block")
        return self._infer(feed)

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # Subclasses implement these.
    def _activate(self) -> None:
        raise NotImplementedError

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name}

    def io_spec(self) -> tuple[dict[str, tuple[tuple[int | None, ...], str]], dict[str, int | None]]:
        """({input name: (shape with None for dynamic axes, numpy dtype name)}, {output name: channels,
        None if dynamic}) of the loaded model; the bundle checks them against its manifest."""
        raise NotImplementedError


def parse_device(device: str) -> tuple[str, int]:
    """'cpu' -> ('cpu', 0); 'cuda' / 'cuda:1' -> ('cuda', 1)."""
    if device == "cpu":
        return "cpu", 0
    if device == "cuda" or device.startswith("cuda:"):
        idx = device.partition(":")[2] or "0"
        if idx.isdigit():
            return "cuda", int(idx)
    raise BackendUnavailableError(f"unknown device {device!r}; valid options: cpu, cuda, cuda:N")


def ort_providers(backend: str, device: str, fp16: bool = False) -> list:
    """The ONNX Runtime provider list for a backend on a device (primary provider first)."""
    kind, idx = parse_device(device)
    if kind == "cpu":
        if backend not in ("auto", "onnxruntime"):
            raise BackendUnavailableError(f"backend {backend!r} needs a CUDA device, got device={device!r}")
        return ["CPUExecutionProvider"]
    cuda = ("CUDAExecutionProvider", {"device_id": idx})
    if backend == "onnxruntime-tensorrt":
        trt = ("TensorrtExecutionProvider", {"device_id": idx, "trt_fp16_enable": fp16})
        return [trt, cuda, "CPUExecutionProvider"]
    return [cuda, "CPUExecutionProvider"]


def ort_session_options(intra_op_threads: int = 0, allow_spinning: bool = False):
    """Session options shared by the runtime and the profiler, so profiled and deployed sessions agree.

    One intra-op pool (`intra_op_threads`, 0 = one thread per core), sequential execution, all
    graph optimisations. Spinning worker threads keep a core busy after each call, which slows
    the next session on a small CPU (measured 3-7x with several sessions on 2 cores), so it is
    off unless asked for.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if allow_spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    opts.log_severity_level = 3
    return opts


_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(uint8)": "uint8"}  # ONNX Runtime's input type names -> numpy's


class OrtRunner(Runner):
    """An ONNX Runtime session on one model."""

    def __init__(self, model: bytes | str | os.PathLike, *, name: str, providers: Sequence,
                 intra_op_threads: int = 0, allow_spinning: bool = False, allow_fallback: bool = False,
                 external_data: Mapping[str, bytes] | None = None, keep_model_bytes: bool = True):
        self.model = model  # the model bytes (hash-verified) or a path (files too large to hold in memory)
        self.external_data = dict(external_data or {})  # weights file name (as the model refers to it) -> bytes
        # ONNX Runtime copies the model into the session; without a second activation to serve, the
        # bytes need not stay in memory (a bundle's runners drop them: weights can be large).
        self.keep_model_bytes = keep_model_bytes
        self.name = name
        self.providers = list(providers)
        self.intra_op_threads = intra_op_threads  # 0: ONNX Runtime's default (one per core)
        self.allow_spinning = allow_spinning  # busy-wait in worker threads; off avoids oversubscription
        self.allow_fallback = allow_fallback  # accept a session on another provider than the first asked
        self.session = None
        self.active_providers: list[str] = []

    def _activate(self) -> None:
        import onnxruntime as ort

        if self.model is None:
            raise RuntimeError(f"runner {self.name}: its model bytes were released after the first activation; "
                               "create a new runner")
        available = ort.get_available_providers()
        primary = self.providers[0] if isinstance(self.providers[0], str) else self.providers[0][0]
        if primary not in available and not self.allow_fallback:
            raise BackendUnavailableError(
                f"{self.name}: ONNX Runtime provider {primary} is not available in this onnxruntime build; "
                f"available: {', '.join(available)} (install onnxruntime-gpu for CUDA/TensorRT providers)")
        opts = ort_session_options(self.intra_op_threads, self.allow_spinning)
        if self.external_data:  # weights from the verified bytes, not read again from disk
            names = list(self.external_data)
            blobs = [self.external_data[n] for n in names]
            opts.add_external_initializers_from_files_in_memory(names, blobs, [len(b) for b in blobs])
        model = self.model if isinstance(self.model, bytes) else str(self.model)
        session = ort.InferenceSession(model, sess_options=opts, providers=self.providers)
        active = session.get_providers()
        if active[0] != primary and not self.allow_fallback:
            raise BackendUnavailableError(
                f"{self.name}: asked for {primary} but ONNX Runtime runs on {active} (driver, CUDA or cuDNN "
                "missing?); refusing to fall back silently. Pass allow_fallback=True to accept it.")
        self.active_providers = active
        self.session = session
        if not self.keep_model_bytes and isinstance(self.model, bytes):
            self.model, self.external_data = None, {}

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # InferenceSession.run is thread-safe; no runner state changes here.
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, dict(feed))))

    def _deactivate(self) -> None:
        self.session = None

    def io_spec(self) -> tuple[dict[str, tuple[tuple[int | None, ...], str]], dict[str, int | None]]:
        outputs = {o.name: (o.shape[1] if len(o.shape) > 1 and isinstance(o.shape[1], int) else None)
                   for o in self.session.get_outputs()}
        inputs = {i.name: (tuple(d if isinstance(d, int) and d >= 0 else None for d in (i.shape or ())),
                           _ORT_DTYPES.get(i.type, i.type)) for i in self.session.get_inputs()}
        return inputs, outputs

    def describe(self) -> dict:
        return {"name": self.name, "backend": "onnxruntime", "providers": self.active_providers,
                "intra_op_threads": self.intra_op_threads, "allow_spinning": self.allow_spinning}
