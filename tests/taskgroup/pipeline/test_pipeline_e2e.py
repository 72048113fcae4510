"""End to end: the tiny pipeline, interrupted after training and resumed, yields a
consistent set of artefacts and repeats no finished stage."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskgroup.fileio import read_json
from taskgroup.losstable import LossTable
from taskgroup.pipeline.config import DEFAULT_BUDGET_SNT

pytestmark = pytest.mark.slow


def _pipeline(out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, TASKGROUP_CACHE=str(out.parent / "cache"))
    return subprocess.Popen([sys.executable, "-m", "taskgroup", "pipeline", "--preset", "tiny", "--out", str(out),
                             "--random-baselines", "2", "--top-k", "3", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finished(out: Path) -> dict:
    try:
        return json.loads((out / "pipeline.json").read_text())["finished"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pipeline") / "run"
    proc = _pipeline(out)
    deadline = time.time() + 600
    while "candidates" not in _finished(out):
        assert proc.poll() is None, f"pipeline ended early:\n{proc.stdout.read()}"
        assert time.time() < deadline, "pipeline did not finish training in time"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p: p.stat().st_mtime_ns for p in [out / "profile.json", *(out / "train" / "checkpoints").glob("*.pt")]}
    assert "report" not in _finished(out)
    # What an export killed midway leaves: its temporary directories, removed by the resumed run.
    (out / ".bundle.k1ll3d.partial").mkdir()
    (out / ".bundle.k1ll3d.partial" / "net0.onnx").write_bytes(b"half")
    (out / ".bundle.0ld.old").mkdir()

    # Resumed with another executor (results do not depend on it): finalize and baselines train in
    # two worker processes, started once for both stages.
    proc = _pipeline(out, "--resume", "--executor", "processes:2")
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    assert "[profile] already finished" in output and "[candidates] already finished" in output
    assert f"on {socket.gethostname()} cpu)" in " ".join(output.split())  # trained by the workers (lines may wrap)
    for path, mtime in before.items():  # finished stages and trained candidates were not redone
        assert path.stat().st_mtime_ns == mtime, f"{path} was rewritten on resume"
    assert not list(out.glob(".bundle.*"))
    return out


def test_every_artefact_exists(run_dir):
    for name in ["profile.json", "train/losses.json", "selected.json", "frontier.json", "best.json",
                 "baselines.json", "bench.json", "bundle/manifest.json", "report/report.md",
                 "report/pairwise_gains.png", "report/frontier.png", "report/task_losses.png"]:
        assert (run_dir / name).is_file(), name
        assert (run_dir / name).stat().st_size > 0, name
    assert set(_finished(run_dir)) == {"profile", "candidates", "select", "finalize", "baselines", "export", "bench",
                                       "report"}


def test_grouping_fits_budget_and_serves_every_task_once(run_dir):
    best = read_json(run_dir / "best.json", "grouping")
    tasks = best["tasks"]
    served = [t for n in best["networks"] for t in n["served"]]
    assert sorted(served) == sorted(tasks)
    assert best["cost"] <= best["budget"]["value"] * (1 + 1e-9)
    assert math.isclose(best["budget"]["value"], DEFAULT_BUDGET_SNT * best["budget"]["standard_network_ms"], rel_tol=1e-9)
    # Predicted = the networks' costs summed x the profile's measured co-run factor for that many networks.
    corun = read_json(run_dir / "profile.json", "device_profile")["corun"]["per_extra_network"]
    assert math.isclose(best["corun_factor"], 1 + corun * (len(best["networks"]) - 1), rel_tol=1e-9)
    assert math.isclose(best["cost"], best["corun_factor"] * sum(n["cost"] for n in best["networks"]), rel_tol=1e-9)
    assert math.isclose(best["evaluated_total"], sum(best["evaluated_losses"].values()), rel_tol=1e-9)
    for n in best["networks"]:  # fully trained: a checkpoint, final stage, not estimated
        assert n["stage"] == "final" and not n["estimated"]
        assert (run_dir / n["checkpoint"]).is_file()


def test_bundle_serves_the_grouping(run_dir):
    from taskgroup_runtime import load_bundle

    best = read_json(run_dir / "best.json", "grouping")
    manifest = json.loads((run_dir / "bundle" / "manifest.json").read_text())
    with load_bundle(run_dir / "bundle") as bundle:
        outputs = bundle.run(bundle.example_frame())
    assert set(outputs) == set(best["tasks"])
    assert manifest["selection"]["budget"]["unit"] == "ms"
    assert math.isclose(manifest["selection"]["predicted_latency"]["value"], best["cost"], rel_tol=1e-9)


def test_baselines_and_report_agree_with_the_files(run_dir):
    best = read_json(run_dir / "best.json", "grouping")
    baselines = read_json(run_dir / "baselines.json", "baselines")["baselines"]
    names = [b["name"] for b in baselines]
    assert names[0] == "one network" and any(n.startswith("random") for n in names)
    report = (run_dir / "report" / "report.md").read_text()
    assert f"{best['evaluated_total']:.5f}" in report
    # The pipeline ranks by the reference-normalised objective by default: each loss over its trivial predictor's.
    reference = LossTable.load(run_dir / "train").reference_losses

    def score(losses):
        return sum(v / reference[t]["test"] for t, v in losses.items())

    for b in baselines:
        assert f"| {b['name']} |" in report and f"{b['total']:.5f}" in report
        lower = f"'{b['name']}' fits the budget and has a LOWER normalised test objective"
        if b["cost_ms"] <= best["budget"]["value"] and score(b["test_losses"]) < score(best["evaluated_losses"]):
            assert lower in report
        else:
            assert lower not in report
    from taskgroup.bench import BenchResult

    bench = BenchResult.load(run_dir / "bench.json")
    assert f"{bench.whole.p50_ms:.3f} ms" in report
    assert bench.predicted_ms == pytest.approx(best["cost"]) and bench.budget_ms == pytest.approx(best["budget"]["value"])


def test_the_report_assembled_again_from_the_run_files_is_the_same(run_dir, tmp_path):
    """The report is gathered from the finished stages' files alone: rebuilt later, it is byte for byte
    the one the run wrote (figures included)."""
    from taskgroup.pipeline.config import PipelineConfig
    from taskgroup.pipeline.context import RunContext
    from taskgroup.pipeline.report import write_report
    from taskgroup.pipeline.report_assembly import assemble_report

    ctx = RunContext(run_dir, PipelineConfig(preset="tiny", random_baselines=2, top_k=3), say=lambda _: None)
    try:
        write_report(tmp_path, assemble_report(ctx))
    finally:
        ctx.executor.close()
    written = sorted(p.name for p in (run_dir / "report").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "report").iterdir()) and "report.md" in written
    for name in written:
        assert (tmp_path / "report" / name).read_bytes() == (run_dir / "report" / name).read_bytes(), name


def test_top_k_re_ranking_trains_every_estimated_network_once_and_reports_its_error(run_dir):
    selected = read_json(run_dir / "selected.json", "grouping")
    best = read_json(run_dir / "best.json", "grouping")
    assert 1 <= len(selected["top_k"]) <= 3
    estimated = {("+".join(n["tasks"]) + f"@{n['width']:g}") for g in selected["top_k"] for n in g["networks"]
                 if n["estimated"]}
    table = LossTable.load(run_dir / "train")
    trained = {n.name for n in table.networks if n.stage == "final"}
    assert estimated <= trained  # finalize trained every network of the k groupings
    assert all(not n["estimated"] for n in best["networks"])  # the final choice is among measured networks
    assert {e["network"] for e in best["estimate_errors"]} == estimated
    report = (run_dir / "report" / "report.md").read_text()
    if estimated:
        assert "## Estimates against the trained networks" in report


def test_resume_of_a_finished_run_repeats_nothing(run_dir):
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")
              if p.is_file() and p.name not in ("pipeline.json", ".lock")}
    proc = _pipeline(run_dir, "--resume")
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert all(f"[{s}] already finished" in output for s in _finished(run_dir))
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_refuses_a_non_empty_directory_and_changed_settings(run_dir):
    proc = _pipeline(run_dir)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "not empty" in output
    proc = _pipeline(run_dir, "--resume", "--seed", "3")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "different settings" in output


def test_esa_pipeline_selects_on_early_losses_and_ships_fully_trained_networks(tmp_path):
    out = tmp_path / "esa"
    proc = _pipeline(out, "--esa", "0.5", "--random-baselines", "1")
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output
    selected = read_json(out / "selected.json", "grouping")
    assert {n["stage"] for n in selected["networks"] if not n["estimated"]} <= {"early"}
    best = read_json(out / "best.json", "grouping")
    assert all(n["stage"] == "final" and n["checkpoint"] for n in best["networks"])
    assert (out / "report" / "report.md").is_file()


def test_an_impossible_budget_fails_before_any_training(tmp_path):
    out = tmp_path / "singles"
    # Five half-width singles cost about 1.2 SNT, on either side of it from one profile to the next
    # (the default budget was met by a cheap profile); 0.9 SNT is well below them.
    proc = _pipeline(out, "--candidates", "singles", "--budget-snt", "0.9")
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, output
    assert "below the cheapest grouping these candidates allow" in output and "--resume" in output
    assert "profile" in _finished(out) and "candidates" not in _finished(out)
    assert not list(out.glob("train/checkpoints/*.pt"))
