"""ONNX -> serialized TensorRT engine (TensorRT 10 and 11 Python API): the one builder that
`taskgroup export` and `taskgroup profile --backend tensorrt` share.

Not run on the development machine: TensorRT cannot be installed there (no GPU; the PyPI
wheels fetch their libraries from NVIDIA's index). The code follows the documented API:
Builder -> create_network (strongly typed: on TensorRT 10 via the STRONGLY_TYPED flag, on
11 always) -> OnnxParser -> BuilderConfig with a workspace limit, one optimisation profile
over the dynamic batch axis of every input and a persistent timing cache ->
build_serialized_network. Because networks are strongly typed, precision comes from the
ONNX graph itself: an fp16 engine is built from the fp16 ONNX file
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
    min_batch: int = 1  # optimisation profile: smallest batch the engine accepts
    opt_batch: int = 1  # batch TensorRT tunes for (one camera frame per call)
    max_batch: int = 8  # largest batch the engine accepts
    workspace_bytes: int = 1 << 30  # builder scratch-memory limit
    timing_cache: Path | None = None  # read before and written after the build; speeds up rebuilds


def build_engine(onnx: bytes | Path, config: EngineConfig, what: str = "model") -> tuple[bytes, dict]:
    """A serialized engine of an ONNX model, and facts about the build for the manifest or profile.

    The batch axis (axis 0) of every input is given the profile min/opt/max batch; every other
    dimension must be fixed in the graph.
    """
    from runtime.tensorrt_runner import tensorrt_available

    ok, why = tensorrt_available()
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
    parsed = parser.parse_from_file(str(onnx)) if isinstance(onnx, Path) else parser.parse(onnx)
    if not parsed:
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TaskgroupError(f"{what}: TensorRT's ONNX parser failed: {errors}")

    bconfig = builder.create_builder_config()
    bconfig.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_bytes)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        if any(d < 0 for d in rest):
            raise TaskgroupError(f"{what}: input '{tensor.name}' has dynamic dimensions beyond the batch axis {rest}")
        profile.set_shape(tensor.name, (config.min_batch, *rest), (config.opt_batch, *rest), (config.max_batch, *rest))
    bconfig.add_optimization_profile(profile)

    cache_bytes = b""
    if config.timing_cache is not None and config.timing_cache.is_file():
        cache_bytes = config.timing_cache.read_bytes()
    cache = bconfig.create_timing_cache(cache_bytes)
    bconfig.set_timing_cache(cache, ignore_mismatch=True)  # a cache from another GPU is ignored, not fatal

    serialized = builder.build_serialized_network(network, bconfig)
    if serialized is None:
        raise TaskgroupError(f"{what}: TensorRT failed to build an engine (see the TensorRT log above)")
    if config.timing_cache is not None:
        write_bytes_atomic(config.timing_cache, bytes(bconfig.get_timing_cache().serialize()))
    return bytes(serialized), {"tensorrt": trt.__version__, "strongly_typed": True,
                               "batch": [config.min_batch, config.opt_batch, config.max_batch]}
