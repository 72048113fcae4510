"""Base-model estimation and adaptive rounds from the command line on the tiny preset: `train --candidates
base|rounds`, `select --estimate base|rounds`, and the pipeline with each."""

import json

import pytest
from cli_process import run_taskgroup as run_cli

from taskgroup.losstable import LossTable

TASKS = "segment_semantic,depth_zbuffer,normal"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "cfg.toml"
    path.write_text("[train]\nepochs = 3\naffinity_every = 4\n")
    return path


def test_train_base_trains_two_networks_and_select_estimates_the_rest(tmp_path, cache, short):
    run = tmp_path / "run"
    out = run_cli("train", "--tasks", TASKS, "--candidates", "base", "--preset", "tiny", "--config", short, "--out", run,
                  cache=cache)
    assert out.returncode == 0, out.stderr
    table = LossTable.load(run)
    assert sorted((n.width, len(n.tasks)) for n in table.networks) == [(0.5, 3), (1.0, 3)]
    assert table.affinity is not None and table.affinity.width == 1.0
    best = tmp_path / "best.json"
    sel = run_cli("select", "--losses", run, "--budget", "2", "--estimate", "base", "--out", best)
    assert sel.returncode == 0, sel.stderr
    doc = json.loads(best.read_text())
    assert doc["cost"] <= 2 and set(doc["served_by"]) == set(TASKS.split(","))
    front = run_cli("frontier", "--losses", run, "--estimate", "base", "--out", tmp_path / "front.json")
    assert front.returncode == 0, front.stderr


def test_train_rounds_then_select_among_measured_networks(tmp_path, cache, short):
    run = tmp_path / "run"
    out = run_cli("train", "--tasks", TASKS, "--candidates", "rounds", "--budget", "1.25-2", "--tolerance", "0.05",
                  "--confidence", "0.5", "--preset", "tiny", "--config", short, "--out", run, cache=cache)
    assert out.returncode == 0, out.stderr
    table = LossTable.load(run)
    early = [n for n in table.networks if n.stage == "early"]
    final = [n for n in table.networks if n.stage == "final"]
    assert len(early) == 10 and 1 <= len(final) <= 10 and table.meta["run_config"]["esa_fraction"] == 0.1
    log = json.loads((run / "rounds.json").read_text())
    assert log["done"] and all(r["finished"] for r in log["rounds"])
    best = tmp_path / "best.json"
    sel = run_cli("select", "--losses", run, "--budget", "1.5", "--estimate", "rounds", "--evaluate-split", "test",
                  "--out", best)
    assert sel.returncode == 0, sel.stderr
    doc = json.loads(best.read_text())
    assert all(not n["estimated"] for n in doc["networks"]) and "evaluated_total" in doc
    again = run_cli("train", "--out", run, "--resume", cache=cache)  # resumes in rounds, with the recorded settings
    assert again.returncode == 0, again.stderr
    assert "rounds done" in again.stderr
    assert len([n for n in LossTable.load(run).networks if n.stage == "final"]) == len(final)  # nothing left to train


@pytest.mark.slow
@pytest.mark.parametrize("candidates", ["base", "rounds"])
def test_pipeline_with_base_and_rounds(tmp_path, cache, short, candidates):
    run = tmp_path / "run"
    out = run_cli("pipeline", "--preset", "tiny", "--config", short, "--tasks", "depth_zbuffer,normal",
                  "--candidates", candidates,
                  "--budget-snt", "1.6", "--random-baselines", "0", "--out", run, cache=cache)
    assert out.returncode == 0, out.stdout + out.stderr
    state = json.loads((run / "pipeline.json").read_text())
    assert state["config"]["estimate"] == candidates
    best = json.loads((run / "best.json").read_text())
    assert all(not n["estimated"] and n["checkpoint"] for n in best["networks"])
    report = (run / "report" / "report.md").read_text()
    assert {"base": "base-model estimation", "rounds": "adaptive training in rounds"}[candidates] in report
    if candidates == "rounds":
        assert (run / "train" / "rounds.json").is_file()
