"""Native TensorRT runner for serialized engines (TensorRT 10/11 Python API).

Not exercised on the development machine (no GPU, TensorRT not installable there); the
code follows the TensorRT 10 name-based I/O API (num_io_tensors, set_input_shape,
set_tensor_address, execute_async_v3), which TensorRT 11 keeps. Device memory is handled
through the CUDA runtime library via ctypes, as Polygraphy does, so no pycuda/cupy/torch
dependency is needed. An execution context is not thread-safe, so `infer` holds a lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Mapping

import numpy as np

from runtime.runner import Runner, TensorMeta
from runtime.errors import BackendUnavailableError, RuntimeInputError

_H2D, _D2H = 1, 2  # cudaMemcpyKind values


def tensorrt_available() -> tuple[bool, str]:
    """(True, version) if the tensorrt module imports, else (False, reason)."""
    try:
        import tensorrt as trt  # noqa: F401
    except Exception as exc:  # ImportError, or OSError when its shared libraries are missing
        return False, f"the tensorrt Python package cannot be imported ({type(exc).__name__}: {exc})"
    return True, trt.__version__


class _CudaRuntime:
    """The few CUDA runtime calls the runner needs, loaded from libcudart with ctypes."""

    def __init__(self) -> None:
        names = [ctypes.util.find_library("cudart"), "libcudart.so", "libcudart.so.13", "libcudart.so.12",
                 "cudart64_12.dll", "cudart64_13.dll"]
        self.lib = None
        for n in names:
            if not n:
                continue
            try:
                self.lib = ctypes.CDLL(n)
                break
            except OSError:
                continue
        if self.lib is None:
            raise BackendUnavailableError("the CUDA runtime library (libcudart) was not found; "
                                          "install the CUDA runtime that matches your TensorRT")
        self.lib.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        self.lib.cudaFree.argtypes = [ctypes.c_void_p]
        self.lib.cudaMemcpyAsync.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                             ctypes.c_void_p]
        self.lib.cudaStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self.lib.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]
        self.lib.cudaStreamDestroy.argtypes = [ctypes.c_void_p]
        self.lib.cudaSetDevice.argtypes = [ctypes.c_int]

    def check(self, status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"CUDA error {status} in {what}")

    def set_device(self, idx: int) -> None:
        self.check(self.lib.cudaSetDevice(idx), "cudaSetDevice")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(ptr), max(1, nbytes)), "cudaMalloc")
        return int(ptr.value)

    def free(self, ptr: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(ptr))

    def stream(self) -> int:
        s = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
        return int(s.value or 0)

    def copy(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self.check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(src), nbytes, kind,
                                            ctypes.c_void_p(stream)), "cudaMemcpyAsync")

    def sync(self, stream: int) -> None:
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")

    def destroy_stream(self, stream: int) -> None:
        self.lib.cudaStreamDestroy(ctypes.c_void_p(stream))


class TrtRunner(Runner):
    """Runs one serialized TensorRT engine on a CUDA device (inputs/outputs as numpy arrays)."""

    def __init__(self, engine_bytes: bytes, *, name: str, device_index: int = 0, keep_engine_bytes: bool = True):
        self.engine_bytes = engine_bytes  # serialized engine, hash-verified by the bundle loader
        self.keep_engine_bytes = keep_engine_bytes  # False: drop them once deserialized (a bundle never re-activates)
        self.name = name
        self.device_index = device_index
        self._lock = threading.Lock()
        self._buffers: dict[str, tuple[int, int]] = {}  # tensor name -> (device pointer, capacity in bytes)

    def activate_impl(self) -> None:
        ok, why = tensorrt_available()
        if not ok:
            raise BackendUnavailableError(f"{self.name}: cannot run a TensorRT engine: {why}")
        if self.engine_bytes is None:
            raise RuntimeError(f"runner {self.name}: its engine bytes were released after the first activation; "
                               "create a new runner")
        import tensorrt as trt

        self.trt = trt
        self.cuda = _CudaRuntime()
        self.cuda.set_device(self.device_index)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.engine_bytes)
        if self.engine is None:
            raise BackendUnavailableError(f"{self.name}: TensorRT could not deserialize the engine (built with "
                                          f"another TensorRT version or for another GPU?); this is TensorRT "
                                          f"{trt.__version__}. Rebuild it with `taskgroup export --format tensorrt` "
                                          "on the target.")
        self.context = self.engine.create_execution_context()
        if not self.keep_engine_bytes:
            self.engine_bytes = None
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.stream = self.cuda.stream()

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, cap = self._buffers.get(name, (0, 0))
        if cap < nbytes:
            if ptr:
                self.cuda.free(ptr)
            ptr, cap = self.cuda.malloc(nbytes), nbytes
            self._buffers[name] = (ptr, cap)
        return ptr

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:  # an IExecutionContext and its buffers serve one call at a time
            # The current CUDA device is per thread; calls arrive on pool and user threads.
            self.cuda.set_device(self.device_index)
            host_inputs = {}
            for n in self.inputs:
                x = np.ascontiguousarray(feed[n], dtype=self.dtypes[n])
                host_inputs[n] = x
                if not self.context.set_input_shape(n, tuple(x.shape)):
                    low, _, high = self.engine.get_tensor_profile_shape(n, 0)
                    raise RuntimeInputError(f"{self.name}: input shape {tuple(x.shape)} is outside the engine's "
                                            f"optimisation profile {tuple(low)}..{tuple(high)}; send batches of "
                                            f"{low[0]} to {high[0]} frames")
                ptr = self._buffer(n, x.nbytes)
                self.cuda.copy(ptr, x.ctypes.data, x.nbytes, _H2D, self.stream)
                self.context.set_tensor_address(n, ptr)
            results = {}
            for n in self.outputs:
                shape = tuple(self.context.get_tensor_shape(n))
                out = np.empty(shape, dtype=self.dtypes[n])
                results[n] = out
                self.context.set_tensor_address(n, self._buffer(n, out.nbytes))
            if not self.context.execute_async_v3(self.stream):
                raise RuntimeError(f"{self.name}: TensorRT execution failed")
            for n, out in results.items():
                self.cuda.copy(out.ctypes.data, self._buffers[n][0], out.nbytes, _D2H, self.stream)
            self.cuda.sync(self.stream)
            return {n: (v.astype(np.float32) if v.dtype != np.float32 else v) for n, v in results.items()}

    def deactivate_impl(self) -> None:
        with self._lock:  # never free buffers or the stream under a call still running
            self.cuda.set_device(self.device_index)
            for ptr, _ in self._buffers.values():
                self.cuda.free(ptr)
            self._buffers.clear()
            self.cuda.destroy_stream(self.stream)
            self.context = self.engine = self.runtime = None

    def input_metadata_impl(self) -> dict[str, TensorMeta]:
        return {n: self._meta(n) for n in self.inputs}

    def output_metadata_impl(self) -> dict[str, TensorMeta]:
        return {n: self._meta(n) for n in self.outputs}

    def _meta(self, name: str) -> TensorMeta:
        shape = tuple(int(d) if d >= 0 else None for d in self.engine.get_tensor_shape(name))
        return shape, np.dtype(self.dtypes[name]).name

    def describe(self) -> dict:
        return {"name": self.name, "backend": "tensorrt", "tensorrt": getattr(self.trt, "__version__", None),
                "device": f"cuda:{self.device_index}"}
