"""Inference backends the profiler times: PyTorch, ONNX Runtime, TensorRT.

Each backend turns a piece of network (a torch module, or an ONNX graph for the others)
and its inputs into a zero-argument callable that runs one inference and returns only
when the result is ready (CUDA work synchronised), plus a way to read outputs back for
numerical checks. Optional libraries are imported lazily.

A timing is labelled with what really ran: ONNX Runtime sessions are checked with
`session.get_providers()` (onnxruntime-gpu lists CUDA providers even without a GPU and
silently falls back to the CPU), and a requested GPU provider that is not used is an error
unless the caller allows fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.profile.device import DeviceSpec

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(name: str, device: DeviceSpec) -> str:
    """Pick the backend for `auto` (ONNX Runtime on CPU, TensorRT on CUDA if importable)."""
    if name not in BACKENDS:
        raise TaskgroupError(f"unknown backend '{name}'; valid backends: {', '.join(BACKENDS)}")
    if name == "auto":
        return "tensorrt" if device.kind == "cuda" and tensorrt_available() else "onnxruntime"
    if name == "tensorrt" and device.kind != "cuda":
        raise TaskgroupError("the tensorrt backend needs a CUDA device (--device cuda:N); valid backends on the "
                             "CPU: torch, onnxruntime")
    return name


@dataclass
class Runner:
    run: Callable[[], Any]  # one synchronised inference
    outputs: Callable[[], list[np.ndarray]]  # run once and return outputs as numpy arrays


# ----- PyTorch ---------------------------------------------------------------------------
@dataclass
class TorchBackend:
    device: DeviceSpec
    threads: int  # torch.set_num_threads on the CPU
    name: str = "torch"

    def __post_init__(self) -> None:
        import torch

        if self.device.kind == "cpu":
            torch.set_num_threads(self.threads)
        self.execution_provider = "torch-cuda" if self.device.kind == "cuda" else "torch-cpu"

    def settings(self) -> dict[str, Any]:
        import torch

        return {"torch_num_threads": torch.get_num_threads(), "mode": "eval, torch.inference_mode"}

    def runner(self, module, *inputs) -> Runner:
        import torch

        dev = torch.device(str(self.device))
        module = module.to(dev).eval()
        args = tuple(torch.as_tensor(x).to(dev) for x in inputs)
        sync = torch.cuda.synchronize if self.device.kind == "cuda" else (lambda: None)

        def run():
            with torch.inference_mode():
                out = module(*args)
            sync()
            return out

        def outputs():
            out = run()
            values = out.values() if isinstance(out, dict) else (out if isinstance(out, (tuple, list)) else [out])
            return [v.detach().cpu().numpy() for v in values]

        return Runner(run, outputs)


# ----- ONNX Runtime ----------------------------------------------------------------------
@dataclass
class OnnxRuntimeBackend:
    device: DeviceSpec
    threads: int  # intra_op_num_threads of every session (recorded; the runtime should match it)
    allow_fallback: bool = False  # accept a CPU fallback of a requested GPU provider (recorded)
    name: str = "onnxruntime"
    execution_provider: str | None = field(default=None, init=False)  # what sessions really use

    def _providers(self) -> list:
        if self.device.kind == "cuda":
            return [("CUDAExecutionProvider", {"device_id": self.device.index}), "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def session_options(self):
        # The deployment runtime's own settings (spinning off), so profiled costs hold when deployed.
        from runtime.backends import ort_session_options

        return ort_session_options(self.threads, allow_spinning=False)

    def settings(self) -> dict[str, Any]:
        return {"intra_op_num_threads": self.threads, "inter_op_num_threads": 1, "allow_spinning": False,
                "execution_mode": "sequential", "graph_optimization_level": "all"}

    def session(self, onnx_bytes: bytes):
        import onnxruntime as ort

        wanted = "CUDAExecutionProvider" if self.device.kind == "cuda" else "CPUExecutionProvider"
        if wanted not in ort.get_available_providers() and not self.allow_fallback:
            raise TaskgroupError(f"ONNX Runtime has no {wanted} in this installation (available: "
                                 f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu matching "
                                 "your CUDA, or pass --allow-fallback to profile what really runs (recorded)")
        sess = ort.InferenceSession(onnx_bytes, self.session_options(), providers=self._providers())
        used = sess.get_providers()[0]
        if used != wanted and not self.allow_fallback:
            raise TaskgroupError(f"ONNX Runtime fell back from {wanted} to {used} (providers in use: "
                                 f"{sess.get_providers()}); refusing to label {used} timings as {self.device}. "
                                 "Pass --allow-fallback to profile what really runs (it is recorded)")
        if self.execution_provider not in (None, used):
            raise TaskgroupError(f"ONNX Runtime sessions disagree on the provider ({self.execution_provider} vs "
                                 f"{used}); refusing to mix them in one profile")
        self.execution_provider = used
        return sess

    def runner(self, onnx_bytes: bytes, feeds: dict[str, np.ndarray]) -> Runner:
        sess = self.session(onnx_bytes)
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()}
        return Runner(lambda: sess.run(None, feeds), lambda: list(sess.run(None, feeds)))


# ----- TensorRT --------------------------------------------------------------------------
@dataclass
class TensorRTBackend:
    """TensorRT 10+ engines built from the same ONNX graphs (never run on the build machine)."""

    device: DeviceSpec
    name: str = "tensorrt"
    execution_provider: str = "TensorRT"

    def __post_init__(self) -> None:
        try:
            import tensorrt  # noqa: F401
        except ImportError as exc:
            raise TaskgroupError(
                f"the tensorrt backend needs the TensorRT Python package (10 or newer) and a CUDA GPU, but "
                f"'import tensorrt' failed ({exc}); install it from NVIDIA's index, or use --backend onnxruntime"
            ) from exc

    def settings(self) -> dict[str, Any]:
        import tensorrt as trt

        return {"tensorrt": trt.__version__, "precision": "fp32 (as exported)", "timing": "cuda stream synchronize"}

    def runner(self, onnx_bytes: bytes, feeds: dict[str, np.ndarray]) -> Runner:
        import tensorrt as trt
        import torch

        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10+
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise TaskgroupError(f"TensorRT could not parse the exported ONNX graph: {errors}")
        config = builder.create_builder_config()
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise TaskgroupError("TensorRT failed to build an engine (see its log above)")
        engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
        context = engine.create_execution_context()
        dev = torch.device(str(self.device))
        dtypes = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32}
        buffers: dict[str, Any] = {}
        outputs: list[str] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                buffers[name] = torch.as_tensor(feeds[name]).to(dev).contiguous()
                context.set_input_shape(name, tuple(buffers[name].shape))
            else:
                outputs.append(name)
        for name in outputs:
            shape = tuple(context.get_tensor_shape(name))
            buffers[name] = torch.empty(shape, dtype=dtypes[engine.get_tensor_dtype(name)], device=dev)
        for name, buf in buffers.items():
            context.set_tensor_address(name, buf.data_ptr())
        stream = torch.cuda.Stream(device=dev)

        def run():
            context.execute_async_v3(stream.cuda_stream)
            stream.synchronize()

        def read():
            run()
            return [buffers[n].float().cpu().numpy() for n in outputs]

        return Runner(run, read)


def make_backend(name: str, device: DeviceSpec, threads: int, allow_fallback: bool):
    if name == "torch":
        return TorchBackend(device, threads)
    if name == "onnxruntime":
        return OnnxRuntimeBackend(device, threads, allow_fallback)
    if name == "tensorrt":
        return TensorRTBackend(device)
    raise TaskgroupError(f"unknown backend '{name}'; valid backends: {', '.join(BACKENDS[1:])}")
