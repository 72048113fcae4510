"""Tasks declared in the config TOML ([tasks.NAME]) go everywhere a built-in task goes."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from taskgroup import tasks as registry
from taskgroup.errors import TaskgroupError
from taskgroup.task_tables import parse_task_tables, spec_to_json
from taskgroup.tasks import get_task, parse_task_list

TOML = """
[train]
epochs = 2
batch_size = 16

[tasks.wetness]
channels = 1
loss = "l1"
meaning = "how wet the surface looks"
units = "16-bit PNG value"
ignore_value = 65535

[tasks.terrain]
loss = "cross_entropy"
classes = ["grass", "gravel", "water"]
ignore_index = 255

[tasks.hazards]
loss = "bce"
labels = ["puddle", "curb"]

[tasks.height]
channels = 2
loss = "l2"
transform = { mean = [1.0, 2.0], std = [3.0, 4.0] }
"""


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Each test declares into its own registry: declarations are per process."""
    monkeypatch.setattr(registry, "_DECLARED", {})


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text(TOML)
    return path


def test_tables_become_task_specs():
    import tomllib

    specs = {s.name: s for s in parse_task_tables(tomllib.loads(TOML)["tasks"], "f.toml")}
    assert specs["wetness"].loss == "l1" and specs["wetness"].channels == 1 and specs["wetness"].ignore_value == 65535
    assert specs["wetness"].transform == "standardize" and specs["wetness"].units == "16-bit PNG value"
    assert specs["terrain"].channels == 3 and specs["terrain"].class_names == ("grass", "gravel", "water")
    assert specs["terrain"].ignore_value == 255 and specs["terrain"].transform == "none"
    assert specs["hazards"].channels == 2 and specs["hazards"].transform == "none"
    assert specs["height"].transform == ((1.0, 2.0), (3.0, 4.0))
    for spec in specs.values():  # the serialised form reads back to the same spec
        assert parse_task_tables({spec.name: spec_to_json(spec)}, "x") == (spec,)


@pytest.mark.parametrize("table, message", [
    ({"x": {"loss": "huber", "channels": 1}}, r"\[tasks.x\] key 'loss': expected one of l1, l2, cross_entropy, bce"),
    ({"x": {"loss": "l1", "channels": 1, "colour": 2}}, r"\[tasks.x\]: unknown key\(s\) 'colour'"),
    ({"x": {"loss": "l1"}}, r"\[tasks.x\] key 'channels'"),
    ({"x": {"loss": "cross_entropy", "classes": 1}}, "at least 2 classes"),
    ({"x": {"loss": "cross_entropy", "classes": 3, "channels": 3}}, "takes 'classes'"),
    ({"x": {"loss": "l1", "channels": 2, "transform": {"mean": [0.0], "std": [1.0, 1.0]}}}, "transform.mean"),
    ({"x": {"loss": "l1", "channels": 1, "transform": {"mean": [0.0], "std": [0.0]}}}, "std must be > 0"),
    ({"x": {"loss": "bce", "channels": 1, "transform": "standardize"}}, "not transformed"),
    ({"depth_zbuffer": {"loss": "l1", "channels": 1}}, "built-in task"),
    ({"Bad-Name": {"loss": "l1", "channels": 1}}, "lower-case"),
    ({"x": {"loss": "cross_entropy", "classes": ["a", "a"]}}, r"\[tasks.x\] key 'classes': 'a' named more than once"),
    ({"x": {"loss": "bce", "labels": ["wet", "dry", "wet"]}}, r"\[tasks.x\] key 'labels': 'wet' named more than once"),
])
def test_bad_tables_name_the_file_table_and_key(table, message):
    with pytest.raises(TaskgroupError, match=r"f\.toml: .*" + message if "[" in message else message):
        parse_task_tables(table, "f.toml")


def test_the_config_declares_its_tasks_for_the_run(config_file):
    from taskgroup.train import make_run_config

    with pytest.raises(TaskgroupError, match="unknown task 'wetness'.*\\[tasks.NAME\\]"):
        parse_task_list("wetness")
    config = make_run_config("tiny", config_file)
    assert parse_task_list("wetness,terrain,segment_semantic") == ("wetness", "terrain", "segment_semantic")
    assert get_task("terrain").channels == 3
    doc = config.to_dict()
    assert doc["declared_tasks"]["wetness"]["units"] == "16-bit PNG value"
    assert make_run_config("tiny").to_dict()["declared_tasks"] == {}
    with pytest.raises(TaskgroupError, match="declared differently"):
        registry.declare_tasks([dataclasses.replace(get_task("wetness"), channels=2)], "other.toml")


def test_the_model_has_heads_for_declared_tasks(config_file):
    from taskgroup.models import create_model
    from taskgroup.train import make_run_config

    make_run_config("tiny", config_file)
    model = create_model("xception", ["terrain", "hazards", "height"], 1.0)
    assert model.output_channels == {"terrain": 3, "hazards": 2, "height": 2}


@dataclasses.dataclass
class Split:
    """The SplitArrays fields training reads."""

    images: np.ndarray
    targets: dict
    masks: dict

    def __len__(self):
        return len(self.images)


def declared_split(n, seed, res=16):
    """A SplitArrays-like split for the declared tasks; targets follow the image."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, 3, res // 8, res // 8)).astype(np.float32)
    images = coarse.repeat(8, axis=2).repeat(8, axis=3)
    masks = {t: np.ones((n, 1, res, res), bool) for t in ("wetness", "terrain", "hazards", "height")}
    masks["wetness"][: n // 3] = False  # a third of the samples have no wetness label
    targets = {"wetness": (images[:, :1] * 1000 + 300).astype(np.float32),
               "terrain": (images[:, 0] * 2.99).astype(np.int64),
               "hazards": (images[:, 1:3] > 0.5).astype(np.float32),
               "height": images[:, :2] * 5}
    return Split(images, targets, masks)


@pytest.fixture
def trained_run(config_file, tmp_path):
    from taskgroup.train import CandidateSpec, make_run_config, train_candidates
    from taskgroup.train.trainer import RunData

    config = make_run_config("tiny", config_file)
    tasks = ("wetness", "terrain", "hazards", "height")
    data = RunData.from_splits(tasks, declared_split(64, 1), declared_split(32, 2), declared_split(32, 3))
    run = tmp_path / "run"
    train_candidates(run, tasks, [CandidateSpec(tasks), CandidateSpec(("wetness",)), CandidateSpec(("terrain", "hazards"))],
                     config, data=data)
    return run, config, data


def test_a_run_trains_declared_tasks_and_counts_their_labels(trained_run):
    from taskgroup.losstable import LossTable

    run, _, data = trained_run
    table = LossTable.load(run)
    assert table.tasks == ("wetness", "terrain", "hazards", "height")
    doc = json.loads((run / "losses.json").read_text())
    assert doc["meta"]["labelled_samples"]["labelled"]["wetness"] == {"train": 43, "val": 22, "test": 22}
    assert doc["meta"]["labelled_samples"]["samples"] == {"train": 64, "val": 32, "test": 32}
    from taskgroup.pipeline.report_assembly import label_notes

    assert label_notes(table) == ["wetness is labelled on 43 of 64 train, 22 of 32 val, 22 of 32 test samples; its "
                                  "losses average over the labelled pixels only."]
    assert doc["meta"]["targets"]["wetness"]["units"] == "16-bit PNG value"
    assert doc["meta"]["targets"]["height"]["mean"] == [1.0, 2.0]  # the declared constants
    assert doc["meta"]["targets"]["hazards"]["mean"] is None  # multi-label logits: no transform
    for net in table.networks:
        for task, loss in net.losses["val"].items():
            assert np.isfinite(loss) and loss > 0


def test_a_resume_with_other_declarations_is_refused(trained_run, tmp_path):
    from taskgroup.train import CandidateSpec, make_run_config, train_candidates

    run, _, data = trained_run
    other = tmp_path / "other.toml"
    other.write_text(TOML.replace("how wet the surface looks", "how wet"))
    registry._DECLARED.clear()
    config = make_run_config("tiny", other)
    with pytest.raises(TaskgroupError, match="declared_tasks.wetness.meaning"):
        train_candidates(run, data.tasks, [CandidateSpec(("height",))], config, data=data, resume=True)


@pytest.mark.slow
def test_declarations_travel_with_checkpoints_tables_and_groupings(trained_run, tmp_path):
    """Fresh processes that never saw the config: results, select and export still know the tasks."""
    run, _, _ = trained_run
    env = dict(os.environ, PYTHONPATH=os.getcwd(), COLUMNS="250")

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "taskgroup", *args], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    results = cli("results", str(run))
    assert "wetness" in results and "22 of 32" in results  # the val samples with a wetness label
    best = tmp_path / "best.json"
    cli("select", "--losses", str(run), "--budget", "3", "--out", str(best))
    assert json.loads(best.read_text())["declared_tasks"]["terrain"]["classes"] == ["grass", "gravel", "water"]
    cli("export", "--grouping", str(best), "--out", str(tmp_path / "deploy"), "--preset", "tiny", "--synthetic-frames")
    manifest = json.loads((tmp_path / "deploy" / "manifest.json").read_text())
    assert manifest["tasks"]["hazards"]["loss"] == "bce" and manifest["tasks"]["hazards"]["transform"]["kind"] == "none"
    assert manifest["tasks"]["wetness"]["units"] == "16-bit PNG value"
    assert manifest["tasks"]["wetness"]["meaning"] == "how wet the surface looks"
    assert manifest["tasks"]["terrain"]["shape"][1] == 3
