"""Typed result rows: what training commits, what the store reads back, and the loss table built from them."""

import json
import sqlite3

import pytest

from taskgroup.affinity import AffinityRun
from taskgroup.errors import TaskgroupError
from taskgroup.resultrows import (CommittedResult, CommittedStop, LossWeights, ResultRow, TaskStopRow,
                                  loss_table_from_rows)
from taskgroup.train.candidates import CandidateSpec
from taskgroup.train.store import RunStore
from taskgroup_runtime.integrity import sha256_file

TASKS = ("depth_zbuffer", "normal")
PAIR = CandidateSpec(TASKS)


def losses(a: float, b: float) -> dict:
    return {"val": {"depth_zbuffer": a, "normal": b}, "test": {"depth_zbuffer": a + 1, "normal": b + 1}}


def new_store(tmp_path) -> RunStore:
    store = RunStore.create(tmp_path / "run", {"seed": 0}, TASKS)
    for name in ("a.pt", "a_best-normal.pt"):
        (store.run_dir / "checkpoints" / name).write_bytes(name.encode())
    return store


def test_a_committed_row_reads_back_as_it_was_written(tmp_path):
    store = new_store(tmp_path)
    stop = TaskStopRow("normal", 1.0, losses(0.3, 0.1), "checkpoints/a_best-normal.pt")
    affinity = AffinityRun(0, "final", 4, 2, 0.5, {"tag": [[0.0, 0.1], [0.2, 0.0]], "cosine": [[1.0, 0.5], [0.5, 1.0]]})
    row = ResultRow("final", 1.0, 2.0, 10, 1.5, losses(0.2, 0.3), "checkpoints/a.pt", affinity=affinity,
                    loss_weights=LossWeights("static", {"depth_zbuffer": 1.5, "normal": 0.5}),
                    task_stops=(stop,))
    store.mark_running(PAIR, 0, ["final"])
    store.commit_results(PAIR, 0, [row])
    sha = sha256_file(store.run_dir / "checkpoints/a.pt")
    plain = ResultRow("final", 1.0, 2.0, 10, 1.5, losses(0.2, 0.3), "checkpoints/a.pt", sha)
    assert store.results() == [CommittedResult(PAIR.name, TASKS, 1.0, 0, plain)]
    stop_sha = sha256_file(store.run_dir / "checkpoints/a_best-normal.pt")
    assert store.task_stops() == [CommittedStop(PAIR.name, TASKS, 1.0, 0, "final",
                                                TaskStopRow("normal", 1.0, losses(0.3, 0.1), stop.checkpoint, stop_sha))]
    assert store.affinity_table().runs == [affinity]
    assert store.loss_weights() == {PAIR.name: {"0": {"final": row.loss_weights.to_json()}}}
    table = store.loss_table()
    assert [n.name for n in table.networks] == [f"{PAIR.name}"] and table.networks[0].checkpoint_sha256 == sha
    assert [n.stopped_for for n in table.task_stops] == ["normal"]
    store.close()


def test_affinity_of_another_seed_is_refused_at_commit(tmp_path):
    store = new_store(tmp_path)
    store.mark_running(PAIR, 0, ["final"])
    wrong = AffinityRun(1, "final", 4, 2, 0.5, {"tag": [[0.0]], "cosine": [[1.0]]})
    with pytest.raises(ValueError, match="seed 1"):
        store.commit_results(PAIR, 0, [ResultRow("final", 1.0, 2.0, 10, 1.5, losses(0.2, 0.3), "checkpoints/a.pt",
                                                 affinity=wrong)])
    assert store.results() == []  # nothing of the job was committed
    store.close()


def old_store(tmp_path, losses_column: str):
    """A store whose results table predates the row integrity check, with one row written as it was then."""
    store = new_store(tmp_path)
    store.close()
    conn = sqlite3.connect(tmp_path / "run" / "runs.sqlite")
    with conn:
        conn.execute("ALTER TABLE results DROP COLUMN row_sha256")
        conn.execute("INSERT INTO candidates VALUES (?, 0, ?, 1.0, 'done', '[\"final\"]', 1, 0.0, 1.0)",
                     (PAIR.name, json.dumps(list(TASKS))))
        conn.execute("INSERT INTO results VALUES (?, 0, 'final', 1.0, 3.0, 12, 2.5, ?, 'checkpoints/a.pt', 'abc')",
                     (PAIR.name, losses_column))
    conn.close()
    return RunStore.open(tmp_path / "run")


def test_a_row_written_before_typed_rows_and_integrity_checks_still_loads(tmp_path):
    store = old_store(tmp_path, json.dumps(losses(0.4, 0.6)))
    assert store.results() == [CommittedResult(PAIR.name, TASKS, 1.0, 0, ResultRow(
        "final", 1.0, 3.0, 12, 2.5, losses(0.4, 0.6), "checkpoints/a.pt", "abc"))]
    net, = store.loss_table().networks
    assert net.losses == losses(0.4, 0.6) and net.steps == 12 and net.checkpoint_sha256 == "abc"
    store.close()


@pytest.mark.parametrize("column, why", [("{not json", "not valid JSON"),
                                         (json.dumps({"val": {"normal": "low"}}), "expected split"),
                                         (json.dumps({"train": {"normal": 0.1}}), "expected split")])
def test_a_bad_losses_column_is_one_line_naming_store_row_column_and_fix(tmp_path, column, why):
    store = old_store(tmp_path, column)
    with pytest.raises(TaskgroupError) as err:
        store.loss_table()
    message = str(err.value)
    assert "\n" not in message and why in message
    assert str(store.path) in message and f"network {PAIR.name} (seed 0, final): column 'losses'" in message
    assert "restore runs.sqlite from a backup" in message and f"--networks '{PAIR.name}'" in message
    store.close()


def test_seeds_are_aggregated_next_to_the_loss_table():
    def result(seed, a, b, ckpt):
        return CommittedResult(PAIR.name, TASKS, 1.0, seed, ResultRow("final", 1.0, 1.0, 5, 2.0, losses(a, b), ckpt))

    results = [result(0, 0.2, 0.4, "s0.pt"), result(1, 0.4, 0.1, "s1.pt")]
    stops = [CommittedStop(PAIR.name, TASKS, 1.0, 0, "final", TaskStopRow("normal", 1.0, losses(0.3, 0.3), "s0.pt")),
             CommittedStop(PAIR.name, TASKS, 1.0, 1, "final", TaskStopRow("normal", 1.0, losses(0.5, 0.05), "n1.pt")),
             CommittedStop(PAIR.name, TASKS, 1.0, 0, "final", TaskStopRow("depth_zbuffer", 1.0, losses(0, 0), "s0.pt")),
             CommittedStop(PAIR.name, TASKS, 1.0, 2, "final", TaskStopRow("normal", 1.0, losses(0, 0), "x.pt"))]
    table = loss_table_from_rows(TASKS, results, stops, {}, {}, None)
    net, = table.networks
    assert net.losses["val"] == pytest.approx({"depth_zbuffer": 0.3, "normal": 0.25})
    assert net.checkpoint == "s1.pt" and net.wall_time_s == 4.0 and net.n_seeds == 2  # best validation total: seed 1
    stop, = table.task_stops  # depth's stop is the kept weights in every seed; seed 2 has no result
    assert stop.stopped_for == "normal" and sorted(stop.seeds) == [0, 1]
    assert stop.losses["val"] == pytest.approx({"depth_zbuffer": 0.4, "normal": 0.175})
