"""TensorRT through NVIDIA's Polygraphy: the engine builder (export and profile) and the engine runner.

    engine_bytes, cache, facts = build_engine(onnx_bytes, EngineConfig(max_batch=8))
    with TrtRunner(EngineFromBytes(engine_bytes), name="net0") as r:
        outputs = r.infer({"image": x})

Polygraphy (maintained and tested on GPUs by the TensorRT team) parses the ONNX graph
(`NetworkFromOnnxBytes` / `NetworkFromOnnxPath`, strongly typed), creates the builder
configuration (`CreateConfig`: one optimisation profile over the batch axis, a workspace
limit, a timing cache), builds (`EngineBytesFromNetwork`), deserializes
(`EngineFromBytes`) and runs engines (its `TrtRunner`, which manages device memory and
streams through the CUDA runtime). Strongly typed networks take their precision from the
graph: an fp16 engine is built from the fp16 ONNX graph (TensorRT 11 has no FP16 builder
flag).

Both `tensorrt` and `polygraphy` are optional (`pip install 'taskgrouping[tensorrt]'`) and
imported only when an engine is built or run. This code follows the TensorRT 10/11 and
Polygraphy 0.53 documentation and has never been run on a GPU: TensorRT cannot be installed
on the machine it was developed on.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from taskgroup_runtime.errors import BackendUnavailableError, EngineBuildError
from taskgroup_runtime.runner import Runner, TensorMeta

INSTALL = "pip install 'taskgrouping[tensorrt]' (TensorRT 10+ and Polygraphy; a robot needs only: pip install tensorrt polygraphy)"


def tensorrt_status() -> tuple[bool, str]:
    """(True, TensorRT's version) if engines can be built and run here, else (False, the reason and the fix)."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or OSError when its shared libraries are missing
        return False, f"the tensorrt Python package cannot be imported ({type(exc).__name__}: {exc}); {INSTALL}"
    try:
        import polygraphy  # noqa: F401
    except ImportError as exc:
        return False, f"polygraphy cannot be imported ({exc}); TensorRT engines are built and run through it; {INSTALL}"
    return True, trt.__version__


def _require() -> None:
    ok, why = tensorrt_status()
    if not ok:
        raise BackendUnavailableError(why)


@dataclass(frozen=True)
class EngineConfig:
    """How engines are built; export and profile use the same one."""

    min_batch: int = 1  # optimisation profile: smallest batch the engine accepts
    opt_batch: int = 1  # batch TensorRT tunes for (one camera frame per call)
    max_batch: int = 8  # largest batch the engine accepts
    workspace_bytes: int = 1 << 30  # builder scratch-memory limit
    timing_cache: bytes | None = None  # an earlier build's timing cache (speeds up rebuilds; another GPU's is ignored)


def build_engine(onnx: bytes | str | os.PathLike, config: EngineConfig, what: str = "model") -> tuple[bytes, bytes, dict]:
    """(serialized engine, timing cache, facts for the manifest or profile) of an ONNX model.

    A dynamic batch axis (axis 0) of an input gets the profile's min/opt/max batch (a fixed one
    is kept); every other dimension must be fixed in the graph. A path is parsed from the file (external weights
    beside it are found); bytes are parsed from memory.
    """
    _require()
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxBytes, NetworkFromOnnxPath
    from polygraphy.backend.trt import Profile
    from polygraphy.exception import PolygraphyException

    try:
        parse = (NetworkFromOnnxBytes(onnx, strongly_typed=True) if isinstance(onnx, bytes)
                 else NetworkFromOnnxPath(str(onnx), strongly_typed=True))
        builder, network, parser = parse()
        profile = Profile()
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            batch, *rest = tuple(tensor.shape)
            if any(d < 0 for d in rest):
                raise EngineBuildError(f"{what}: input '{tensor.name}' has dynamic dimensions beyond the batch axis: {rest}")
            low, opt, high = (config.min_batch, config.opt_batch, config.max_batch) if batch < 0 else (batch,) * 3
            profile.add(tensor.name, min=(low, *rest), opt=(opt, *rest), max=(high, *rest))
        cache_in = io.BytesIO(config.timing_cache) if config.timing_cache else None
        builder_config = CreateConfig(profiles=[profile], load_timing_cache=cache_in,
                                      memory_pool_limits={trt.MemoryPoolType.WORKSPACE: config.workspace_bytes})(
            builder, network)
        engine = EngineBytesFromNetwork((builder, network, parser), config=builder_config)()
        cache = bytes(builder_config.get_timing_cache().serialize())
    except PolygraphyException as exc:
        raise EngineBuildError(f"{what}: TensorRT could not build an engine: {exc}") from exc
    return bytes(engine), cache, {"tensorrt": trt.__version__, "builder": "polygraphy", "strongly_typed": True,
                                  "batch": [config.min_batch, config.opt_batch, config.max_batch],
                                  "workspace_bytes": config.workspace_bytes}


class EngineFromBytes:
    """Loader: a deserialized engine from serialized bytes (hash-verified by the bundle)."""

    def __init__(self, engine_bytes: bytes, *, name: str = "engine", release_after_load: bool = False):
        self.engine_bytes = engine_bytes
        self.name = name
        self.release_after_load = release_after_load  # a bundle never deserializes twice: drop the bytes

    def __call__(self):
        _require()
        import tensorrt as trt
        from polygraphy.backend.trt import EngineFromBytes as Deserialize
        from polygraphy.exception import PolygraphyException

        if self.engine_bytes is None:
            raise RuntimeError(f"{self.name}: the engine bytes were released after the first load; create a new loader")
        try:
            engine = Deserialize(self.engine_bytes)()
        except PolygraphyException as exc:
            raise BackendUnavailableError(
                f"{self.name}: TensorRT {trt.__version__} could not deserialize the engine (built with another TensorRT "
                "version or for another GPU?); rebuild it on the target with `taskgroup export --format tensorrt`") from exc
        if self.release_after_load:
            self.engine_bytes = None
        return engine


class TrtRunner(Runner):
    """Runs one TensorRT engine on a CUDA device through Polygraphy's TrtRunner (numpy in, float32 numpy out).

    An execution context serves one call at a time, so `infer` holds a lock; outputs are copied
    out of Polygraphy's reused host buffers before the lock is released.
    """

    def __init__(self, engine: EngineFromBytes, *, name: str | None = None, device_index: int = 0):
        self.loader = engine
        self.name = name or getattr(engine, "name", "tensorrt")
        self.device_index = device_index
        self._lock = threading.Lock()

    def _set_device(self) -> None:
        # The current CUDA device is per thread; calls arrive on pool and user threads.
        from polygraphy import cuda

        lib = cuda.wrapper()
        lib.check(lib.handle.cudaSetDevice(self.device_index))

    def activate_impl(self) -> None:
        _require()
        from polygraphy.backend.trt import TrtRunner as PolygraphyTrtRunner

        self._set_device()
        self._runner = PolygraphyTrtRunner(self.loader, name=self.name)
        self._runner.activate()
        import tensorrt as trt

        self._version = trt.__version__
        engine = self._runner.engine
        self._io = {}
        for i in range(engine.num_io_tensors):
            n = engine.get_tensor_name(i)
            shape = tuple(int(d) if d >= 0 else None for d in engine.get_tensor_shape(n))
            self._io[n] = (engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT,
                           (shape, np.dtype(trt.nptype(engine.get_tensor_dtype(n))).name))

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            self._set_device()
            out = self._runner.infer({k: np.ascontiguousarray(v) for k, v in feed.items()}, check_inputs=False)
            return {n: np.array(v, dtype=np.float32) for n, v in out.items()}  # a copy: the buffers are reused

    def deactivate_impl(self) -> None:
        with self._lock:  # never release the context under a call still running
            self._set_device()
            self._runner.deactivate()
            self._runner = None

    def input_metadata_impl(self) -> dict[str, TensorMeta]:
        return {n: meta for n, (is_input, meta) in self._io.items() if is_input}

    def output_metadata_impl(self) -> dict[str, TensorMeta]:
        return {n: meta for n, (is_input, meta) in self._io.items() if not is_input}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "backend": "tensorrt", "runner": "polygraphy TrtRunner",
                "tensorrt": getattr(self, "_version", None), "device": f"cuda:{self.device_index}"}
