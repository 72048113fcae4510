"""Which backend runs a model, whether it can run here, and the runner that runs it.

One availability check per backend (`backend_status`), one choice of backend for a device
(`resolve_backend`, shared by the runtime and the profiler) and one factory from a model
file's bytes to its runner (`make_runner`). Optional libraries are imported lazily.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Mapping, Sequence

from taskgroup_runtime.device import DeviceSpec, parse_device
from taskgroup_runtime.errors import BackendUnavailableError
from taskgroup_runtime.ort import OrtRunner, SessionFromOnnx, ort_providers
from taskgroup_runtime.runner import Runner
from taskgroup_runtime.trt import tensorrt_status
from taskgroup_runtime.trt import EngineFromBytes, TrtRunner

BACKENDS = ("auto", "onnxruntime", "onnxruntime-tensorrt", "tensorrt")

# The smallest model that makes a provider compute: y = x * x on float32 (1, 8), opset 13. These are the
# bytes onnx.helper writes for it (tests/runtime/test_runners.py rebuilds them); the runtime needs no onnx.
PROBE_MODEL = (b'\x08\x07\x12\ttaskgroup:A\n\x0e\n\x01x\n\x01x\x12\x01y"\x03Mul\x12\x05probeZ\x13\n\x01x\x12\x0e\n\x0c'
               b'\x08\x01\x12\x08\n\x02\x08\x01\n\x02\x08\x08b\x13\n\x01y\x12\x0e\n\x0c\x08\x01\x12\x08\n\x02\x08\x01\n\x02'
               b'\x08\x08B\x04\n\x00\x10\r')
_FIX_GPU_BUILD = "pip uninstall -y onnxruntime && pip install onnxruntime-gpu (they share a folder: never both)"


@functools.lru_cache(maxsize=None)
def provider_runs(provider: str, device: DeviceSpec) -> tuple[bool, str]:
    """(True, what ran) if ONNX Runtime's `provider` really runs a tiny model on `device`, else (False, why and the fix).

    The providers a build lists are not the ones that work: onnxruntime-gpu lists CUDA and TensorRT
    without a GPU, driver or cuDNN and then runs on the CPU. Checked once per process.
    """
    import numpy as np

    try:
        import onnxruntime as ort
    except ImportError as exc:
        return False, f"onnxruntime cannot be imported ({exc}); pip install onnxruntime"
    listed = ort.get_available_providers()
    if provider not in listed:
        return False, f"not in this onnxruntime build (it has {', '.join(listed)}); {_FIX_GPU_BUILD}"
    options = {"device_id": device.index} if device.kind == "cuda" and provider != "CPUExecutionProvider" else None
    loader = SessionFromOnnx(PROBE_MODEL, providers=[(provider, options) if options else provider],
                             intra_op_threads=1, name=f"{provider} probe")
    x = np.arange(8, dtype=np.float32).reshape(1, 8)
    try:
        with OrtRunner(loader) as runner:
            y = runner.infer({"x": x})["y"]
    except BackendUnavailableError as exc:  # listed, but the session fell back to another provider
        return False, f"listed, but {str(exc).split(': ', 1)[-1]}"
    except Exception as exc:  # noqa: BLE001 - whatever the provider raises, it does not run here
        text = str(exc).strip().splitlines()
        return False, f"listed, but fails on a tiny model ({type(exc).__name__}: {text[0][:200] if text else ''})"
    if not np.array_equal(y, x * x):
        return False, "listed, but computes a tiny model wrongly"
    return True, f"runs a tiny model (onnxruntime {ort.__version__})"


def backend_status(backend: str, device: DeviceSpec | str = "cpu") -> tuple[bool, str]:
    """(True, what works) if `backend` can be used on `device` here, else (False, the reason and the fix).

    ONNX Runtime's providers are checked by running a tiny model on them (`provider_runs`), not by
    reading the list the build was compiled with.
    """
    device = parse_device(device)
    if backend == "tensorrt":

        if device.kind != "cuda":
            return False, "TensorRT runs on a CUDA device only"
        return tensorrt_status()
    wanted = {"onnxruntime": "CUDAExecutionProvider" if device.kind == "cuda" else "CPUExecutionProvider",
              "onnxruntime-tensorrt": "TensorrtExecutionProvider"}.get(backend)
    if wanted is None:
        return False, f"unknown backend {backend!r}; valid options: {', '.join(BACKENDS[1:])}"
    if backend == "onnxruntime-tensorrt" and device.kind != "cuda":
        return False, "ONNX Runtime's TensorRT provider runs on a CUDA device only"
    ok, why = provider_runs(wanted, device)
    return ok, (f"{wanted}: {why}" if not ok else why)


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

        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        return TrtRunner(EngineFromBytes(data, name=name, release_after_load=release_after_load), name=name,
                         device_index=device.index or 0)
    loader = SessionFromOnnx(model, providers=ort_providers(backend, device, fp16), intra_op_threads=threads,
                             allow_spinning=False, allow_fallback=allow_fallback, external_data=external_data,
                             release_after_load=release_after_load, name=name)
    return OrtRunner(loader, name=name)
