"""Device and backend choice: clear errors listing the valid options; no silent GPU->CPU fallback."""

import pytest

from taskgroup_runtime import backend_status
from taskgroup_runtime.device import DeviceSpec
from taskgroup.errors import TaskgroupError
from taskgroup.profile.device import describe_device, library_versions, parse_device, resolve_backend, slug


def test_parse_valid_devices():
    assert parse_device("cpu") == DeviceSpec("cpu")
    assert parse_device(" CPU ") == DeviceSpec("cpu")
    assert parse_device("cuda", cuda_count=1) == DeviceSpec("cuda", 0)
    assert parse_device("cuda:1", cuda_count=2) == DeviceSpec("cuda", 1)
    assert str(DeviceSpec("cuda", 1)) == "cuda:1"


def test_unknown_device_lists_valid_ones():
    with pytest.raises(TaskgroupError, match=r"unknown device 'tpu'; valid devices here: cpu, cuda:0, cuda:1"):
        parse_device("tpu", cuda_count=2)


def test_absent_cuda_device_is_an_error():
    with pytest.raises(TaskgroupError, match=r"'cuda:7' is not available \(no CUDA device is visible\); "
                                             r"valid devices here: cpu$"):
        parse_device("cuda:7", cuda_count=0)
    with pytest.raises(TaskgroupError, match=r"2 CUDA device\(s\) are visible.*cpu, cuda:0, cuda:1"):
        parse_device("cuda:2", cuda_count=2)


def test_this_machine_without_gpu_refuses_cuda():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(TaskgroupError, match="valid devices here: cpu"):
        parse_device("cuda:0")


def test_backend_resolution():
    assert resolve_backend("auto", DeviceSpec("cpu")) == "onnxruntime"
    assert resolve_backend("torch", DeviceSpec("cpu")) == "torch"
    with pytest.raises(TaskgroupError, match="valid options: auto, torch, onnxruntime, onnxruntime-tensorrt, tensorrt"):
        resolve_backend("openvino", DeviceSpec("cpu"))
    with pytest.raises(TaskgroupError, match="needs a CUDA device"):
        resolve_backend("tensorrt", DeviceSpec("cpu"))


@pytest.mark.skipif(backend_status("tensorrt", "cuda")[0], reason="TensorRT is installed here")
def test_missing_tensorrt_is_a_clear_error():
    with pytest.raises(TaskgroupError, match="backend 'tensorrt': the tensorrt Python package cannot be imported"):
        resolve_backend("tensorrt", DeviceSpec("cuda", 0))


def test_description_records_cpu_and_libraries():
    info = describe_device(DeviceSpec("cpu"))
    assert info["kind"] == "cpu" and info["cpu_cores"] >= 1 and info["cpu_model"]
    libs = library_versions()
    assert libs["python"] and "onnxruntime" in libs and "torch" in libs
    assert slug("Intel(R) Xeon(R) Processor") == "intel-r-xeon-r-processor"
