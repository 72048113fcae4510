"""TensorRT through Polygraphy: what can be checked without TensorRT and a GPU.

TensorRT cannot be installed on the machines these tests run on, so building and running
engines is never exercised here (tests needing it skip); what is checked is that every
TensorRT path fails with a clear message saying what is missing and how to install it, and
that the Polygraphy API the code is written against is the one installed.
"""

import sys
import types

import pytest

from taskgroup_runtime import BackendUnavailableError, EngineFromBytes, TrtRunner, backend_status, tensorrt_status
from taskgroup_runtime.trt import EngineConfig, build_engine

HAVE_TRT = tensorrt_status()[0]
needs_no_trt = pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here: the GPU paths are used instead")


@needs_no_trt
def test_status_names_the_missing_package_and_the_install():
    ok, why = tensorrt_status()
    assert not ok and "tensorrt Python package cannot be imported" in why and "taskgrouping[tensorrt]" in why
    assert backend_status("tensorrt", "cuda") == (False, why)
    assert backend_status("tensorrt", "cpu") == (False, "TensorRT runs on a CUDA device only")


@needs_no_trt
def test_running_or_building_an_engine_without_tensorrt_says_why():
    with pytest.raises(BackendUnavailableError, match="tensorrt Python package cannot be imported"):
        TrtRunner(EngineFromBytes(b"not an engine"), name="net0").activate()
    with pytest.raises(BackendUnavailableError, match="tensorrt Python package cannot be imported"):
        build_engine(b"not a model", EngineConfig())


def test_tensorrt_without_polygraphy_says_so(monkeypatch):
    """A TensorRT installation without Polygraphy (the runtime runs engines through it) is reported as such."""
    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.99"
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setitem(sys.modules, "polygraphy", None)  # import polygraphy -> ImportError
    ok, why = tensorrt_status()
    assert not ok and why.startswith("polygraphy cannot be imported") and "pip install" in why


def test_the_polygraphy_api_the_code_uses_is_installed():
    pytest.importorskip("polygraphy")
    import polygraphy
    from polygraphy import cuda
    from polygraphy.backend import trt
    from polygraphy.exception import PolygraphyException  # noqa: F401

    for name in ("CreateConfig", "EngineBytesFromNetwork", "EngineFromBytes", "NetworkFromOnnxBytes",
                 "NetworkFromOnnxPath", "Profile", "TrtRunner"):
        assert hasattr(trt, name), f"polygraphy {polygraphy.__version__} has no backend.trt.{name}"
    assert callable(cuda.wrapper)
    profile = trt.Profile().add("image", min=(1, 3, 16, 16), opt=(1, 3, 16, 16), max=(8, 3, 16, 16))
    assert tuple(profile["image"].max) == (8, 3, 16, 16)


@pytest.mark.skipif(not HAVE_TRT, reason="needs TensorRT and a CUDA GPU (not installable on the development machine)")
def test_an_engine_round_trips_through_polygraphy(tmp_path):  # pragma: no cover - GPU machines only
    import numpy as np
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", 1, ["N", 4])],
                              [helper.make_tensor_value_info("y", 1, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    engine, cache, facts = build_engine(model, EngineConfig(max_batch=4))
    assert cache and facts["batch"] == [1, 1, 4]
    with TrtRunner(EngineFromBytes(engine), name="relu") as r:
        x = np.array([[-1, 0, 1, 2]], np.float32)
        np.testing.assert_array_equal(r.infer({"x": x})["y"], np.maximum(x, 0))
