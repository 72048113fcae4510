"""One-run affinity from the command line: `train --candidates affinity`, `results`, `select --estimate
tag|cosine`, and the pipeline with `--candidates affinity` on the tiny preset."""

import json

import pytest
from cli_process import run_taskgroup as run_cli

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable
from taskgroup.pipeline.run import Pipeline, PipelineConfig

TASKS = "segment_semantic,depth_zbuffer,normal"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One rendered-data cache for the module: the tiny scenes are rendered once."""
    return tmp_path_factory.mktemp("cache")


def test_train_candidates_affinity_then_select_with_tag_and_cosine(tmp_path, cache):
    config = tmp_path / "cfg.toml"
    config.write_text("[train]\nepochs = 3\naffinity_every = 4\n")
    run = tmp_path / "run"
    out = run_cli("train", "--tasks", TASKS, "--candidates", "affinity", "--preset", "tiny", "--config", config,
                  "--out", run, cache=cache)
    assert out.returncode == 0, out.stderr
    table = LossTable.load(run)
    assert len(table.networks) == 7 and table.affinity is not None
    assert table.affinity.tasks == tuple(TASKS.split(",")) and table.affinity.runs[0].every == 4
    assert "lookahead affinity" in out.stdout and "cosine similarity" in out.stdout
    shown = run_cli("results", run)
    assert shown.returncode == 0 and "lookahead affinity" in shown.stdout
    for kind in ("tag", "cosine"):
        best = tmp_path / f"{kind}.json"
        sel = run_cli("select", "--losses", run, "--budget", "1.5", "--estimate", kind, "--out", best)
        assert sel.returncode == 0, sel.stderr
        doc = json.loads(best.read_text())
        assert doc["cost"] <= 1.5 and set(doc["served_by"]) == set(TASKS.split(","))
    # HOA has no pairs to work from here, and an affinity estimate needs the affinity run
    plain = tmp_path / "plain.json"
    LossTable(table.tasks, table.networks, table.reference_losses, table.meta).save(plain)
    bad = run_cli("select", "--losses", plain, "--budget", "1.5", "--estimate", "cosine", "--out", tmp_path / "x.json")
    assert bad.returncode == 2 and "no affinity table" in bad.stderr and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("options, message", [
    (dict(candidates="affinity", estimate="hoa"), "trains no pairs"),
    (dict(candidates="pairs", estimate="tag"), "use it with --candidates affinity"),
])
def test_pipeline_estimator_must_fit_the_candidates(tmp_path, options, message):
    with pytest.raises(TaskgroupError, match=message):
        Pipeline(tmp_path / "run", PipelineConfig(**options))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_pipeline_with_affinity_candidates(tmp_path, cache):
    config = tmp_path / "cfg.toml"
    config.write_text("[train]\nepochs = 4\n")
    run = tmp_path / "run"
    out = run_cli("pipeline", "--preset", "tiny", "--config", config, "--tasks", TASKS, "--candidates", "affinity",
                  "--random-baselines", "0", "--out", run, cache=cache, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    state = json.loads((run / "pipeline.json").read_text())
    assert state["config"]["candidates"] == "affinity" and state["config"]["estimate"] == "tag"
    table = LossTable.load(run / "train")
    assert table.affinity is not None
    best = json.loads((run / "best.json").read_text())
    for n in best["networks"]:  # the finalize stage trained every chosen network
        assert not n["estimated"] and n["checkpoint"]
    report = (run / "report" / "report.md").read_text()
    assert "## Inter-task affinity" in report and "explained by affinity" in report
    assert "lookahead affinity (TAG)" in report
