"""ONNX Runtime provider checks in the profiler: a GPU request that runs on the CPU is refused unless allowed."""

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from taskgroup_runtime.device import DeviceSpec  # noqa: E402
from taskgroup.errors import TaskgroupError  # noqa: E402
from taskgroup.profile.onnxgraphs import identity_graph  # noqa: E402
from taskgroup.profile.pieces import PieceRunners  # noqa: E402

GRAPH = identity_graph([1, 4], 18)
CUDA0 = DeviceSpec("cuda", 0)
FEED = {"x": np.arange(4, dtype=np.float32).reshape(1, 4)}


def test_cpu_session_records_provider_and_settings():
    pieces = PieceRunners("onnxruntime", DeviceSpec("cpu"), threads=1)
    pieces.add_graph("id", GRAPH, FEED)
    np.testing.assert_array_equal(pieces.outputs("id")[0], [[0, 1, 2, 3]])
    assert pieces.execution_provider == "CPUExecutionProvider"
    assert pieces.settings()["intra_op_num_threads"] == 1 and pieces.settings()["allow_spinning"] is False
    pieces.close()
    assert not pieces.runners["id"].is_active


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA provider present")
def test_missing_cuda_provider_is_refused_without_fallback():
    with pytest.raises(TaskgroupError, match="CUDAExecutionProvider is not available.*--allow-fallback"):
        PieceRunners("onnxruntime", CUDA0, threads=1).add_graph("id", GRAPH, FEED)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_silent_fallback_is_detected(monkeypatch):
    # onnxruntime-gpu lists the CUDA provider even without a GPU and then runs on the CPU.
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a real CUDA provider is present")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    real = ort.InferenceSession

    def cpu_only(model, sess_options=None, providers=None):  # what onnxruntime-gpu does without a GPU
        return real(model, sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", cpu_only)
    with pytest.raises(TaskgroupError, match=r"asked for CUDAExecutionProvider but ONNX Runtime runs on "
                                             r"\['CPUExecutionProvider'\].*--allow-fallback"):
        PieceRunners("onnxruntime", CUDA0, threads=1).add_graph("id", GRAPH, FEED)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_allowed_fallback_records_what_ran():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a real CUDA provider is present")
    pieces = PieceRunners("onnxruntime", CUDA0, threads=1, allow_fallback=True)
    pieces.add_graph("id", GRAPH, FEED)
    assert pieces.execution_provider == "CPUExecutionProvider"
    pieces.close()
