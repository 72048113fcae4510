"""bench.json holds the runtime's own latency records: what `Bundle.measure` returns is what is written,
and the file reads back to the same records; bench files on disk keep their layout."""

import json
from pathlib import Path

import pytest

from taskgroup.bench import BenchResult, measure_bundle
from taskgroup.errors import SchemaError
from taskgroup_runtime.measurement import FrameLatency, LatencySummary, Measurement, NetworkLatency
from taskgroup_runtime.timing import TimingConfig

REPO = Path(__file__).parents[2]


def _measurement() -> Measurement:
    whole = LatencySummary(2.0, 2.5, 3.0, 2.1, 1.9, 300)
    alone = (NetworkLatency("net0", ("depth_zbuffer",), LatencySummary(0.8, 0.9, 1.0, 0.85, 0.7, 300)),
             NetworkLatency("net1", ("normal", "edge_texture"), LatencySummary(1.0, 1.2, 1.4, 1.05, 0.9, 300)))
    return Measurement(whole, "sequential", "onnxruntime", "cpu", 1, alone, TimingConfig(warmup_runs=20, min_runs=300))


def test_the_bench_file_holds_the_runtimes_records():
    measured = _measurement()
    result = BenchResult(measured.whole, measured.standalone, "deploy", measured.execution, measured.backend,
                         measured.device, measured.batch, 12.0, "ms", 2.2, measured.timing_json(), {})
    doc = result.to_json()
    # The runtime's measurement and the bench file lay the latencies out identically.
    assert doc["whole"] == measured.to_json()["whole"] and doc["standalone"] == measured.to_json()["standalone"]
    assert doc["timing"] == measured.to_json()["timing"]
    back = BenchResult.from_json(json.loads(json.dumps(doc)), "bench.json")
    assert back == result and type(back.whole) is LatencySummary and type(back.standalone[0]) is NetworkLatency


def test_frame_latency_is_the_whole_bundle_entry():
    latency = LatencySummary(2.0, 2.5, 3.0, 2.1, 1.9, 30)
    frame = FrameLatency(latency, "sequential", "onnxruntime", "cpu", 1)
    assert frame.to_json() == {**latency.to_json(), "execution": "sequential", "backend": "onnxruntime",
                               "device": "cpu", "batch": 1}
    assert list(latency.to_json()) == ["p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "runs"]


def test_old_bench_files_load_into_the_same_records():
    old = BenchResult.load(REPO / "tests/taskgroup/data/legacy/bench-schema1.json")
    assert type(old.whole) is LatencySummary and all(type(n) is NetworkLatency for n in old.standalone)
    doc = {"kind": "bundle_benchmark", "schema_version": 2, "standalone": [],
           "whole": {"p50_ms": 2.0, "p90_ms": 2.5, "p99_ms": 3.0, "mean_ms": 2.1, "runs": 10}}
    assert BenchResult.from_json(doc, "bench.json").whole.min_ms == 2.0  # before min_ms was recorded: the p50
    with pytest.raises(SchemaError, match="bench.json: field 'whole.runs'"):
        BenchResult.from_json({**doc, "whole": {**doc["whole"], "runs": 0}}, "bench.json")


def test_measure_bundle_writes_what_the_runtime_measured(tiny_bundle_for_bench):
    result = measure_bundle(tiny_bundle_for_bench, runs=10)
    assert type(result.whole) is LatencySummary and [n.network for n in result.standalone] == ["net0", "net1"]
    assert result.whole.runs >= 10 and result.timing["interleaved"] is True


@pytest.fixture(scope="module")
def tiny_bundle_for_bench(tmp_path_factory) -> Path:
    import sys

    sys.path.insert(0, str(REPO / "tests" / "exporters"))
    from bundle_fixtures import make_grouping
    from taskgroup_exporters import export_bundle

    root = tmp_path_factory.mktemp("grouping")
    return export_bundle(make_grouping(root), root / "deploy", resolution=16, fuse=False)
