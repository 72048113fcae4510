"""Which backend runs a model, whether it can run here, and the runner that runs it.

One availability check per backend (`backend_status`), one choice of backend for a device
(`resolve_backend`, shared by the runtime and the profiler) and one factory from a model
file's bytes to its runner (`make_runner`). Optional libraries are imported lazily.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from runtime.device import DeviceSpec, parse_device
from runtime.errors import BackendUnavailableError
from runtime.ort import OrtRunner, SessionFromOnnx, ort_providers
from runtime.runner import Runner

BACKENDS = ("auto", "onnxruntime", "onnxruntime-tensorrt", "tensorrt")


def backend_status(backend: str, device: DeviceSpec | str = "cpu") -> tuple[bool, str]:
    """(True, version) if `backend` can be used on `device` here, else (False, the reason and the fix).

    For ONNX Runtime's providers this reads the providers compiled into the installed build;
    whether a session really runs on one is checked when it is made (`SessionFromOnnx`).
    """
    device = parse_device(device)
    if backend == "tensorrt":
        from runtime.trt import tensorrt_status

        if device.kind != "cuda":
            return False, "TensorRT runs on a CUDA device only"
        return tensorrt_status()
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return False, f"onnxruntime cannot be imported ({exc}); pip install onnxruntime"
    wanted = {"onnxruntime": "CUDAExecutionProvider" if device.kind == "cuda" else "CPUExecutionProvider",
              "onnxruntime-tensorrt": "TensorrtExecutionProvider"}.get(backend)
    if wanted is None:
        return False, f"unknown backend {backend!r}; valid options: {', '.join(BACKENDS[1:])}"
    if backend == "onnxruntime-tensorrt" and device.kind != "cuda":
        return False, "ONNX Runtime's TensorRT provider runs on a CUDA device only"
    if wanted not in ort.get_available_providers():
        return False, (f"this onnxruntime build has no {wanted} (it has {', '.join(ort.get_available_providers())}); "
                       "uninstall onnxruntime, then install onnxruntime-gpu (they share a folder)")
    return True, ort.__version__


def resolve_backend(name: str, device: DeviceSpec | str, has_engines: bool = True,
                    choices: Sequence[str] = BACKENDS) -> tuple[str, str]:
    """(backend, why) after applying 'auto'; raises BackendUnavailableError when an explicit choice cannot work.

    auto: ONNX Runtime on the CPU; on CUDA native TensorRT when engines exist (a bundle's, or the
    profiler's own builds) and TensorRT imports, else ONNX Runtime's TensorRT provider if this
    build has it, else its CUDA provider.
    """
    if name not in choices:
        raise BackendUnavailableError(f"unknown backend {name!r}; valid options: {', '.join(choices)}")
    device = parse_device(device)
    if name in ("tensorrt", "onnxruntime-tensorrt") and device.kind != "cuda":
        raise BackendUnavailableError(f"backend {name!r} needs a CUDA device (device='cuda' or 'cuda:N'); "
                                      "on the CPU use onnxruntime")
    if name == "tensorrt":
        if not has_engines:
            raise BackendUnavailableError("backend 'tensorrt': the bundle has no TensorRT engines "
                                          "(export with --format tensorrt on a machine with TensorRT)")
        ok, why = backend_status("tensorrt", device)
        if not ok:
            raise BackendUnavailableError(f"backend 'tensorrt': {why}")
        return name, "asked for"
    if name != "auto":
        return name, "asked for"
    if device.kind == "cpu":
        return "onnxruntime", "auto: CPU device -> ONNX Runtime CPU"
    ok, why = backend_status("tensorrt", device)
    if has_engines and ok:
        return "tensorrt", "auto: TensorRT engines and tensorrt importable"
    reason = "no engines in the bundle" if not has_engines else why
    if backend_status("onnxruntime-tensorrt", device)[0]:
        return "onnxruntime-tensorrt", f"auto: native TensorRT not used ({reason}); ORT TensorRT provider"
    return "onnxruntime", f"auto: native TensorRT not used ({reason}); ORT CUDA provider"


def make_runner(backend: str, model: bytes | str | os.PathLike, *, device: DeviceSpec | str, name: str,
                threads: int = 0, allow_fallback: bool = False, external_data: Mapping[str, bytes] | None = None,
                fp16: bool = False, release_after_load: bool = False) -> Runner:
    """The runner of a model file for a resolved backend: a serialized engine for 'tensorrt', an ONNX
    model (bytes or path, with its external weights) for ONNX Runtime's backends."""
    device = parse_device(device)
    if backend == "tensorrt":
        from runtime.trt import EngineFromBytes, TrtRunner

        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        return TrtRunner(EngineFromBytes(data, name=name, release_after_load=release_after_load), name=name,
                         device_index=device.index or 0)
    loader = SessionFromOnnx(model, providers=ort_providers(backend, device, fp16), intra_op_threads=threads,
                             allow_spinning=False, allow_fallback=allow_fallback, external_data=external_data,
                             release_after_load=release_after_load, name=name)
    return OrtRunner(loader, name=name)
