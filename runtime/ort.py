"""ONNX Runtime: the session loader and the runner.

    runner = OrtRunner(SessionFromOnnx(model_bytes, providers=ort_providers("onnxruntime", device)), name="net0")

A session runs where it was asked to or not at all: the loader checks that the first
provider asked for is in this onnxruntime build and that the session really uses it
(`session.get_providers()`; onnxruntime-gpu lists the CUDA provider even without a GPU and
then silently runs on the CPU). `allow_fallback=True` accepts a fallback, which the runner
then reports (`active_providers`), so a CPU timing is never labelled as a GPU one.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from taskgroup_runtime.device import DeviceSpec, parse_device
from taskgroup_runtime.errors import BackendUnavailableError
from taskgroup_runtime.runner import Runner, TensorMeta

# ONNX Runtime's tensor type names -> numpy's.
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32", "tensor(int64)": "int64",
               "tensor(bool)": "bool"}


def ort_providers(backend: str, device: DeviceSpec | str, fp16: bool = False) -> list:
    """The ONNX Runtime provider list for a backend on a device (the provider asked for first)."""
    device = parse_device(device)
    if device.kind == "cpu":
        if backend not in ("auto", "onnxruntime"):
            raise BackendUnavailableError(f"backend {backend!r} needs a CUDA device, got device='cpu'")
        return ["CPUExecutionProvider"]
    cuda = ("CUDAExecutionProvider", {"device_id": device.index})
    if backend == "onnxruntime-tensorrt":
        trt = ("TensorrtExecutionProvider", {"device_id": device.index, "trt_fp16_enable": fp16})
        return [trt, cuda, "CPUExecutionProvider"]
    return [cuda, "CPUExecutionProvider"]


def ort_session_options(intra_op_threads: int = 0, allow_spinning: bool = False):
    """The session options of every session the toolkit makes, so profiled and deployed sessions agree.

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


def _provider_name(p) -> str:
    return p if isinstance(p, str) else p[0]


class SessionFromOnnx:
    """Loader: an ONNX Runtime session on a model, on the provider asked for (or an error)."""

    def __init__(self, model: bytes | str | os.PathLike, *, providers: Sequence = ("CPUExecutionProvider",),
                 intra_op_threads: int = 0, allow_spinning: bool = False, allow_fallback: bool = False,
                 external_data: Mapping[str, bytes] | None = None, release_after_load: bool = False,
                 name: str = "model"):
        self.model = model  # the model bytes (hash-verified) or a path (files too large to hold in memory)
        self.external_data = dict(external_data or {})  # weights file name (as the model refers to it) -> bytes
        self.providers = list(providers)
        self.intra_op_threads = intra_op_threads  # 0: ONNX Runtime's default (one per core)
        self.allow_spinning = allow_spinning  # busy-wait in worker threads; off avoids oversubscription
        self.allow_fallback = allow_fallback  # accept a session on another provider than the first asked
        # ONNX Runtime copies the model into the session; without a second session to make, the bytes
        # need not stay in memory (a bundle's loaders drop them: weights can be large).
        self.release_after_load = release_after_load
        self.name = name

    def settings(self) -> dict[str, Any]:
        """What a profile records and a manifest hands on, so a bundle's sessions are made alike."""
        return {"intra_op_num_threads": self.intra_op_threads, "inter_op_num_threads": 1,
                "allow_spinning": self.allow_spinning, "execution_mode": "sequential",
                "graph_optimization_level": "all"}

    def __call__(self):
        import onnxruntime as ort

        if self.model is None:
            raise RuntimeError(f"{self.name}: the model bytes were released after the first session was made; "
                               "create a new loader")
        available = ort.get_available_providers()
        primary = _provider_name(self.providers[0])
        if primary not in available and not self.allow_fallback:
            raise BackendUnavailableError(
                f"{self.name}: ONNX Runtime provider {primary} is not available in this onnxruntime build; "
                f"available: {', '.join(available)} (install onnxruntime-gpu for CUDA/TensorRT providers)")
        providers = [p for p in self.providers if _provider_name(p) in available] or ["CPUExecutionProvider"]
        opts = ort_session_options(self.intra_op_threads, self.allow_spinning)
        if self.external_data:  # weights from the verified bytes, not read again from disk
            names = list(self.external_data)
            blobs = [self.external_data[n] for n in names]
            opts.add_external_initializers_from_files_in_memory(names, blobs, [len(b) for b in blobs])
        model = self.model if isinstance(self.model, bytes) else str(self.model)
        session = ort.InferenceSession(model, sess_options=opts, providers=providers)
        active = session.get_providers()
        if active[0] != primary and not self.allow_fallback:
            raise BackendUnavailableError(
                f"{self.name}: asked for {primary} but ONNX Runtime runs on {active} (driver, CUDA or cuDNN "
                "missing?); refusing to fall back silently. Pass allow_fallback=True to accept it.")
        if self.release_after_load and isinstance(self.model, bytes):
            self.model, self.external_data = None, {}
        return session


class OrtRunner(Runner):
    """An ONNX Runtime session on one model."""

    def __init__(self, session: SessionFromOnnx, *, name: str | None = None):
        self.loader = session  # a SessionFromOnnx (or any callable returning an InferenceSession)
        self.name = name or getattr(session, "name", "onnxruntime")
        self.session = None
        self.active_providers: list[str] = []

    @property
    def intra_op_threads(self) -> int | None:
        return getattr(self.loader, "intra_op_threads", None)

    def activate_impl(self) -> None:
        self.session = self.loader()
        self.active_providers = self.session.get_providers()
        self._output_names = [o.name for o in self.session.get_outputs()]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # InferenceSession.run is thread-safe; no runner state changes here.
        return dict(zip(self._output_names, self.session.run(self._output_names, dict(feed))))

    def deactivate_impl(self) -> None:
        self.session = None

    def input_metadata_impl(self) -> dict[str, TensorMeta]:
        return {i.name: _meta(i) for i in self.session.get_inputs()}

    def output_metadata_impl(self) -> dict[str, TensorMeta]:
        return {o.name: _meta(o) for o in self.session.get_outputs()}

    def describe(self) -> dict[str, Any]:
        settings = self.loader.settings() if hasattr(self.loader, "settings") else {}
        return {"name": self.name, "backend": "onnxruntime", "providers": self.active_providers,
                "intra_op_threads": settings.get("intra_op_num_threads"),
                "allow_spinning": settings.get("allow_spinning")}


def _meta(node) -> TensorMeta:
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (node.shape or ()))
    return shape, _ORT_DTYPES.get(node.type, node.type)
