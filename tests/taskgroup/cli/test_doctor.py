"""`taskgroup doctor` on a CPU-only machine: it runs, says it is one, and gives the fix for each GPU piece."""

import json

import pytest

from taskgroup.cli import main
from taskgroup.doctor import nvidia_gpus


def test_doctor_reports_a_cpu_only_machine(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if nvidia_gpus() or torch.cuda.is_available():
        pytest.skip("a GPU machine: the CPU-only report does not apply")
    path = tmp_path / "doctor.json"
    try:
        main(["doctor", "--json", str(path)])
    except SystemExit as exc:
        assert not exc.code
    out = capsys.readouterr().out
    assert "a CPU-only machine" in out and "taskgrouping[tensorrt]" in out  # brackets survive rich's markup
    doc = json.loads(path.read_text())
    assert doc["kind"] == "doctor_report"
    found = {f["item"]: f for f in doc["findings"]}
    assert found["CUDA devices"]["status"] == "info" and "CPU-only build" in found["CUDA devices"]["detail"]
    assert found["CPUExecutionProvider"]["status"] == "ok" and "runs a tiny model" in found["CPUExecutionProvider"]["detail"]
    cuda = found["CUDAExecutionProvider"]
    assert cuda["status"] == "info" and "pip uninstall -y onnxruntime && pip install onnxruntime-gpu" in cuda["fix"]
    assert found["tensorrt"]["status"] == "info" and "pip install 'taskgrouping[tensorrt]'" in found["tensorrt"]["fix"]
    assert found["packages"]["status"] == "ok"
    summary = doc["findings"][-1]
    assert summary["area"] == "summary" and summary["detail"].startswith("a CPU-only machine")
    assert "runtime run on the CPU" in summary["detail"] and summary["fix"] is None


@pytest.mark.parametrize("gpus, gpu_build, extra", [([], None, "train"), ([], "1.20.0", "train-gpu"),
                                                    (["H100, 550.54"], None, "train-gpu")])
def test_the_missing_torch_hint_keeps_the_gpu_build_of_onnx_runtime(monkeypatch, gpus, gpu_build, extra):
    """Where onnxruntime-gpu is installed or a GPU is present, `[train]` would install the CPU build
    into the same folder: the hint names `[train-gpu]` there."""
    from taskgroup import doctor

    versions = {"torch": None, "onnxruntime-gpu": gpu_build}
    monkeypatch.setattr(doctor, "nvidia_gpus", lambda: gpus)
    monkeypatch.setattr(doctor, "_version", versions.get)
    monkeypatch.setattr(doctor, "_onnxruntime", lambda gpu: [])
    monkeypatch.setattr(doctor, "_tensorrt", lambda gpu: [])
    torch_finding = next(f for f in doctor.diagnose() if f.item == "torch")
    assert torch_finding.status == "missing" and torch_finding.fix.endswith(f'-e ".[{extra}]"')
