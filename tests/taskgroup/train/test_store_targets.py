"""A run records its target transforms (store, losses.json, checkpoints) and refuses to mix them."""

import dataclasses
import json
import sqlite3

import numpy as np
import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable
from taskgroup.train import CandidateSpec, RunStore, make_run_config, train_candidates
from taskgroup.train.trainer import RunData

TASKS = ("segment_semantic", "depth_zbuffer")


@pytest.fixture(scope="module")
def data(fake_splits):
    return RunData.from_splits(TASKS, *fake_splits)


def cfg():
    return make_run_config("tiny", overrides={"train": {"epochs": 1, "batch_size": 16}})


def test_transforms_are_stored_with_the_run_and_its_checkpoints(tmp_path, data):
    from taskgroup.models import load_checkpoint

    run = tmp_path / "run"
    train_candidates(run, TASKS, [CandidateSpec(("depth_zbuffer",))], cfg(), data=data)
    store = RunStore.open(run)
    try:
        assert store.target_transforms() == data.transforms
    finally:
        store.close()
    doc = json.loads((run / "losses.json").read_text())
    assert doc["meta"]["targets"]["depth_zbuffer"]["std"] == list(data.transforms["depth_zbuffer"].std)
    assert doc["meta"]["targets"]["segment_semantic"]["mean"] is None
    assert "dataset units" in doc["meta"]["loss_units"]
    table = LossTable.load(run)
    model = load_checkpoint(run / table.networks[0].checkpoint)
    assert model.target_transforms == {"depth_zbuffer": data.transforms["depth_zbuffer"]}


def test_resume_with_differently_standardised_data_is_refused(tmp_path, data, fake_splits):
    run = tmp_path / "run"
    train_candidates(run, TASKS, [CandidateSpec(("depth_zbuffer",))], cfg(), data=data)
    train, val, test = fake_splits
    shifted = dataclasses.replace(train, targets={**train.targets, "depth_zbuffer": train.targets["depth_zbuffer"] + 1})
    other = RunData.from_splits(TASKS, shifted, val, test)
    with pytest.raises(TaskgroupError, match="standardised with mean.*did the data change"):
        train_candidates(run, TASKS, [CandidateSpec(("segment_semantic",))], cfg(), data=other, resume=True)


def test_a_run_from_before_standardisation_names_its_version(tmp_path, data):
    run = tmp_path / "run"
    train_candidates(run, TASKS, [CandidateSpec(("depth_zbuffer",))], cfg(), data=data)
    with sqlite3.connect(run / "runs.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        conn.execute("DELETE FROM meta WHERE key = 'targets'")
    with pytest.raises(TaskgroupError, match="schema_version 1.*before target standardisation.*new --out"):
        train_candidates(run, TASKS, [CandidateSpec(("segment_semantic",))], cfg(), data=data, resume=True)
    assert np.isfinite(LossTable.load(run).networks[0].losses["val"]["depth_zbuffer"])  # its table still loads
