"""`taskgroup train` / `taskgroup results` as a user runs them, including kill -9 and --resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskgroup.losstable import LossTable, NetworkResult

REPO = Path(__file__).resolve().parents[3]


def run_cli(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "taskgroup", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture
def config_file(tmp_path, data_cache):
    path = tmp_path / "cfg.toml"
    path.write_text(f'[data]\ncache_dir = "{data_cache}"\n[train]\nepochs = 6\n')
    return path


def test_results_prints_table_without_importing_torch(tmp_path):
    table = LossTable(("depth_zbuffer", "normal"), [
        NetworkResult(("depth_zbuffer",), 1.0, "final", {"val": {"depth_zbuffer": 0.0712}, "test": {"depth_zbuffer": 0.07}},
                      "checkpoints/a.pt", 10, 1.5)],
        reference_losses={"depth_zbuffer": {"val": 0.0867, "test": 0.0855}, "normal": {"val": 0.1682, "test": 0.17}})
    table.save(tmp_path / "losses.json")
    code = ("import sys; from taskgroup.cli import main\n"
            "try:\n    main(['results', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'results imported torch'\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200"))
    assert out.returncode == 0, out.stderr
    assert "trivial predictor" in out.stdout and "0.0867" in out.stdout and "0.0712" in out.stdout
    js = run_cli("results", str(tmp_path), "--json")
    assert json.loads(js.stdout)["reference_losses"]["normal"]["test"] == 0.17


def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, config_file):
    out = run_cli("train", "--tasks", "depth_zbuffer,depht", "--out", str(tmp_path / "r1"), "--preset", "tiny")
    assert out.returncode == 2 and "unknown task 'depht'" in out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 'x'\n")
    out = run_cli("train", "--tasks", "depth_zbuffer", "--out", str(tmp_path / "r2"), "--preset", "tiny", "--config", str(bad))
    assert out.returncode == 2 and str(bad) in out.stderr and "'epochs'" in out.stderr
    out = run_cli("train", "--tasks", "depth_zbuffer", "--out", str(tmp_path / "r3"), "--candidates", "triples")
    assert out.returncode == 2 and "singles, pairs, all" in out.stderr
    out = run_cli("results", str(tmp_path / "nope"))
    assert out.returncode == 2 and ("no such file" in out.stderr or "no losses.json" in out.stderr)
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3"))


def test_bad_executor_options_exit_2_and_write_nothing(tmp_path):
    import importlib.util

    base = ["train", "--tasks", "depth_zbuffer", "--preset", "tiny", "--out", str(tmp_path / "r")]
    out = run_cli(*base, "--executor", "threads:2")
    assert out.returncode == 2 and "valid executors: local, processes:N, ray" in out.stderr
    out = run_cli(*base, "--executor", "processes:2", "--ray-address", "auto")
    assert out.returncode == 2 and "--ray-address is for --executor ray" in out.stderr
    out = run_cli("pipeline", "--preset", "tiny", "--out", str(tmp_path / "p"), "--executor", "processes:0")
    assert out.returncode == 2 and "processes:2" in out.stderr
    if importlib.util.find_spec("ray") is not None:
        out = run_cli(*base, "--executor", "ray", "--ray-address", "127.0.0.1:1")
        assert out.returncode == 2 and "127.0.0.1:1: nothing answers there" in out.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "p").exists()


def done_rows(db):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return con.execute("SELECT name, stage, losses, checkpoint, checkpoint_sha256, steps FROM results "
                               "ORDER BY name, stage").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def candidate_statuses(db):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return dict(con.execute("SELECT name, status FROM candidates").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return {}


@pytest.mark.slow
def test_kill_9_then_resume_keeps_finished_work(tmp_path, config_file):
    run = tmp_path / "run"
    args = ["train", "--tasks", "depth_zbuffer,normal", "--candidates", "pairs", "--preset", "tiny",
            "--config", str(config_file), "--out", str(run), "--esa", "0.5"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "taskgroup", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    # Kill once one candidate is committed and the next one is being trained (not between the two).
    while time.time() < deadline and proc.poll() is None and not (
            done_rows(run / "runs.sqlite") and "running" in candidate_statuses(run / "runs.sqlite").values()):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = done_rows(run / "runs.sqlite")
    assert finished, "no candidate was committed before the kill"
    con = sqlite3.connect(run / "runs.sqlite")
    statuses = dict(con.execute("SELECT name, status FROM candidates").fetchall())
    con.close()
    assert len(statuses) > len({r[0] for r in finished}) or "running" in statuses.values(), \
        "the run finished before it could be interrupted"
    ckpt_bytes = {r[3]: (run / r[3]).read_bytes() for r in finished}

    again = run_cli(*args)  # without --resume: refused, nothing touched
    assert again.returncode == 2 and "--resume" in again.stderr
    out = run_cli(*args, "--resume")
    assert out.returncode == 0, out.stderr
    after = done_rows(run / "runs.sqlite")
    assert [r for r in after if r[0] in {f[0] for f in finished}] == finished  # rows identical
    assert {k: (run / k).read_bytes() for k in ckpt_bytes} == ckpt_bytes  # checkpoint bytes identical
    table = LossTable.load(run)
    assert len(table.networks) == 5 * 2  # 2 full + 2 half singles + 1 pair, final + early each
    assert {n.stage for n in table.networks} == {"final", "early"}
    con = sqlite3.connect(run / "runs.sqlite")
    assert {s for (s,) in con.execute("SELECT status FROM candidates")} == {"done"}
    con.close()
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_networks_option_trains_exactly_the_named_networks_into_a_run(tmp_path, config_file, data_cache, monkeypatch):
    monkeypatch.setenv("TASKGROUP_CACHE", str(data_cache))  # a stored config does not keep the cache location
    run = tmp_path / "run"
    args = ["train", "--tasks", "depth_zbuffer,normal,rgb", "--preset", "tiny", "--config", str(config_file),
            "--out", str(run)]
    out = run_cli(*args, "--networks", "depth_zbuffer@1")
    assert out.returncode == 0, out.stderr
    out = run_cli(*args, "--networks", "rgb+normal+depth_zbuffer", "--resume")  # e.g. a network HOA estimated
    assert out.returncode == 0, out.stderr
    table = LossTable.load(run)
    assert {(n.tasks, n.width) for n in table.networks} == {
        (("depth_zbuffer",), 1.0), (("depth_zbuffer", "normal", "rgb"), 1.0)}
    out = run_cli(*args, "--networks", "depht@1", "--resume")
    assert out.returncode == 2 and "depht" in out.stderr
    # As export's hint says: only the networks, the run and --resume; tasks and config are the run's own.
    out = run_cli("train", "--networks", "normal@0.5", "--out", str(run), "--resume")
    assert out.returncode == 0, out.stderr
    assert (("normal",), 0.5) in {(n.tasks, n.width) for n in LossTable.load(run).networks}
    out = run_cli("train", "--out", str(tmp_path / "new"))
    assert out.returncode == 2 and "--tasks is required" in out.stderr


@pytest.mark.slow
def test_ctrl_c_exits_130_with_a_message_and_keeps_finished_work(tmp_path, config_file):
    run = tmp_path / "run"
    args = ["train", "--tasks", "depth_zbuffer,normal", "--candidates", "singles", "--preset", "tiny",
            "--config", str(config_file), "--out", str(run)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "taskgroup", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not done_rows(run / "runs.sqlite"):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    assert proc.returncode == 130, err
    assert "interrupted; finished work is kept" in err and "Traceback" not in err
    assert done_rows(run / "runs.sqlite")  # the committed candidate survives
    out = run_cli(*args, "--resume")
    assert out.returncode == 0, out.stderr


def test_strategy_and_weighting_flags_are_the_run_s_config(tmp_path, config_file):
    out = run_cli("train", "--tasks", "depth_zbuffer", "--out", str(tmp_path / "bad"), "--preset", "tiny",
                  "--strategy", "alternate")
    assert out.returncode == 2 and "--strategy: field 'strategy': unknown strategy 'alternate'" in out.stderr
    assert not (tmp_path / "bad").exists()
    run = tmp_path / "run"
    args = ("--tasks", "depth_zbuffer,normal", "--networks", "depth_zbuffer+normal@0.5", "--out", str(run),
            "--preset", "tiny", "--config", str(config_file))
    out = run_cli("train", *args, "--strategy", "alternating", "--weighting", "uncertainty")
    assert out.returncode == 0, out.stderr
    doc = json.loads((run / "losses.json").read_text())
    assert doc["meta"]["run_config"]["train"]["strategy"] == "alternating"
    weights = doc["meta"]["loss_weights"]["depth_zbuffer+normal@0.5"]["0"]["final"]
    assert weights["weighting"] == "uncertainty" and set(weights["log_variance"]) == {"depth_zbuffer", "normal"}
    out = run_cli("train", "--out", str(run), "--resume", "--strategy", "sum")
    assert out.returncode == 2 and "refusing to resume" in out.stderr and "strategy" in out.stderr
    out = run_cli("train", "--out", str(run), "--resume")  # the run's own strategy: nothing to do
    assert out.returncode == 0, out.stderr


def test_resume_continues_the_run_s_own_candidate_set_and_seeds(tmp_path, data_cache, monkeypatch):
    """A run interrupted after its first network: `train --out RUN --resume` (what the toolkit's own
    recovery messages say) trains the rest of the run's own set, for every seed it was asked for,
    and the all-task network with its affinity, never the default pairs instead."""
    from taskgroup.train import candidate_set, make_run_config, train_candidates
    from taskgroup.train.trainer import Progress

    class StopAfterFirst(Progress):
        def candidate_done(self, name, summary):
            raise KeyboardInterrupt  # as a kill right after the first commit

    monkeypatch.setenv("TASKGROUP_CACHE", str(data_cache))
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[data]\ncache_dir = "{data_cache}"\n[train]\nepochs = 1\naffinity_every = 5\n')
    tasks = ("depth_zbuffer", "normal", "rgb")
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_candidates(run, tasks, candidate_set("affinity", tasks), make_run_config("tiny", cfg), seeds=(0, 1),
                         affinity=True, progress=StopAfterFirst())
    assert len(done_rows(run / "runs.sqlite")) == 1
    out = run_cli("train", "--out", str(run), "--resume")
    assert out.returncode == 0, out.stderr
    assert "adding" not in out.stderr
    table = LossTable.load(run)
    own = {(s.tasks, s.width) for s in candidate_set("affinity", tasks)}
    assert {(n.tasks, n.width) for n in table.networks} == own  # no pair was trained
    assert all(n.n_seeds == 2 for n in table.networks) and table.meta["seeds"] == [0, 1]
    assert table.affinity is not None and table.affinity.seeds("final") == [0, 1]
    # Another set on resume is an explicit addition, and says so.
    out = run_cli("train", "--out", str(run), "--resume", "--networks", "depth_zbuffer+normal@1", "--seeds", "0")
    assert out.returncode == 0, out.stderr
    assert "adding 1 network(s) to the 7 of the run" in " ".join(out.stderr.split())
    assert (("depth_zbuffer", "normal"), 1.0) in {(n.tasks, n.width) for n in LossTable.load(run).networks}
