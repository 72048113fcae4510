"""ONNX Runtime provider checks: a GPU request that runs on the CPU is refused unless allowed."""

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from taskgroup.errors import TaskgroupError  # noqa: E402
from taskgroup.profile.backends import OnnxRuntimeBackend  # noqa: E402
from taskgroup.profile.device import DeviceSpec  # noqa: E402
from taskgroup.profile.onnxgraphs import identity_graph  # noqa: E402

GRAPH = identity_graph([1, 4], 18)
CUDA0 = DeviceSpec("cuda", 0)


def test_cpu_session_records_provider_and_settings():
    b = OnnxRuntimeBackend(DeviceSpec("cpu"), threads=1)
    r = b.runner(GRAPH, {"x": np.arange(4, dtype=np.float32).reshape(1, 4)})
    np.testing.assert_array_equal(r.outputs()[0], [[0, 1, 2, 3]])
    assert b.execution_provider == "CPUExecutionProvider"
    assert b.settings()["intra_op_num_threads"] == 1 and b.settings()["allow_spinning"] is False


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA provider present")
def test_missing_cuda_provider_is_refused_without_fallback():
    with pytest.raises(TaskgroupError, match="no CUDAExecutionProvider.*--allow-fallback"):
        OnnxRuntimeBackend(CUDA0, threads=1).session(GRAPH)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_silent_fallback_is_detected(monkeypatch):
    # onnxruntime-gpu lists the CUDA provider even without a GPU and then runs on the CPU.
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a real CUDA provider is present")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(TaskgroupError, match="fell back from CUDAExecutionProvider to "
                                                                        "CPUExecutionProvider.*--allow-fallback"):
        OnnxRuntimeBackend(CUDA0, threads=1).session(GRAPH)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_allowed_fallback_records_what_ran():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a real CUDA provider is present")
    b = OnnxRuntimeBackend(CUDA0, threads=1, allow_fallback=True)
    b.session(GRAPH)
    assert b.execution_provider == "CPUExecutionProvider"
