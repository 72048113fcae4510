"""End-to-end profiling on the tiny preset with a short timing budget (structure and numbers, not speed)."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("fvcore")
pytest.importorskip("onnxruntime")

from taskgroup.errors import TaskgroupError  # noqa: E402
from taskgroup.profile import load_profile  # noqa: E402
from taskgroup.profile.profiler import (ProfileConfig, default_profile_name, run_profile, sample_served,  # noqa: E402
                                        write_profile)
from taskgroup_runtime.timing import TimingConfig  # noqa: E402

QUICK = TimingConfig(warmup_runs=1, min_runs=5, min_seconds=0.0, rounds=2)
TASKS = ("normal", "segment_semantic", "depth_zbuffer")


@pytest.fixture(scope="module")
def ort_profile():
    return run_profile(ProfileConfig(preset="tiny", tasks=TASKS, widths=(1.0, 0.5), timing=QUICK,
                                     validation_networks=3))


def test_onnxruntime_profile_contents(ort_profile, tmp_path):
    doc = ort_profile.to_json()  # what is written
    assert doc["backend"] == "onnxruntime" and doc["execution_provider"] == "CPUExecutionProvider"
    assert doc["fallback"] is False and doc["input_shape"] == [1, 3, 16, 16] and doc["tasks"] == list(TASKS)
    assert doc["backend_settings"]["intra_op_num_threads"] == 1
    assert doc["device"]["cpu_model"] and doc["libraries"]["onnxruntime"]
    assert doc["onnx"]["max_abs_diff_vs_torch"] < 1e-3 and doc["onnx"]["opset"] >= 18
    full, half = doc["widths"]
    assert full["trunk"]["macs"] == 21856  # hand-computed in test_macs
    assert half["trunk"]["macs"] < full["trunk"]["macs"]
    for w in doc["widths"]:
        for part in [w["trunk"], *w["heads"].values(), w["session_overhead"]]:
            lat = part["latency_ms"] if "latency_ms" in part else part
            assert lat["runs"] >= QUICK.min_runs and 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    nets = doc["validation"]["networks"]
    assert len(nets) == 6 and nets[0]["served"] == list(TASKS) and len(nets[1]["served"]) == 1
    for v in nets:
        w = full if v["width"] == 1.0 else half
        assert v["macs"] == w["trunk"]["macs"] + sum(w["heads"][t]["macs"] for t in v["served"])
        assert v["relative_error"] == pytest.approx((v["predicted_ms"] - v["latency_ms"]["p50"]) / v["latency_ms"]["p50"])
    assert doc["validation"]["max_abs_relative_error"] == max(abs(v["relative_error"]) for v in nets)
    corun = doc["corun"]  # whole networks run back to back, 2 to 5 of them, alternating widths
    assert [len(q["networks"]) for q in corun["sequences"]] == [2, 3, 4, 5]
    assert corun["sequences"][0]["networks"][0].startswith("w1/") and corun["sequences"][0]["networks"][1].startswith("w0.5/")
    for q in corun["sequences"]:
        assert q["ratio"] == pytest.approx(q["p50_ms"] / q["sum_alone_p50_ms"])
    assert corun["per_extra_network"] >= 0

    path = tmp_path / f"{default_profile_name(ort_profile)}.json"
    assert path.name.startswith("cpu-") and path.name.endswith("-tiny.json")
    write_profile(ort_profile, path)
    p = load_profile(path)
    assert p.standard_network_ms() == pytest.approx(doc["standard_network_ms"])
    p.check(tasks=TASKS, widths=[1.0, 0.5], input_size=16, preset="tiny")
    assert json.loads(path.read_text())["kind"] == "device_profile"
    assert p.corun == corun["per_extra_network"] and p.corun_factor(3) == pytest.approx(1 + 2 * p.corun)


def test_corun_fit_is_least_squares_through_the_origin_and_never_negative():
    from taskgroup.profile.profiler import corun_fit

    rows = [{"networks": ["a", "b"], "p50_ms": 1.1, "sum_alone_p50_ms": 1.0},
            {"networks": ["a", "b", "c"], "p50_ms": 2.4, "sum_alone_p50_ms": 2.0}]
    assert corun_fit(rows)["per_extra_network"] == pytest.approx((0.1 * 1 + 0.2 * 2) / (1 + 4))
    faster = [{"networks": ["a", "b"], "p50_ms": 0.9, "sum_alone_p50_ms": 1.0}]
    assert corun_fit(faster)["per_extra_network"] == 0.0


def test_torch_backend_profile():
    profile = run_profile(ProfileConfig(backend="torch", preset="tiny", tasks=TASKS[:2], widths=(1.0,), timing=QUICK,
                                        validation_networks=2))
    doc = profile.to_json()
    assert doc["backend"] == "torch" and doc["execution_provider"] == "torch-cpu" and doc["onnx"] is None
    assert doc["widths"][0]["session_overhead"]["runs"] >= QUICK.min_runs  # an nn.Identity call
    assert default_profile_name(profile).endswith("-tiny-torch")


def test_invalid_write_leaves_no_file(ort_profile, tmp_path):
    import dataclasses

    bad = dataclasses.replace(ort_profile, tasks=())
    path = tmp_path / "p.json"
    with pytest.raises(TaskgroupError, match="'tasks'"):
        write_profile(bad, path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("config, message", [
    (ProfileConfig(device="tpu"), "unknown device 'tpu'; valid devices here: cpu"),
    (ProfileConfig(widths=(0.5,)), "must include 1.0"),
    (ProfileConfig(tasks=("normal", "sonar")), "unknown task 'sonar'"),
    (ProfileConfig(backend="tensorrt"), "needs a CUDA device"),
    (ProfileConfig(preset="huge"), "unknown preset 'huge'"),
])
def test_bad_configs(config, message):
    with pytest.raises(TaskgroupError, match=message):
        run_profile(config)


def test_sample_served_is_distinct_and_deterministic():
    import random

    tasks = tuple("abcdefghi")
    a = sample_served(tasks, 4, random.Random(0))
    assert a == sample_served(tasks, 4, random.Random(0))
    assert a[0] == tasks and a[1] == ("a",) and len(set(a)) == 4 and all(1 < len(s) < 9 for s in a[2:])
    assert sample_served(("a",), 4, random.Random(0)) == [("a",)]


def test_an_explicit_architecture_overrides_the_presets():
    import dataclasses

    from taskgroup.presets import get_arch_preset

    arch = get_arch_preset("tiny")
    wider = dataclasses.replace(arch, model_config={**arch.model_config, "stem_channels": 12})
    doc = run_profile(ProfileConfig(backend="torch", preset="tiny", tasks=TASKS[:1], widths=(1.0,), timing=QUICK,
                                    validation_networks=1, arch=wider)).to_json()
    assert doc["model_config"]["stem_channels"] == 12


def test_fp16_profile_times_the_graphs_export_converts():
    doc = run_profile(ProfileConfig(preset="tiny", tasks=TASKS[:1], widths=(1.0,), timing=QUICK, validation_networks=1,
                                    precision="fp16")).to_json()
    assert doc["backend_settings"]["precision"] == "fp16" and doc["backend_settings"]["intra_op_num_threads"] == 1
    assert 1e-5 < doc["onnx"]["max_abs_diff_vs_torch"] < 3e-2  # fp16 rounding (fp32: ~1e-7), within export's tolerance
    with pytest.raises(TaskgroupError, match="fp16.*not torch"):
        run_profile(ProfileConfig(backend="torch", preset="tiny", precision="fp16"))
