"""ONNX -> serialized TensorRT engine (TensorRT 10 and 11 Python API).

Not run on the development machine: TensorRT cannot be installed there (no GPU; the PyPI
wheels fetch their libraries from NVIDIA's index). The code follows the documented API:
Builder -> create_network (strongly typed: on TensorRT 10 via the STRONGLY_TYPED flag, on
11 always) -> OnnxParser.parse_from_file -> BuilderConfig with a workspace limit, one
optimisation profile over the dynamic batch axis and a persistent timing cache ->
build_serialized_network -> engine file. Because networks are strongly typed, precision
comes from the ONNX graph itself: an fp16 engine is built from the fp16 ONNX file
(exporters.onnx_export.convert_fp16), not from a builder flag (TensorRT 11 removed
BuilderFlag.FP16).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import write_bytes_atomic


@dataclass(frozen=True)
class EngineConfig:
    input_name: str  # the ONNX input tensor (dynamic batch axis 0)
    height: int  # fixed input height
    width: int  # fixed input width
    min_batch: int = 1  # optimisation profile: smallest batch the engine accepts
    opt_batch: int = 1  # batch TensorRT tunes for (one camera frame per call)
    max_batch: int = 8  # largest batch the engine accepts
    workspace_bytes: int = 1 << 30  # builder scratch-memory limit
    timing_cache: Path | None = None  # read before and written after the build; speeds up rebuilds


def tensorrt_status() -> tuple[bool, str]:
    """(True, version) when engines can be built here, else (False, the reason)."""
    from runtime.tensorrt_runner import tensorrt_available

    return tensorrt_available()


def build_engine(onnx_path: Path, engine_path: Path, config: EngineConfig) -> dict:
    """Build and write a serialized engine; returns facts for the manifest."""
    ok, why = tensorrt_status()
    if not ok:
        raise TaskgroupError(f"cannot build a TensorRT engine: {why}")
    import tensorrt as trt

    major = int(trt.__version__.split(".")[0])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if major < 11:  # TensorRT 11 is always strongly typed and ignores the (deprecated) flag
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TaskgroupError(f"{onnx_path.name}: TensorRT's ONNX parser failed: {errors}")

    bconfig = builder.create_builder_config()
    bconfig.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_bytes)
    profile = builder.create_optimization_profile()
    shape = lambda n: (n, 3, config.height, config.width)  # noqa: E731
    profile.set_shape(config.input_name, shape(config.min_batch), shape(config.opt_batch), shape(config.max_batch))
    bconfig.add_optimization_profile(profile)

    cache_bytes = b""
    if config.timing_cache is not None and config.timing_cache.is_file():
        cache_bytes = config.timing_cache.read_bytes()
    cache = bconfig.create_timing_cache(cache_bytes)
    bconfig.set_timing_cache(cache, ignore_mismatch=True)  # a cache from another GPU is ignored, not fatal

    serialized = builder.build_serialized_network(network, bconfig)
    if serialized is None:
        raise TaskgroupError(f"{onnx_path.name}: TensorRT failed to build an engine (see the TensorRT log above)")
    write_bytes_atomic(engine_path, bytes(serialized))
    if config.timing_cache is not None:
        write_bytes_atomic(config.timing_cache, bytes(bconfig.get_timing_cache().serialize()))
    return {"tensorrt": trt.__version__, "strongly_typed": True,
            "batch": [config.min_batch, config.opt_batch, config.max_batch]}
