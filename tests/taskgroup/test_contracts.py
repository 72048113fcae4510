"""Every file contract round-trips through its dataclass, and the files in docs/ and profiles/ still load.

Five contracts, one dataclass each with to_json/from_json: the loss table (LossTable), the device
profile (DeviceProfile), the grouping (Grouping), the bundle manifest (runtime Manifest) and the
bench result (BenchResult). For each, a value built from random parts is written and read back:
the same value, and the same document when written again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from fuzzing import fuzz
from taskgroup_runtime.manifest import Manifest
from taskgroup_runtime.measurement import LatencySummary, NetworkLatency
from taskgroup_runtime.provenance import (BackendSettings, BundleSelection, CreatedWith, PredictedLatency, SelectionBudget,
                                          TensorRTRecord, VerificationRecord)
from taskgroup_runtime.specs import (FileEntry, FusedPart, InputSpec, NetworkFiles, OutputCheck,
                                     OutputTransform, TaskOutput)
from taskgroup.bench import BenchResult
from taskgroup.grouping import Budget, Grouping, GroupingEvaluation, GroupingNetwork, SelectionOptions
from taskgroup.grouping_records import (CandidateCounts, ColumnSearch, NearBudget, Optimality, RobustnessRecord,
                                        SolveRecord)
from taskgroup.losstable import LossTable, NetworkResult, SeedResult
from taskgroup.profile.costmodel import DeviceProfile
from taskgroup.profile.measurements import Component, LatencyStats, WidthCosts
from taskgroup.tasks import PAPER_TASKS

REPO = Path(__file__).parents[2]
NAMES = st.text("abcdefghij_", min_size=1, max_size=8)
POSITIVE = st.floats(1e-6, 1e4, allow_nan=False, allow_infinity=False)
LOSS = st.floats(0, 100, allow_nan=False, allow_infinity=False)
JSONISH = st.dictionaries(NAMES, st.one_of(st.integers(-5, 5), st.text(max_size=5), st.none(),
                                           st.lists(st.integers(0, 3), max_size=3)), max_size=3)


def _round_trips(value, read, write="to_json"):
    doc = json.loads(json.dumps(getattr(value, write)(), allow_nan=False))  # through real JSON text
    again = read(doc)
    assert again == value
    assert json.loads(json.dumps(getattr(again, write)())) == doc


# ---- loss table -------------------------------------------------------------------------------

@st.composite
def loss_tables(draw):
    tasks = tuple(draw(st.lists(NAMES, min_size=1, max_size=4, unique=True)))
    seeds = draw(st.sampled_from([(), (0, 1), (0, 3, 7)]))  # a one-seed table keeps the one-seed layout
    networks, keys = [], set()
    for _ in range(draw(st.integers(1, 5))):
        net_tasks = tuple(draw(st.lists(st.sampled_from(tasks), min_size=1, max_size=len(tasks), unique=True)))
        width, stage = draw(st.sampled_from([1.0, 0.5])), draw(st.sampled_from(["final", "early"]))
        if (frozenset(net_tasks), width, stage) in keys:
            continue
        keys.add((frozenset(net_tasks), width, stage))
        losses = {split: {t: draw(LOSS) for t in net_tasks} for split in draw(st.sampled_from([("val",), ("val", "test")]))}
        runs = {s: SeedResult({k: {t: draw(LOSS) for t in v} for k, v in losses.items()}, f"ckpt/{s}.pt",
                              draw(st.integers(0, 999)), draw(LOSS), draw(st.one_of(st.none(), st.just("ab" * 32))))
                for s in seeds}
        networks.append(NetworkResult(net_tasks, width, stage, losses, draw(st.one_of(st.none(), NAMES)),
                                      draw(st.one_of(st.none(), st.integers(0, 10 ** 6))), draw(st.one_of(st.none(), LOSS)),
                                      1.0 if stage == "final" else draw(st.floats(0.05, 1.0)), runs,
                                      draw(st.one_of(st.none(), st.just("cd" * 32))) if seeds else None))
    reference = {t: {"val": draw(LOSS)} for t in tasks if draw(st.booleans())}
    return LossTable(tasks, networks, reference, draw(JSONISH))


@fuzz(40)
@given(table=loss_tables())
def test_the_loss_table_round_trips(table):
    _round_trips(table, lambda doc: LossTable.from_json(doc, "t.json"))


# ---- device profile -----------------------------------------------------------------------------

@st.composite
def latency(draw, rounds: bool = True):
    p50 = draw(POSITIVE)
    p90 = p50 * draw(st.floats(1, 3))
    return LatencyStats(p50, p90, p90 * draw(st.floats(1, 3)), draw(POSITIVE), draw(st.integers(1, 10 ** 5)),
                        tuple(draw(st.lists(POSITIVE, min_size=1, max_size=5))) if rounds and draw(st.booleans()) else None)


@st.composite
def profiles(draw):
    tasks = tuple(draw(st.lists(NAMES, min_size=1, max_size=4, unique=True)))
    component = st.builds(Component, st.integers(0, 10 ** 7), st.integers(0, 10 ** 9), latency(),
                          st.dictionaries(NAMES, st.integers(0, 10 ** 9), max_size=2))
    widths = {}
    for w in [1.0] + draw(st.lists(st.sampled_from([0.25, 0.5, 2.0]), unique=True, max_size=2)):
        widths[w] = WidthCosts(w, draw(component), {t: draw(component) for t in tasks},
                               draw(st.one_of(st.none(), latency())))
    doc = {"kind": "device_profile", "schema_version": 1, "tasks": list(tasks), "preset": draw(NAMES),
           "input_shape": [1, 3, 32, 32], "backend": "onnxruntime", "execution_provider": "CPUExecutionProvider",
           "device": {"kind": "cpu", "cpu_model": draw(NAMES)}, "timing": draw(JSONISH),
           "widths": [wc.to_json() for wc in widths.values()]}
    if draw(st.booleans()):
        doc["corun"] = {"per_extra_network": draw(st.floats(0, 1)), "sequences": draw(st.lists(st.builds(
            lambda n, p50, alone: {"networks": ["w1/net/a"] * n, "p50_ms": p50, "sum_alone_p50_ms": alone,
                                   "ratio": p50 / alone}, st.integers(2, 5), POSITIVE, POSITIVE), max_size=3))}
    if draw(st.booleans()):  # what the profiler records beside the costs
        settings = draw(backend_settings())
        doc.update(backend_settings=settings.to_json() if settings else None, model="xception",
                   model_config={"stem_channels": 8}, libraries={"onnxruntime": "1.32"}, fallback=False,
                   mac_convention="fvcore", standard_network_ms=draw(POSITIVE), duration_s=1.5,
                   validation={"statistic": "p50", "networks": [
                       {"width": 1.0, "served": list(tasks), "params": 10, "macs": 20,
                        "latency_ms": draw(latency()).to_json(), "predicted_ms": 1.0, "relative_error": 0.1}]})
    return DeviceProfile.from_json(doc, "p.json")


@fuzz(40)
@given(profile=profiles())
def test_the_device_profile_round_trips(profile):
    _round_trips(profile, lambda doc: DeviceProfile.from_json(doc, "p.json"))


# ---- grouping -------------------------------------------------------------------------------------

@st.composite
def groupings(draw):
    tasks = tuple(draw(st.permutations(PAPER_TASKS))[: draw(st.integers(1, len(PAPER_TASKS)))])
    cuts = sorted(draw(st.lists(st.integers(1, len(tasks) - 1), unique=True, max_size=len(tasks) - 1))) if len(tasks) > 1 else []
    parts = [tasks[a:b] for a, b in zip([0, *cuts], [*cuts, len(tasks)])]
    unit = draw(st.sampled_from(["ms", "snt"]))
    networks, served_by = [], {}
    for i, served in enumerate(parts):
        extra = tuple(t for t in PAPER_TASKS if t not in served and draw(st.booleans()))
        estimated = draw(st.booleans())
        networks.append(GroupingNetwork(
            served + extra, served, draw(st.sampled_from([1.0, 0.5])), draw(st.sampled_from(["final", "early"])),
            None if estimated else f"checkpoints/net{i}.pt", estimated, draw(st.one_of(st.none(), POSITIVE)),
            draw(st.one_of(st.none(), POSITIVE)), draw(st.one_of(st.none(), st.just({t: 0.5 for t in served}))),
            {t: draw(LOSS) for t in served}, draw(st.one_of(st.none(), st.just("0f" * 32)))))
        served_by.update({t: i for t in served})
    evaluation = None
    if draw(st.booleans()):
        losses = {t: draw(LOSS) for t in tasks}
        evaluation = GroupingEvaluation("test", losses, sum(losses.values()), draw(st.one_of(st.none(), LOSS)))
    budget = Budget(draw(st.one_of(st.none(), POSITIVE)), unit, extra=draw(JSONISH))
    if unit == "ms" and draw(st.booleans()):  # costed on a profile: what selection copies from it
        budget = Budget(budget.value, unit, "p.json", "p", "p50", {"kind": "cpu"}, "onnxruntime", "CPUExecutionProvider",
                        draw(backend_settings()), draw(NAMES), (1, 3, 32, 32), draw(POSITIVE),
                        draw(st.one_of(st.none(), POSITIVE)), draw(JSONISH))
    options = SelectionOptions(**draw(st.fixed_dictionaries({}, optional={
        "losses": NAMES, "split": st.just("val"), "stage": st.sampled_from(["final", "early"]), "estimate": NAMES,
        "normalize": st.sampled_from(["none", "reference"]), "weights": st.just({"a": 2.0}),
        "scales": st.just({"a": 0.5}), "preset": NAMES, "resolution": st.integers(1, 512),
        "max_networks": st.integers(1, 9), "solver": st.just("milp")})), extra=draw(JSONISH))
    # selection's records, typed, each with fields a newer writer added (its `extra`)
    solve = draw(st.one_of(st.none(), st.builds(
        SolveRecord, st.one_of(st.none(), st.integers(1, 9)), st.one_of(st.none(), LOSS), st.just("milp"),
        st.builds(CandidateCounts, st.integers(0, 99), st.integers(0, 99)), LOSS,
        st.builds(Optimality, st.booleans(), LOSS, LOSS, LOSS, st.one_of(st.none(), st.builds(
            ColumnSearch, st.integers(1, 9), LOSS, st.integers(1, 99), st.sampled_from([3, "more than 300,000"])))))))
    near = st.builds(NearBudget, st.lists(NAMES, max_size=2).map(tuple), LOSS, LOSS, LOSS, LOSS, st.booleans())
    robustness = draw(st.one_of(st.none(), st.builds(
        RobustnessRecord, NAMES, LOSS, st.one_of(st.none(), LOSS), LOSS, st.booleans(), LOSS, LOSS, LOSS, LOSS, LOSS,
        st.one_of(st.none(), LOSS), LOSS, st.one_of(st.none(), LOSS), st.lists(near, max_size=2).map(tuple),
        st.one_of(st.none(), POSITIVE), LOSS, st.one_of(st.none(), LOSS), NAMES, JSONISH)))
    robustness = robustness if robustness is None or robustness.standard_network_ms is not None else \
        dataclasses.replace(robustness, holds_from_snt=None, holds_to_snt=None)  # written with the SNT, or not at all
    return Grouping(tasks, budget, tuple(networks), served_by, draw(st.one_of(st.none(), LOSS)),
                    draw(st.one_of(st.none(), LOSS)), draw(st.one_of(st.none(), POSITIVE)), draw(st.floats(1, 2)),
                    options, evaluation, None, draw(JSONISH).copy() | {"newer_writer": 1}, solve=solve,
                    robustness=robustness, within_noise_off=draw(st.one_of(st.none(), NAMES)),
                    warnings=draw(st.one_of(st.none(), st.lists(NAMES, max_size=2).map(tuple))))


def backend_settings():
    return st.one_of(st.none(), st.builds(BackendSettings, st.sampled_from([None, "fp32", "fp16"]),
                                          st.one_of(st.none(), st.booleans()), st.one_of(st.none(), st.integers(0, 8)),
                                          JSONISH))


@fuzz(40)
@given(grouping=groupings())
def test_the_grouping_round_trips(grouping):
    _round_trips(grouping, lambda doc: Grouping.from_json(doc, "best.json"))


# ---- bundle manifest --------------------------------------------------------------------------------

@st.composite
def manifests(draw):
    fused = draw(st.booleans())
    side = draw(st.sampled_from([16, 32]))
    mean, std = tuple(draw(st.lists(st.floats(0, 1), min_size=3, max_size=3))), (0.2, 0.25, 0.3)
    spec = (InputSpec("frame", side, side, "uint8", "NHWC", "RGB", (0.0, 255.0), mean, std, "inside the graph")
            if fused else InputSpec("image", side, side, "float32", "NCHW", "RGB", (0.0, 1.0), mean, std, "inside"))
    tasks = list(draw(st.permutations(PAPER_TASKS))[: draw(st.integers(1, 4))])
    groups = [tasks] if fused else [tasks[:1], tasks[1:]] if len(tasks) > 1 else [tasks]
    networks, outputs, files = [], {}, {}
    for i, served in enumerate(groups):
        name = "fused" if fused else f"net{i}"
        files[f"{name}.onnx"] = FileEntry("a" * 64, draw(st.integers(1, 10 ** 6)))
        networks.append(NetworkFiles(name, tuple(served), f"{name}.onnx", None, None, draw(st.one_of(st.none(), POSITIVE)),
                                     None if fused else tuple(served), None if fused else 1.0, None if fused else "final",
                                     None if fused else f"{name}.pt", {t: OutputCheck(0.0, 1e-4) for t in served},
                                     (FusedPart("net0", tuple(served)),) if fused else None))
        for t in served:
            c = draw(st.integers(1, 8))
            outputs[t] = TaskOutput(t, i, t, c, "float32", draw(st.text(max_size=10)), draw(st.one_of(st.none(), NAMES)),
                                    draw(st.one_of(st.none(), st.just(OutputTransform("none")))), ("N", c, side, side),
                                    draw(st.sampled_from([None, "l1", "cross_entropy"])), None, 1e-4)
    predicted = draw(st.one_of(st.none(), st.builds(PredictedLatency, POSITIVE, st.just("ms"), st.floats(1, 2),
                                                    st.text(max_size=5), JSONISH)))
    selection = draw(st.sampled_from([BundleSelection(), BundleSelection(
        "best.json", "b" * 64, SelectionBudget(draw(st.one_of(st.none(), POSITIVE)), "ms", draw(JSONISH)), "p.json",
        {"kind": "cpu"}, predicted, draw(st.one_of(st.none(), LOSS)), draw(backend_settings()), draw(JSONISH))]))
    return Manifest(None, spec, outputs, tuple(networks), files, draw(st.sampled_from(["fp32", "fp16"])), selection,
                    "fused" if fused else "separate", "2026-12-01T00:00:00+00:00", CreatedWith(onnx="1.23"),
                    draw(st.sampled_from([TensorRTRecord(), TensorRTRecord(False, "no GPU"),
                                          TensorRTRecord(True, None, {"tensorrt": "10.9"})])),
                    VerificationRecord(draw(st.one_of(st.none(), st.integers(1, 64))), "synthetic", "PyTorch eager (CPU)",
                                       extra=draw(JSONISH)), draw(JSONISH))


@fuzz(40)
@given(manifest=manifests())
def test_the_bundle_manifest_round_trips(manifest):
    _round_trips(manifest, Manifest.from_json)
    assert Manifest.from_json(manifest.to_json()).content_sha256 == manifest.to_json()["content_sha256"]


# ---- bench result ---------------------------------------------------------------------------------

@st.composite
def summaries(draw):
    low = draw(POSITIVE)
    p50 = low * draw(st.floats(1, 2))
    p90 = p50 * draw(st.floats(1, 2))
    return LatencySummary(p50, p90, p90 * draw(st.floats(1, 2)), draw(POSITIVE), low, draw(st.integers(1, 10 ** 4)))


@st.composite
def bench_results(draw):
    standalone = tuple(NetworkLatency(f"net{i}", tuple(draw(st.lists(NAMES, min_size=1, max_size=3))), draw(summaries()))
                       for i in range(draw(st.integers(1, 3))))
    unit = draw(st.sampled_from([None, "ms", "snt"]))
    return BenchResult(draw(summaries()), standalone, draw(st.one_of(st.none(), NAMES)),
                       draw(st.sampled_from([None, "sequential", "concurrent"])), "onnxruntime", "cpu",
                       draw(st.integers(1, 8)), None if unit is None else draw(st.one_of(st.none(), POSITIVE)), unit,
                       draw(st.one_of(st.none(), POSITIVE)), draw(JSONISH), draw(JSONISH))


@fuzz(40)
@given(result=bench_results())
def test_the_bench_result_round_trips(result):
    _round_trips(result, lambda doc: BenchResult.from_json(doc, "bench.json"))


# ---- the files the repository ships ------------------------------------------------------------------

@pytest.mark.parametrize("best_path, bench_path", [
    ("docs/example-report/best.json", "docs/example-report/bench.json"),  # as the pipeline writes them today
    # an earlier example report's files: a grouping from before the typed contracts, the pipeline's schema-1 bench
    ("tests/taskgroup/data/legacy/best-before-contracts.json", "tests/taskgroup/data/legacy/bench-schema1.json"),
])
def test_the_example_report_and_profiles_still_load(best_path, bench_path):
    best = Grouping.load(REPO / best_path)
    assert best.networks and best.evaluation is not None and best.cost > 0
    assert Grouping.from_json(best.to_json(), best.path) == best
    bench = BenchResult.load(REPO / bench_path)
    assert bench.predicted_ms > 0 and bench.budget_unit == "ms" and bench.standalone
    assert BenchResult.from_json(bench.to_json()) == bench
    for path in sorted((REPO / "profiles").glob("*.json")):
        profile = DeviceProfile.from_json(json.loads(path.read_text()), str(path))
        assert profile.to_json() == json.loads(path.read_text())  # written back exactly as committed


def test_the_cli_bench_layout_of_schema_1_still_loads():
    row = {"p50_ms": 1.0, "p90_ms": 1.5, "p99_ms": 2.0, "mean_ms": 1.2, "min_ms": 0.9, "runs": 300}
    doc = {"kind": "bundle_benchmark", "schema_version": 1, "bundle": "deploy",
           "whole": {**row, "execution": "sequential", "backend": "onnxruntime", "device": "cpu", "batch": 1},
           "standalone": [{"network": "net0", "tasks": ["normal"], **row}], "standalone_p50_sum_ms": 1.0,
           "budget": {"value": 2.5, "unit": "ms"}, "predicted_latency_ms": 1.1, "runtime": {"backend": "onnxruntime"}}
    result = BenchResult.from_json(doc, "bench.json")
    assert (result.predicted_ms, result.budget_ms, result.execution, result.bundle) == (1.1, 2.5, "sequential", "deploy")
    with pytest.raises(Exception, match="bench.json: field 'whole.p50_ms'"):
        BenchResult.from_json({**doc, "whole": {**doc["whole"], "p50_ms": -1}}, "bench.json")
