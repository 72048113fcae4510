"""Adaptive rounds, the training half: rounds are recorded, the choice ends on measured networks, and a
run killed (SIGKILL) in the middle of a round loses no finished network and resumes to exactly what an
uninterrupted run trains."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from taskgroup.cli import main
from taskgroup.errors import TaskgroupError
from taskgroup.train import make_run_config
from taskgroup.train.rounds import ROUNDS_FILE, RoundsConfig, train_rounds
from taskgroup.train.trainer import RunData

TASKS = ("depth_zbuffer", "normal", "segment_semantic")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
ROUNDS = RoundsConfig(1.0, 2.0, tolerance=0.05, confidence=0.5)

# The run of the test below, as a script: the process kills itself (SIGKILL) right after committing the
# first fully trained network of the first round that trains two or more.
KILLED_RUN = """
import os, signal, sys, json
sys.path.insert(0, {here!r})
from fake_splits import fake_split
import taskgroup.train.run as run
from taskgroup.train import make_run_config
from taskgroup.train.rounds import RoundsConfig, train_rounds, ROUNDS_FILE
from taskgroup.train.trainer import RunData

out = {out!r}
commit = run.commit_job
def commit_then_die(store, result):
    commit(store, result)
    if "final" in result.job.stages:
        rounds = json.load(open(os.path.join(out, ROUNDS_FILE)))["rounds"]
        if len(rounds[-1]["networks"]) >= 2:
            os.kill(os.getpid(), signal.SIGKILL)
run.commit_job = commit_then_die
data = RunData.from_splits({tasks!r}, fake_split(64, 1), fake_split(32, 2), fake_split(32, 3))
config = make_run_config("tiny", overrides={{"train": {{"epochs": 4, "batch_size": 16}}}}, esa_fraction=0.25)
train_rounds(out, {tasks!r}, config, RoundsConfig(1.0, 2.0, tolerance=0.05, confidence=0.5), data=data)
"""


def config():
    return make_run_config("tiny", overrides={"train": {"epochs": 4, "batch_size": 16}}, esa_fraction=0.25)


@pytest.fixture(scope="module")
def data(fake_splits):
    return RunData.from_splits(TASKS, *fake_splits)


def rows(run_dir: Path):
    con = sqlite3.connect(f"file:{run_dir / 'runs.sqlite'}?mode=ro", uri=True)
    try:
        results = con.execute("SELECT name, seed, stage, steps, losses, checkpoint, checkpoint_sha256 FROM results "
                              "ORDER BY name, seed, stage").fetchall()
        attempts = dict(con.execute("SELECT name, attempts FROM candidates"))
    finally:
        con.close()
    return results, attempts


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("rounds") / "run"
    table, plan = train_rounds(run, TASKS, config(), ROUNDS, data=data)
    return run, table, plan


def test_rounds_train_every_network_early_and_end_on_measured_networks(uninterrupted):
    from taskgroup.search import candidates_from_table, select

    run, table, plan = uninterrupted
    early = {(frozenset(n.tasks), n.width) for n in table.networks if n.stage == "early"}
    final = {(frozenset(n.tasks), n.width) for n in table.networks if n.stage == "final"}
    assert len(early) == 2 ** len(TASKS) - 1 + len(TASKS) and final < early
    log = json.loads((run / ROUNDS_FILE).read_text())
    assert log["kind"] == "training_rounds" and all(r["finished"] for r in log["rounds"])
    assert final == {(frozenset(n["tasks"]), n["width"]) for r in log["rounds"] for n in r["networks"]}
    assert plan.done and log["done"]["reason"] == plan.reason
    assert {(frozenset(d["tasks"]), d["width"]) for d in log["done"]["dropped"]} == early - final != set()
    # the choice under the rounds estimate holds measured networks only, at every budget of the range
    cands = candidates_from_table(table, "val", "final", estimate="rounds")
    for budget in (1.0, 1.5, 2.0):
        sel = select(cands, budget, tasks=TASKS, scales={t: table.reference_losses[t]["val"] for t in TASKS})
        assert not any(n.candidate.estimated for n in sel.networks)


def test_kill_9_in_the_middle_of_a_round_loses_no_finished_network(tmp_path, uninterrupted, data):
    run = tmp_path / "run"
    script = KILLED_RUN.format(here=str(HERE), out=str(run), tasks=TASKS)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -9, proc.stderr
    log = json.loads((run / ROUNDS_FILE).read_text())
    current = log["rounds"][-1]
    assert not current["finished"] and len(current["networks"]) >= 2  # killed inside a round of several networks
    before, attempts_before = rows(run)
    finished = {r for r in before if r[2] == "final"}
    assert len(finished) == sum(len(r["networks"]) for r in log["rounds"][:-1]) + 1  # the one just committed

    train_rounds(run, TASKS, config(), ROUNDS, data=data, resume=True)
    after, attempts = rows(run)
    assert finished <= set(after)  # rows and checkpoint hashes of every finished network unchanged
    assert all(attempts[name] == attempts_before[name] for name, *_ in finished)  # not trained again
    # ...and the resumed run trained exactly what the uninterrupted one did
    expected, _ = rows(uninterrupted[0])
    assert after == expected
    done = json.loads((run / ROUNDS_FILE).read_text())
    reference = json.loads((uninterrupted[0] / ROUNDS_FILE).read_text())
    assert [r["networks"] for r in done["rounds"]] == [r["networks"] for r in reference["rounds"]]
    assert all(r["finished"] for r in done["rounds"])


def test_rounds_need_an_early_fraction(tmp_path, data):
    no_early = make_run_config("tiny", overrides={"train": {"epochs": 4, "batch_size": 16}})
    with pytest.raises(TaskgroupError, match="--esa FRACTION"):
        train_rounds(tmp_path / "run", TASKS, no_early, ROUNDS, data=data)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--candidates", "rounds"], "--candidates rounds needs the budgets"),
    (["--candidates", "rounds", "--budget", "x-2"], "--budget: 'x-2' is not a budget"),
    (["--candidates", "rounds", "--budget", "3-2"], "budget range must be 0 < low <= high"),
    (["--candidates", "pairs", "--budget", "2"], "use them with --candidates rounds"),
    (["--candidates", "rounds", "--budget", "2", "--confidence", "1.5"], "--confidence must be in (0, 1)"),
    (["--candidates", "rounds", "--budget", "2", "--esa", "0.1", "--esa-only"], "drop --esa-only"),
])
def test_train_cli_refuses_bad_rounds_options_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["train", "--tasks", ",".join(TASKS), "--preset", "tiny", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
