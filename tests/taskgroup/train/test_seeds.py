"""Seeds as an axis of a run: per-seed rows, mean/std/count in the loss table, resume per seed."""

import json
import math
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable
from taskgroup.train import candidate_set, make_run_config, train_candidates
from taskgroup.train.run import parse_seeds
from taskgroup.train.trainer import RunData

TASKS = ("segment_semantic", "depth_zbuffer")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def data(fake_splits):
    return RunData.from_splits(TASKS, *fake_splits)


def cfg(**kw):
    return make_run_config("tiny", overrides={"train": {"epochs": 2, "batch_size": 16}}, **kw)


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_two_seed_table_is_the_mean_of_two_one_seed_runs(tmp_path, data):
    specs = candidate_set("singles", TASKS)[:3]
    both = train_candidates(tmp_path / "both", TASKS, specs, cfg(), data=data, seeds=(0, 1))
    one = {s: train_candidates(tmp_path / f"s{s}", TASKS, specs, cfg(seed=s), data=data) for s in (0, 1)}
    assert both.seed_values() == [0, 1] and both.meta["seeds"] == [0, 1]
    for net in both.networks:
        single = {s: next(n for n in one[s].networks if n.key == net.key) for s in (0, 1)}
        assert net.n_seeds == 2
        for split in ("val", "test"):
            for t in net.tasks:
                values = [single[0].losses[split][t], single[1].losses[split][t]]
                assert net.per_seed(split, t) == {0: values[0], 1: values[1]}
                assert net.losses[split][t] == pytest.approx(sum(values) / 2, rel=1e-15)
                assert net.std(split, t) == pytest.approx(statistics.stdev(values), rel=1e-12)
        # the table's checkpoint is the seed with the lower validation total; weights equal the one-seed run's
        best = min((0, 1), key=lambda s: (math.fsum(single[s].losses["val"].values()), s))
        assert net.checkpoint == net.seeds[best].checkpoint
        for s in (0, 1):
            a, b = weights(tmp_path / "both" / net.seeds[s].checkpoint), weights(tmp_path / f"s{s}" / single[s].checkpoint)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the JSON file round-trips the per-seed values, and gives mean, std and count per network
    loaded = LossTable.load(tmp_path / "both")
    assert [n.seeds for n in loaded.networks] == [n.seeds for n in both.networks]
    doc = json.loads((tmp_path / "both" / "losses.json").read_text())
    entry = doc["networks"][0]
    assert entry["n_seeds"] == 2 and set(entry["seeds"]) == {"0", "1"}
    t = entry["tasks"][0]
    assert entry["loss_std"]["val"][t] == pytest.approx(both.networks[0].std("val", t))


def test_one_seed_table_keeps_its_layout(tmp_path, data):
    table = train_candidates(tmp_path / "r", TASKS, candidate_set("singles", TASKS)[:1], cfg(seed=4), data=data)
    doc = json.loads((tmp_path / "r" / "losses.json").read_text())
    assert set(doc["networks"][0]) == {"tasks", "width", "stage", "fraction", "losses", "checkpoint", "steps",
                                       "wall_time_s"}
    assert "seeds" not in doc["meta"] and doc["meta"]["run_config"]["seed"] == 4
    assert doc["networks"][0]["checkpoint"] == "checkpoints/segment_semantic_w1_final.pt"
    assert table.networks[0].seeds.keys() == {4}


def test_resume_adds_seeds_without_touching_finished_ones(tmp_path, data):
    run = tmp_path / "run"
    specs = candidate_set("singles", TASKS)[:2]
    train_candidates(run, TASKS, specs, cfg(), data=data)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    table = train_candidates(run, TASKS, specs, cfg(), data=data, seeds=(0, 2), resume=True)
    after = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    assert {k: after[k] for k in before} == before
    assert sorted(after) == sorted([*before, "segment_semantic_w1_s2_final.pt", "depth_zbuffer_w1_s2_final.pt"])
    assert all(n.seeds.keys() == {0, 2} for n in table.networks)


def test_seed_lists_are_parsed_and_checked():
    assert parse_seeds("0,1,2") == (0, 1, 2) and parse_seeds("3-5") == (3, 4, 5) and parse_seeds("7") == (7,)
    for bad, match in (("a", "not a seed"), ("1,1", "twice"), ("-1", "not a seed"), ("", "at least one")):
        with pytest.raises(TaskgroupError, match=match):
            parse_seeds(bad)


def test_a_run_made_before_a_recipe_field_existed_resumes(tmp_path, data):
    """A field added to the config later compares at its default, which reproduces the old behaviour."""
    run = tmp_path / "run"
    train_candidates(run, TASKS, candidate_set("singles", TASKS)[:1], cfg(), data=data)
    con = sqlite3.connect(run / "runs.sqlite")
    config = json.loads(con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
    del config["train"]["lr_schedule"]
    del config["declared_tasks"]  # written before task declarations existed
    con.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(config),))
    con.commit()
    con.close()
    table = train_candidates(run, TASKS, candidate_set("singles", TASKS)[:2], cfg(), data=data, resume=True)
    assert len(table.networks) == 2
    cosine = make_run_config("tiny", overrides={"train": {"epochs": 2, "batch_size": 16, "lr_schedule": "cosine"}})
    with pytest.raises(TaskgroupError, match="lr_schedule"):
        train_candidates(run, TASKS, candidate_set("singles", TASKS)[:2], cosine, data=data, resume=True)


def _rows(db):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return (con.execute("SELECT name, seed, stage, losses, checkpoint, checkpoint_sha256 FROM results "
                                "ORDER BY name, seed, stage").fetchall(),
                    con.execute("SELECT seed FROM candidates WHERE status = 'running'").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return [], []


@pytest.mark.slow
def test_kill_9_mid_seed_loses_no_finished_seed(tmp_path, tiny_config_factory):
    """Killed while training the second seed: every committed network of the first seed survives."""
    cfg_file = tmp_path / "cfg.toml"
    cfg_file.write_text(f'[data]\ncache_dir = "{tiny_config_factory.cache}"\n[train]\nepochs = 3\n')
    run = tmp_path / "run"
    args = ["train", "--tasks", "depth_zbuffer,normal", "--candidates", "singles", "--preset", "tiny",
            "--config", str(cfg_file), "--out", str(run), "--seeds", "0,1"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "taskgroup", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        done, running = _rows(run / "runs.sqlite")
        if (1,) in running and len([r for r in done if r[1] == 0]) == 4:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished, running = _rows(run / "runs.sqlite")
    assert len([r for r in finished if r[1] == 0]) == 4 and (1,) in running, "not killed during the second seed"
    ckpts = {r[4]: (run / r[4]).read_bytes() for r in finished}
    out = subprocess.run([sys.executable, "-m", "taskgroup", *args, "--resume"], capture_output=True, text=True,
                         env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    after, running = _rows(run / "runs.sqlite")
    assert [r for r in after if (r[0], r[1]) in {(f[0], f[1]) for f in finished}] == finished
    assert {k: (run / k).read_bytes() for k in ckpts} == ckpts and not running
    table = LossTable.load(run)
    assert len(table.networks) == 4 and all(n.n_seeds == 2 for n in table.networks)


def test_a_huge_seed_range_is_refused_before_it_is_built():
    # '0-99999999999' once built a list of 1e11 ints (the fuzz test ran the machine out of memory).
    from taskgroup.errors import TaskgroupError
    from taskgroup.train.run import MAX_SEEDS, parse_seeds

    with pytest.raises(TaskgroupError, match=f"more than {MAX_SEEDS} seeds"):
        parse_seeds("0-99999999999")
    assert len(parse_seeds(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS
