"""benchmarks/gpu_check.py: every step that needs no CUDA device runs on the CPU, as CI runs it;
the steps a GPU machine adds are skipped with their reason; bad arguments are refused."""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
pytest.importorskip("torch")


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """The CPU run, with the work made small (two tasks, 3 epochs, short timings) to fit CI's 2 cores."""
    tmp = tmp_path_factory.mktemp("gpu-check")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--preset", "tiny", "--tasks", "segment_semantic,depth_zbuffer",
         "--epochs", "3", "--widths", "1.0", "--min-runs", "5", "--min-seconds", "0.02", "--bench-runs", "20",
         "--step-timeout", "900",
         "--work", str(tmp / "work"), "--out", str(tmp / "out")],
        capture_output=True, text=True, timeout=1500, env=dict(os.environ, PYTHONPATH=str(REPO)))
    results = sorted((tmp / "out").glob("gpu_check-cpu-*.json"))
    return out, (json.loads(results[0].read_text()) if results else None), tmp


def test_cpu_run_passes_every_step_without_cuda_and_skips_the_rest_with_reasons(cpu_run):
    out, doc, tmp = cpu_run
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    steps = {s["name"]: s for s in doc["steps"]}
    assert list(steps) == [
        "environment", "doctor", "profile torch (tiny)", "profile onnxruntime (tiny)",
        "profile onnxruntime-tensorrt (tiny)", "profile tensorrt (tiny)", "train tiny on cpu",
        "train tiny with processes:2 on cpu", "select and export (tiny)", "PyTorch reference on cpu",
        "bundle onnxruntime on cpu",
        "bundle onnxruntime on cuda:0", "bundle onnxruntime-tensorrt on cuda:0", "bundle tensorrt on cuda:0"]
    skipped = {n for n, s in steps.items() if s["status"] == "skipped"}
    assert skipped == {"profile onnxruntime-tensorrt (tiny)", "profile tensorrt (tiny)", "bundle onnxruntime on cuda:0",
                       "bundle onnxruntime-tensorrt on cuda:0", "bundle tensorrt on cuda:0"}
    assert all(steps[n]["reason"] == "needs a CUDA device" for n in skipped)
    # Timings on a shared CPU may miss the cost model's 10%: a warning, never a failure.
    assert {s["status"] for n, s in steps.items() if n not in skipped} <= {"ok", "warning"}
    assert {n for n, s in steps.items() if s["status"] == "warning"} <= {"profile torch (tiny)",
                                                                          "profile onnxruntime (tiny)"}
    assert doc["counts"]["failed"] == 0 and doc["counts"]["skipped"] == 5

    # Two tasks: 2 full singles, 2 half singles, 1 pair; on the CPU the executors agree bit for bit.
    local, procs = steps["train tiny on cpu"]["detail"], steps["train tiny with processes:2 on cpu"]["detail"]
    assert local["networks"] == procs["networks"] == 5
    assert procs["vs the local executor"]["identical"] is True
    assert procs["vs the local executor"]["entries"] == 6  # (network, task) validation losses compared
    profile = steps["profile onnxruntime (tiny)"]["detail"]
    assert profile["execution_provider"] == "CPUExecutionProvider" and len(profile["validation"]) == 2  # all heads, one head
    bundle = steps["bundle onnxruntime on cpu"]["detail"]
    assert set(bundle["errors_vs_torch"]) == {"segment_semantic", "depth_zbuffer"}
    assert all(e["max_abs_error"] <= e["tolerance"] for e in bundle["errors_vs_torch"].values())
    assert bundle["bench_whole"]["device"] == "cpu" and bundle["bench_whole"]["runs"] >= 20
    assert steps["environment"]["detail"]["gpus"] == []

    md = next((tmp / "out").glob("gpu_check-cpu-*.md")).read_text()
    assert "| train tiny with processes:2 on cpu | ok |" in md
    assert "- bundle tensorrt on cuda:0: needs a CUDA device" in md
    assert not list((tmp / "work").glob(".*.partial"))  # export left no partial bundle


def test_a_cuda_device_this_machine_lacks_is_refused_in_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    code = load_script().main(["--device", "cuda:0", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert err.startswith("error: device 'cuda:0' is not available (no CUDA device is visible); valid devices here: cpu")
    assert not (tmp_path / "out").exists() and not (tmp_path / "w").exists()


def test_a_work_folder_in_use_is_refused(tmp_path, capsys):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "run-tiny-cpu").mkdir()
    code = load_script().main(["--device", "cpu", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "out")])
    assert code == 2 and "--work" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_an_unknown_preset_is_refused_with_the_valid_ones(tmp_path, capsys):
    code = load_script().main(["--device", "cpu", "--preset", "tiny,huge", "--out", str(tmp_path / "out")])
    assert code == 2
    from taskgroup.presets import ARCH_PRESETS

    assert "gpu" in ARCH_PRESETS  # the list is the presets module's, whatever presets it holds
    assert capsys.readouterr().err.strip() == f"error: unknown preset 'huge'; presets: {', '.join(ARCH_PRESETS)}"
    assert not (tmp_path / "out").exists()


def test_without_fvcore_the_profile_is_skipped_with_the_fix(tmp_path, monkeypatch):
    gc = load_script()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fvcore" else real(name, *a))
    step = gc.Step("profile torch (default)")
    with pytest.raises(gc.Skip, match=r"fvcore cannot be imported .*carry its wheels, docs/profiling.md"):
        gc.profile(None, step, "torch", "default", "normal")


def test_loss_comparison_names_identity_and_the_median_tolerance():
    gc = load_script()

    def table(*losses):
        return {"networks": [{"tasks": ["a"], "width": 1.0, "stage": "final", "losses": {"val": {"a": v}}}
                             for v in losses][:1] + [{"tasks": ["b"], "width": 0.5, "stage": "final",
                                                      "losses": {"val": {"b": losses[-1]}}}]}

    same = gc.loss_differences(table(1.0, 2.0), table(1.0, 2.0))
    assert same == {"identical": True, "entries": 2, "median_relative_difference": 0.0, "max_relative_difference": 0.0}
    near = gc.loss_differences(table(1.01, 2.0), table(1.0, 2.0))
    assert near["identical"] is False and near["max_relative_difference"] == pytest.approx(0.01)
    assert near["median_relative_difference"] == pytest.approx(0.005)

    step = gc.Step("s")
    gc.compare(step, "x", near, must_be_identical=False)
    assert step.status == "ok"
    gc.compare(step, "x", near, must_be_identical=True)
    assert step.status == "failed" and "bit-identical" in step.reason
    far = gc.loss_differences(table(1.5, 3.0), table(1.0, 2.0))
    step = gc.Step("s")
    gc.compare(step, "the CPU", far, must_be_identical=False)
    assert step.status == "failed" and "50.00% (median) from the CPU" in step.reason
    with pytest.raises(RuntimeError, match="different networks"):
        gc.loss_differences(table(1.0, 2.0), {"networks": []})


def test_commands_see_a_relative_pythonpath_where_the_check_saw_it(tmp_path, monkeypatch):
    """`PYTHONPATH=.:.gpu-deps python benchmarks/gpu_check.py` (the carried wheels): the commands run in
    the work folder, so the relative entries are made absolute, and the work folder too."""
    gc = load_script()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", f".{os.pathsep}.gpu-deps")
    args = argparse.Namespace(cache_dir=None)
    check = gc.Check(args, tmp_path / "work")
    assert check.env["PYTHONPATH"].split(os.pathsep) == [str(REPO), str(tmp_path), str(tmp_path / ".gpu-deps")]
    assert check.env["TASKGROUP_CACHE"] == str(tmp_path / "work" / "cache")


def test_a_failing_step_keeps_what_fixing_it_needs_and_the_next_step_runs(tmp_path):
    gc = load_script()
    check = gc.Check(argparse.Namespace(cache_dir=None), tmp_path)

    def crash(step):
        raise gc.CommandFailed("taskgroup train exited with 1: RuntimeError: CUDA error", ["Traceback ...", "boom"])

    failed = check.run("train tiny on cuda:0", crash)
    assert failed.status == "failed" and failed.reason == ("CommandFailed: taskgroup train exited with 1: "
                                                           "RuntimeError: CUDA error")
    assert failed.detail["stderr_tail"] == ["Traceback ...", "boom"] and failed.detail["traceback"]
    skipped = check.run("bundle tensorrt on cuda:0", lambda s: gc.skip_if("TensorRT cannot be imported"))
    assert skipped.status == "skipped" and skipped.reason == "TensorRT cannot be imported"
    assert [s.name for s in check.steps] == ["train tiny on cuda:0", "bundle tensorrt on cuda:0"]


def test_steps_that_need_a_failed_one_are_skipped_saying_so(tmp_path, monkeypatch):
    gc = load_script()
    ns = argparse.Namespace(cache_dir=None, device="cpu", tasks="depth_zbuffer,normal", workers=2, no_gpu_preset=False)
    check = gc.Check(ns, tmp_path)
    monkeypatch.setattr(gc, "doctor", lambda check, step: None)
    monkeypatch.setattr(gc, "profile_backends", lambda device: [])

    def broken_training(*a, **kw):
        raise gc.CommandFailed("taskgroup train exited with 1: RuntimeError: no", ["RuntimeError: no"])

    monkeypatch.setattr(gc, "train", broken_training)
    gc.run_all(check, ["tiny"])
    got = [(s.name, s.status, s.reason) for s in check.steps[2:]]
    assert got == [
        ("train tiny on cpu", "failed", "CommandFailed: taskgroup train exited with 1: RuntimeError: no"),
        ("train tiny with processes:2 on cpu", "skipped", "training on cpu failed"),
        ("select and export (tiny)", "skipped", "no trained tiny run to export"),
        ("bundle onnxruntime on cpu", "skipped", "no trained tiny run to export"),
        ("bundle onnxruntime on cuda:0", "skipped", "no trained tiny run to export"),
        ("bundle onnxruntime-tensorrt on cuda:0", "skipped", "no trained tiny run to export"),
        ("bundle tensorrt on cuda:0", "skipped", "no trained tiny run to export"),
    ]
