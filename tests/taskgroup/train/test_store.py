"""The run directory: atomic per-candidate commits, refusal to clobber, resume, corruption."""

import json
import re
import sqlite3

import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable
from taskgroup.train import CandidateSpec, RunStore, candidate_set, make_run_config, train_candidates, train_more
from taskgroup.train.trainer import RunData

TASKS = ("segment_semantic", "depth_zbuffer")


@pytest.fixture(scope="module")
def data(fake_splits):
    return RunData.from_splits(TASKS, *fake_splits)


def cfg(**kw):
    return make_run_config("tiny", overrides={"train": {"epochs": 2, "batch_size": 16}}, **kw)


def snapshot(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_run_writes_table_checkpoints_and_store(tmp_path, data):
    run = tmp_path / "run"
    table = train_candidates(run, TASKS, candidate_set("pairs", TASKS), cfg(esa_fraction=0.5), data=data)
    assert len(table.networks) == 5 * 2  # 2 full + 2 half singles + 1 pair, each final + early
    loaded = LossTable.load(run)
    assert [n.key for n in loaded.networks] == [n.key for n in table.networks]
    for n in loaded.networks:
        assert not n.checkpoint.startswith("/") and (run / n.checkpoint).is_file()
        assert set(n.losses) == {"val", "test"} and set(n.losses["val"]) == set(n.tasks)
        assert n.fraction == (1.0 if n.stage == "final" else 0.5)
    assert set(loaded.reference_losses) == set(TASKS)
    assert loaded.reference_losses == data.reference
    from taskgroup.models import load_checkpoint

    model = load_checkpoint(run / loaded.networks[0].checkpoint)
    assert model.tasks == loaded.networks[0].tasks


def test_refuses_non_empty_dir_without_resume(tmp_path, data):
    run = tmp_path / "run"
    train_candidates(run, TASKS, candidate_set("singles", TASKS)[:1], cfg(), data=data)
    before = snapshot(run)
    with pytest.raises(TaskgroupError, match="not empty.*--resume"):
        train_candidates(run, TASKS, candidate_set("singles", TASKS), cfg(), data=data)
    assert snapshot(run) == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(TaskgroupError, match="not empty"):
        train_candidates(tmp_path / "other", TASKS, candidate_set("singles", TASKS), cfg(), data=data)


def test_resume_skips_finished_and_refuses_other_config(tmp_path, data):
    run = tmp_path / "run"
    specs = candidate_set("pairs", TASKS)
    train_candidates(run, TASKS, specs[:2], cfg(), data=data)
    before = snapshot(run / "checkpoints")
    other = make_run_config("tiny", overrides={"train": {"epochs": 3, "batch_size": 16}})
    with pytest.raises(TaskgroupError, match="different config.*epochs"):
        train_candidates(run, TASKS, specs, other, data=data, resume=True)
    with pytest.raises(TaskgroupError, match="tasks"):
        train_candidates(run, TASKS[:1], specs[:1], cfg(), data=data, resume=True)
    table = train_candidates(run, TASKS, specs, cfg(), data=data, resume=True)
    assert len(table.networks) == len(specs)
    after = snapshot(run / "checkpoints")
    assert {k: after[k] for k in before} == before  # finished checkpoints untouched


def test_interrupted_candidate_is_retrained_and_stale_temp_files_removed(tmp_path, data):
    run = tmp_path / "run"
    specs = candidate_set("singles", TASKS)
    train_candidates(run, TASKS, specs[:1], cfg(), data=data)
    store = RunStore.open(run)
    store.mark_running(specs[1], 0, ("final",))  # as if killed while training specs[1]
    store.close()
    (run / "checkpoints" / ".x.pt.abc.tmp").write_bytes(b"partial")
    table = train_more(run, [], data=data)  # no new specs: only the interrupted one
    assert [n.name for n in table.networks] == [specs[0].name, specs[1].name]
    assert not list((run / "checkpoints").glob(".*.tmp"))
    store = RunStore.open(run)
    assert store.interrupted() == [] and store.counts() == {"done": 2}
    store.close()


def test_train_more_adds_networks_with_the_stored_config(tmp_path, data):
    run = tmp_path / "run"
    train_candidates(run, TASKS, candidate_set("singles", TASKS), cfg(esa_fraction=0.5), stages=("early",), data=data)
    table = train_more(run, [CandidateSpec(("depth_zbuffer", "segment_semantic"))], stages=("final",), data=data)
    stages = {(n.name, n.stage) for n in table.networks}
    assert ("segment_semantic+depth_zbuffer@1", "final") in stages
    assert ("segment_semantic@1/early", "early") in {(n.name, n.stage) for n in table.networks}
    # a final stage for a network that so far has only its early stage; the early row is kept
    early_before = [n for n in table.networks if n.name == "depth_zbuffer@1/early"][0]
    table = train_more(run, [CandidateSpec(("depth_zbuffer",))], stages=("final",), data=data)
    assert [n for n in table.networks if n.name == "depth_zbuffer@1/early"][0] == early_before
    assert any(n.name == "depth_zbuffer@1" for n in table.networks)


def test_corrupted_store_is_a_clear_error_and_left_untouched(tmp_path, data):
    run = tmp_path / "run"
    train_candidates(run, TASKS, candidate_set("singles", TASKS)[:1], cfg(), data=data)
    db = run / "runs.sqlite"
    damaged = b"this is not a database" + db.read_bytes()[22:]
    db.write_bytes(damaged)
    with pytest.raises(TaskgroupError, match="runs.sqlite: not a readable taskgroup results store"):
        train_candidates(run, TASKS, candidate_set("singles", TASKS), cfg(), data=data, resume=True)
    assert db.read_bytes() == damaged


def test_a_damaged_checkpoint_is_detected_on_resume_and_trained_again(tmp_path, data):
    from taskgroup.train.trainer import Progress

    class Messages(Progress):
        def __init__(self):
            self.seen = []

        def message(self, text):
            self.seen.append(text)

    run = tmp_path / "run"
    specs = candidate_set("singles", TASKS)[:2]
    table = train_candidates(run, TASKS, specs, cfg(), data=data)
    damaged, missing = (run / table.networks[0].checkpoint), (run / table.networks[1].checkpoint)
    from taskgroup.models.checkpoint import read_checkpoint

    original = read_checkpoint(damaged)["state_dict"]
    damaged.write_bytes(b"garbage")
    missing.unlink()
    progress = Messages()
    again = train_candidates(run, TASKS, specs, cfg(), data=data, resume=True, progress=progress)
    assert any("does not match the sha256" in m for m in progress.seen)
    assert any("is missing" in m for m in progress.seen)
    retrained = read_checkpoint(damaged)["state_dict"]  # deterministic retraining restores the weights
    assert retrained.keys() == original.keys() and all((retrained[k] == original[k]).all() for k in original)
    assert missing.is_file()
    assert [n.losses for n in again.networks] == [n.losses for n in table.networks]


def _flip_a_loss_bit(run, name):
    """Flip one bit of the first digit of a stored validation loss, in place, as a damaged disk would."""
    con = sqlite3.connect(run / "runs.sqlite")
    with con:
        (losses,) = con.execute("SELECT losses FROM results WHERE name = ? AND stage = 'final'", (name,)).fetchone()
        doc = json.loads(losses)
        task = next(iter(doc["val"]))
        text = repr(doc["val"][task])
        digit = next(i for i, c in enumerate(text) if c in "123456789")
        flipped = text[:digit] + chr(ord(text[digit]) ^ 1) + text[digit + 1:]  # '1' <-> '0', '2' <-> '3', ...
        changed = losses.replace(text, flipped, 1)
        assert changed != losses
        con.execute("UPDATE results SET losses = ? WHERE name = ? AND stage = 'final'", (changed, name))
    con.close()
    return task, float(text), float(flipped)


def test_a_changed_result_row_is_refused_on_read_and_trained_again_on_resume(tmp_path, data):
    """Checkpoints are hashed; so is every committed row: a flipped bit in a stored loss is never
    passed on to losses.json (and from there to select)."""
    from taskgroup.train.trainer import Progress

    class Messages(Progress):
        def __init__(self):
            self.seen = []

        def message(self, text):
            self.seen.append(text)

    run = tmp_path / "run"
    specs = candidate_set("pairs", TASKS)
    table = train_candidates(run, TASKS, specs, cfg(), data=data)
    pair = "segment_semantic+depth_zbuffer@1"
    task, true, flipped = _flip_a_loss_bit(run, pair)
    before = (run / "losses.json").read_bytes()
    store = RunStore.open(run)
    try:
        assert store.damaged_rows() == {(pair, 0): {"final"}}
        with pytest.raises(TaskgroupError, match=re.escape(pair) + r" \(seed 0, final\) do not match their integrity "
                                                 rf"check.*taskgroup train --out {re.escape(str(run))} --resume$"):
            store.export()
    finally:
        store.close()
    assert (run / "losses.json").read_bytes() == before  # nothing written from the damaged row
    progress = Messages()
    again = train_candidates(run, TASKS, specs, cfg(), data=data, resume=True, progress=progress)
    assert any(pair in m and "integrity check" in m and "trained again" in m for m in progress.seen)
    after = {n.name: n.losses for n in again.networks}
    assert after[pair]["val"][task] == true != flipped  # retrained: deterministic, the true loss again
    assert after == {n.name: n.losses for n in table.networks}


def test_export_refuses_a_checkpoint_whose_result_row_was_changed(tmp_path, data):
    from taskgroup.train.store_integrity import recorded_checkpoint_sha256

    run = tmp_path / "run"
    table = train_candidates(run, TASKS, candidate_set("singles", TASKS)[:1], cfg(), data=data)
    assert recorded_checkpoint_sha256(run / table.networks[0].checkpoint)[1]
    _flip_a_loss_bit(run, table.networks[0].name)
    with pytest.raises(TaskgroupError, match=rf"integrity check.*taskgroup train --out {re.escape(str(run))} --resume$"):
        recorded_checkpoint_sha256(run / table.networks[0].checkpoint)


def test_resume_without_a_store_and_unknown_tasks(tmp_path, data):
    with pytest.raises(TaskgroupError, match="nothing to resume"):
        train_candidates(tmp_path / "empty", TASKS, candidate_set("singles", TASKS), cfg(), data=data, resume=True)
    with pytest.raises(TaskgroupError, match="unknown task 'depht'"):
        train_candidates(tmp_path / "x", ("depht",), [], cfg(), data=data)
    assert not (tmp_path / "x").exists()


def test_one_transaction_per_candidate(tmp_path, data, monkeypatch):
    """A failure in the middle of committing leaves the candidate 'running' with no result rows."""
    run = tmp_path / "run"
    specs = candidate_set("singles", TASKS)
    config = cfg(esa_fraction=0.5)
    train_candidates(run, TASKS, specs[:1], config, data=data)
    import taskgroup.train.store as store_mod

    real, calls = store_mod.sha256_file, []

    def fail_on_second_row(path):
        calls.append(path)
        if len(calls) == 2:  # the first row of this candidate is already inserted
            raise OSError("disk vanished")
        return real(path)

    monkeypatch.setattr(store_mod.RunStore, "verify_checkpoints", lambda self: [])
    monkeypatch.setattr(store_mod, "sha256_file", fail_on_second_row)
    with pytest.raises(OSError, match="disk vanished"):
        train_candidates(run, TASKS, specs[:2], config, data=data, resume=True)
    monkeypatch.undo()
    con = sqlite3.connect(run / "runs.sqlite")
    assert con.execute("SELECT name, status FROM candidates ORDER BY rowid").fetchall() == [
        (specs[0].name, "done"), (specs[1].name, "running")]
    assert con.execute("SELECT name FROM results").fetchall() == [(specs[0].name,)] * 2
    con.close()
    assert len(json.loads((run / "losses.json").read_text())["networks"]) == 2
    table = train_candidates(run, TASKS, specs[:2], config, data=data, resume=True)  # and it recovers
    assert len(table.networks) == 4


def test_early_stage_without_fraction_is_refused_before_writing(tmp_path, data):
    with pytest.raises(TaskgroupError, match="--esa"):
        train_candidates(tmp_path / "r", TASKS, candidate_set("singles", TASKS), cfg(), stages=("early",), data=data)
    assert not (tmp_path / "r").exists()


def test_resume_refuses_a_run_trained_on_another_data_format(tmp_path, data, monkeypatch):
    from taskgroup.data import cache

    run = tmp_path / "run"
    specs = candidate_set("singles", TASKS)
    train_candidates(run, TASKS, specs[:1], cfg(), data=data)
    monkeypatch.setattr(cache, "FORMAT_VERSION", cache.FORMAT_VERSION + 1)  # the renderer changed since
    with pytest.raises(TaskgroupError, match="data_format"):
        train_candidates(run, TASKS, specs, cfg(), data=data, resume=True)


def test_a_create_interrupted_before_the_store_existed_can_start_again(tmp_path, data):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)  # what a crash inside RunStore.create leaves
    (run / ".runs.sqlite.tmp").write_bytes(b"half a database")
    table = train_candidates(run, TASKS, candidate_set("singles", TASKS)[:1], cfg(), data=data)
    assert len(table.networks) == 1
    (run / "notes.txt").write_text("user file")
    other = tmp_path / "other"
    (other / "checkpoints").mkdir(parents=True)
    (other / "checkpoints" / "keep.pt").write_bytes(b"x")  # not ours to discard
    with pytest.raises(TaskgroupError, match="not empty"):
        train_candidates(other, TASKS, candidate_set("singles", TASKS)[:1], cfg(), data=data)


def test_a_config_that_cannot_train_on_the_data_is_refused_before_the_run_directory_exists(tmp_path, data):
    big = make_run_config("tiny", overrides={"train": {"epochs": 1, "batch_size": 10_000}})
    with pytest.raises(TaskgroupError, match="fewer than one batch"):
        train_candidates(tmp_path / "run", TASKS, candidate_set("singles", TASKS)[:1], big, data=data)
    assert not (tmp_path / "run").exists()  # so the corrected config can start the run there
    table = train_candidates(tmp_path / "run", TASKS, candidate_set("singles", TASKS)[:1], cfg(), data=data)
    assert len(table.networks) == 1


class _DuringTraining:
    """A Progress that does something to the run directory while the given candidate trains."""

    def __init__(self, candidate: str, action):
        self.candidate, self.action, self.current = candidate, action, None

    def __getattr__(self, name):  # every other Progress event is ignored
        return lambda *a, **k: None

    def candidate_started(self, name, total_steps):
        self.current = name

    def epoch_done(self, name, epoch, epochs, val_total, lr):
        if self.current == self.candidate and epoch == 1:
            self.action()


def test_a_store_deleted_during_training_stops_cleanly_keeps_the_network_in_flight_and_resumes(tmp_path, data):
    run = tmp_path / "run"
    specs = candidate_set("singles", TASKS)[:3]
    progress = _DuringTraining(specs[1].name, (run / "runs.sqlite").unlink)
    with pytest.raises(TaskgroupError, match=r"runs.sqlite disappeared during training.*written back.*"
                                             rf"taskgroup train --out {run} --resume"):
        train_candidates(run, TASKS, specs, cfg(), data=data, progress=progress)
    store = RunStore.open(run)  # written back, with the network that was training when the file went
    assert store.counts() == {"done": 2} and store.verify_checkpoints() == []
    store.close()
    table = train_candidates(run, TASKS, specs, cfg(), data=data, resume=True)
    assert [n.name for n in table.networks] == [s.name for s in specs]


def test_a_store_replaced_during_training_is_left_alone_and_the_run_saved_beside_it(tmp_path, data):
    run = tmp_path / "run"
    specs = candidate_set("singles", TASKS)[:2]

    def replace():
        (run / "runs.sqlite").unlink()
        (run / "runs.sqlite").write_text("someone else's file")

    with pytest.raises(TaskgroupError, match="replaced by another file.*saved as .*runs.sqlite.recovered"):
        train_candidates(run, TASKS, specs, cfg(), data=data, progress=_DuringTraining(specs[1].name, replace))
    assert (run / "runs.sqlite").read_text() == "someone else's file"
    (run / "runs.sqlite").unlink()
    with pytest.raises(TaskgroupError, match="runs.sqlite.recovered holds the one saved.*rename it"):
        train_candidates(run, TASKS, specs, cfg(), data=data, resume=True)
    (run / "runs.sqlite.recovered").rename(run / "runs.sqlite")
    store = RunStore.open(run)
    assert store.counts() == {"done": 2}
    store.close()


def test_resume_without_a_store_but_with_checkpoints_says_what_was_lost(tmp_path, data):
    run = tmp_path / "run"
    train_candidates(run, TASKS, candidate_set("singles", TASKS)[:1], cfg(), data=data)
    (run / "runs.sqlite").unlink()  # e.g. deleted while no process had it open
    with pytest.raises(TaskgroupError, match="holds checkpoints.*cannot be recovered from checkpoints alone.*backup"):
        train_candidates(run, TASKS, candidate_set("singles", TASKS), cfg(), data=data, resume=True)
