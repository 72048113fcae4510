"""The cost model selection reads: exact arithmetic on a hand-written profile, checks, bad files."""

import copy
import json

import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import write_json_atomic
from taskgroup.profile import load_profile, profile_from_doc


def lat(p50, runs=100):
    return {"p50": p50, "p90": p50 * 1.5, "p99": p50 * 2, "mean": p50 * 1.1, "runs": runs}


def part(p50, macs=1000, params=10):
    return {"params": params, "macs": macs, "latency_ms": lat(p50)}


def make_doc():
    return {
        "kind": "device_profile", "schema_version": 1, "preset": "default", "input_shape": [1, 3, 32, 32],
        "tasks": ["normal", "depth_zbuffer", "edge_texture"], "backend": "onnxruntime",
        "execution_provider": "CPUExecutionProvider", "device": {"kind": "cpu"},
        "widths": [
            {"width": 1.0, "trunk": part(2.0, 5000), "session_overhead": lat(0.25),
             "heads": {"normal": part(1.25, 300), "depth_zbuffer": part(0.75, 200), "edge_texture": part(0.5, 100)}},
            {"width": 0.5, "trunk": part(1.0, 2000), "session_overhead": lat(0.25),
             "heads": {"normal": part(0.75, 90), "depth_zbuffer": part(0.5, 60), "edge_texture": part(0.125, 30)}},
        ],
    }


@pytest.fixture
def profile_path(tmp_path):
    path = tmp_path / "cpu-test-default.json"
    write_json_atomic(path, make_doc())
    return path


def test_costs_are_trunk_plus_served_heads_minus_call_overhead(profile_path):
    p = load_profile(profile_path)
    assert p.trunk_ms(1.0) == 2.0 and p.trunk_ms(0.5) == 1.0
    assert p.head_ms(1.0, "normal") == 1.0  # 1.25 measured alone - 0.25 per-call overhead
    assert p.head_ms(0.5, "edge_texture") == 0.0  # never negative
    assert p.network_ms(1.0, ["normal", "depth_zbuffer"]) == 2.0 + 1.0 + 0.5
    assert p.network_ms(0.5, ["depth_zbuffer"]) == 1.25
    assert p.standard_network_ms() == 2.0 + 1.0 + 0.5 + 0.25
    assert p.network_macs(1.0, ["normal", "edge_texture"]) == 5000 + 300 + 100
    assert p.network_params(0.5, ["normal"]) == 20


def test_other_statistic(profile_path):
    p = load_profile(profile_path, statistic="p90")
    assert p.trunk_ms(1.0) == 3.0
    assert p.head_ms(1.0, "normal") == pytest.approx(1.875 - 0.375)
    with pytest.raises(TaskgroupError, match="p50, p90, p99"):
        load_profile(profile_path, statistic="p42")


def test_cost_fn_matches_search_contract(profile_path):
    from taskgroup.search.candidates import make_candidate

    p = load_profile(profile_path)
    fixed, heads = p.cost_fn(1.0, ("normal", "depth_zbuffer"))
    assert fixed == 2.0 and heads == {"normal": 1.0, "depth_zbuffer": 0.5}
    cand = make_candidate(("normal", "depth_zbuffer"), 1.0, {"normal": 0.1, "depth_zbuffer": 0.2}, p.cost_fn)
    # Serving only 'normal' drops the depth head: the cost of a chosen network is its served heads only.
    assert cand.cost(["normal"]) == p.network_ms(1.0, ["normal"]) == 3.0
    assert cand.cost(["normal", "depth_zbuffer"]) == 3.5


def test_check_accepts_matching_needs(profile_path):
    load_profile(profile_path).check(tasks=["normal"], widths=[1.0, 0.5], input_size=32, preset="default")


@pytest.mark.parametrize("kwargs, message", [
    (dict(tasks=["normal", "keypoints2d"]), r"no profiled head for task\(s\) \['keypoints2d'\]; profiled tasks: normal"),
    (dict(widths=[0.25]), r"width\(s\) \[0.25\] were not profiled; profiled widths: 0.5, 1"),
    (dict(input_size=64), "measured at input 32x32, but 64x64"),
    (dict(preset="tiny"), "preset 'default', but 'tiny'"),
])
def test_check_names_the_mismatch_and_file(profile_path, kwargs, message):
    with pytest.raises(TaskgroupError, match=message) as exc:
        load_profile(profile_path).check(**kwargs)
    assert str(profile_path) in str(exc.value)


def test_unknown_width_or_task_in_queries(profile_path):
    p = load_profile(profile_path)
    with pytest.raises(TaskgroupError, match="width 0.75 was not profiled; profiled widths: 0.5, 1"):
        p.trunk_ms(0.75)
    with pytest.raises(TaskgroupError, match="task 'rgb' was not profiled"):
        p.network_ms(1.0, ["rgb"])
    with pytest.raises(TaskgroupError, match="task 'rgb' was not profiled"):
        p.cost_fn(1.0, ("normal", "rgb"))


def _broken(mutate):
    doc = make_doc()
    mutate(doc)
    return doc


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("tasks"), "tasks"),
    (lambda d: d.__setitem__("input_shape", [1, 3, 32]), "input_shape"),
    (lambda d: d["widths"][0]["heads"].pop("normal"), "widths[0].heads"),
    (lambda d: d["widths"][1]["trunk"].__setitem__("macs", -5), "widths[1].trunk.macs"),
    (lambda d: d["widths"][0]["heads"]["normal"]["latency_ms"].__setitem__("p50", "fast"),
     "widths[0].heads.normal.latency_ms.p50"),
    (lambda d: d["widths"][0]["trunk"]["latency_ms"].__setitem__("p99", 0.1), "widths[0].trunk.latency_ms"),
    (lambda d: d["widths"][0]["trunk"]["latency_ms"].__setitem__("runs", 0), "widths[0].trunk.latency_ms.runs"),
    (lambda d: d["widths"].pop(0), "widths"),  # no full width: no standard network
    (lambda d: d["widths"][1].__setitem__("width", 1.0), "widths[1].width"),
    (lambda d: d.__setitem__("kind", "loss_table"), "kind"),
    (lambda d: d.__setitem__("schema_version", 7), "schema_version"),
    (lambda d: d.__setitem__("corun", {"per_extra_network": -0.1}), "corun.per_extra_network"),
    (lambda d: d.__setitem__("corun", [0.1]), "corun"),
])
def test_corrupt_profile_names_file_and_field(tmp_path, mutate, field):
    path = tmp_path / "bad.json"
    write_json_atomic(path, _broken(mutate))
    with pytest.raises(TaskgroupError) as exc:
        load_profile(path)
    assert str(path) in str(exc.value) and f"'{field}'" in str(exc.value)


def test_not_json_or_missing(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"kind": "device_profile", ')
    with pytest.raises(TaskgroupError, match=r"p.json: malformed JSON"):
        load_profile(path)
    with pytest.raises(TaskgroupError, match="no such file"):
        load_profile(tmp_path / "absent.json")


def test_document_round_trip_is_lossless(profile_path):
    doc = json.loads(profile_path.read_text())
    assert profile_from_doc(copy.deepcopy(doc)).standard_network_ms() == load_profile(profile_path).standard_network_ms()


def test_loading_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, taskgroup.profile as p; from taskgroup.profile import load_profile; "
            "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)
