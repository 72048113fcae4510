"""The runner family's shared parts: the device parser, the input check, the one timing function."""

import time

import numpy as np
import pytest

from taskgroup_runtime import BackendUnavailableError, OrtRunner, RuntimeInputError, SessionFromOnnx, parse_device
from taskgroup_runtime.device import DeviceSpec, parse_device_list
from taskgroup_runtime.timing import TimingConfig, measure


def test_device_forms():
    assert parse_device("cpu") == DeviceSpec("cpu") and parse_device(" CUDA ") == DeviceSpec("cuda", 0)
    assert parse_device("cuda:3") == DeviceSpec("cuda", 3) and str(DeviceSpec("cuda", 3)) == "cuda:3"
    assert parse_device("cuda:1", cuda_count=2) == DeviceSpec("cuda", 1)
    with pytest.raises(BackendUnavailableError, match=r"unknown device 'gpu'; valid devices: cpu, cuda, cuda:N$"):
        parse_device("gpu")
    with pytest.raises(BackendUnavailableError, match=r"'cuda:2' is not available \(2 CUDA device\(s\) are visible\)"):
        parse_device("cuda:2", cuda_count=2)


def test_device_lists_share_the_one_grammar():
    """Training's --devices and the runtime read device names alike: canonical spellings, `cuda` kept
    (a scheduler picks the GPU), the same refusal for a name that is not a device."""
    assert parse_device_list(None) == ("cpu",)
    assert parse_device_list(" CPU , cuda:01,CUDA") == ("cpu", "cuda:1", "cuda")
    assert parse_device_list(["cuda:0", "cuda:1"]) == ("cuda:0", "cuda:1")
    for text in ("gpu0", "cpu:1", "cuda:", "cuda:x", "cuda,tpu"):
        with pytest.raises(BackendUnavailableError, match=r"unknown device '.*'; valid devices: cpu, cuda, cuda:N$"):
            parse_device_list(text)
    with pytest.raises(BackendUnavailableError, match="give at least one device, e.g. cpu or cuda:0,cuda:1"):
        parse_device_list(" , ")


def _identity(dtype: int = 1, shape=("N", 4)) -> bytes:
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", dtype, list(shape))],
                              [helper.make_tensor_value_info("y", dtype, list(shape))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def test_inputs_are_checked_against_the_models_own_metadata():
    with OrtRunner(SessionFromOnnx(_identity()), name="id") as r:
        assert r.get_input_metadata() == {"x": ((None, 4), "float32")}
        assert r.get_output_metadata() == {"y": ((None, 4), "float32")}
        np.testing.assert_array_equal(r.infer({"x": np.ones((2, 4), np.float32)})["y"], np.ones((2, 4)))
        for feed, match in [({"z": np.ones((1, 4), np.float32)}, r"fed \['z'\], the model takes \['x'\]"),
                            ({"x": np.ones((1, 4), np.float64)}, "'x' is float64, the model takes float32"),
                            ({"x": np.ones((1, 5), np.float32)}, r"'x' has shape \[1, 5\], the model takes \['\?', 4\]"),
                            ({"x": np.ones(4, np.float32)}, "has shape"),
                            ({"x": [[1.0] * 4]}, "must be a numpy array")]:
            with pytest.raises(RuntimeInputError, match=match):
                r.infer(feed)
    with pytest.raises(RuntimeError, match="not active"):
        r.infer({"x": np.ones((1, 4), np.float32)})


def test_measure_interleaves_rounds_and_counts_runs():
    order = []
    timed = measure({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                    TimingConfig(warmup_runs=2, min_runs=6, min_seconds=0.0, rounds=3))
    assert order[:4] == ["a", "a", "b", "b"]  # warm-up first
    assert order[4:] == ["a", "a", "b", "b"] * 3  # then a block of each per round
    assert timed["a"].summary()["runs"] == 6 and timed["a"].round_ends == (2, 4, 6)
    assert len(timed["b"].round_medians_ms()) == 3


def test_measure_adapts_the_run_count_to_the_time_asked_for():
    timed = measure({"slow": lambda: time.sleep(0.002)},
                    TimingConfig(warmup_runs=0, min_runs=1, min_seconds=0.05, rounds=2))
    runs = timed["slow"].summary()["runs"]  # each call sleeps 2 ms or more (longer on a loaded machine)
    assert 2 <= runs <= 27 and timed["slow"].samples_s.sum() >= 0.05
    capped = measure({"f": lambda: None}, TimingConfig(warmup_runs=0, min_runs=5, min_seconds=10.0, max_runs=40))
    assert capped["f"].summary()["runs"] == 40


def test_bad_timing_configs_are_refused():
    with pytest.raises(ValueError, match="min_runs >= 1"):
        measure({"f": lambda: None}, TimingConfig(min_runs=0))


def test_the_probe_model_is_what_onnx_writes_for_y_equals_x_times_x():
    from onnx import TensorProto, helper

    from taskgroup_runtime.backends import PROBE_MODEL

    graph = helper.make_graph([helper.make_node("Mul", ["x", "x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7, producer_name="taskgroup")
    assert model.SerializeToString() == PROBE_MODEL


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_provider_is_checked_by_running_it_not_by_the_list(monkeypatch):
    import onnxruntime as ort

    from taskgroup_runtime.backends import provider_runs

    probe = provider_runs.__wrapped__  # uncached
    assert probe("CPUExecutionProvider", DeviceSpec("cpu"))[0]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA-capable onnxruntime is installed")
    ok, why = probe("CUDAExecutionProvider", DeviceSpec("cuda", 0))
    assert not ok and why.startswith("not in this onnxruntime build") and "pip install onnxruntime-gpu" in why
    # onnxruntime-gpu without a usable GPU: listed, yet the session runs on the CPU.
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession",
                        lambda model, sess_options=None, providers=None: real(model, sess_options,
                                                                               providers=["CPUExecutionProvider"]))
    ok, why = probe("CUDAExecutionProvider", DeviceSpec("cuda", 0))
    assert not ok and why.startswith("listed, but asked for CUDAExecutionProvider but ONNX Runtime runs on")
