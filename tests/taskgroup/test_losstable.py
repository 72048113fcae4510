"""The loss-table contract: round trip, and malformed files refused with the file and field named."""

import json

import pytest

from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.losstable import LossTable, NetworkResult

GOOD = {
    "schema_version": 1, "kind": "loss_table", "tasks": ["normal", "rgb"],
    "reference_losses": {"normal": {"val": 0.2, "test": 0.21}},
    "networks": [{"tasks": ["normal"], "width": 1.0, "stage": "final", "fraction": 1.0,
                  "losses": {"val": {"normal": 0.1}}, "checkpoint": "checkpoints/n.pt", "steps": 10,
                  "wall_time_s": 1.5}],
}


def test_round_trip(tmp_path):
    table = LossTable(("normal", "rgb"), [NetworkResult(("normal", "rgb"), 0.5, "early", {"val": {"normal": 0.1, "rgb": 0.2}},
                                                        fraction=0.25)], {"rgb": {"val": 0.3}})
    table.save(tmp_path / "losses.json")
    again = LossTable.load(tmp_path)  # a run directory holding losses.json
    assert again.networks == table.networks and again.reference_losses == table.reference_losses


@pytest.mark.parametrize("path, value, field", [
    (("networks", 0, "fraction"), "x", "networks[0].fraction"),
    (("networks", 0, "fraction"), 0, "networks[0].fraction"),
    (("networks", 0, "checkpoint"), 5, "networks[0].checkpoint"),
    (("networks", 0, "steps"), -1, "networks[0].steps"),
    (("networks", 0, "wall_time_s"), "slow", "networks[0].wall_time_s"),
    (("networks", 0, "losses", "val", "normal"), -0.1, "networks[0].losses.val.normal"),
    (("networks", 0, "tasks"), ["normals"], "networks[0].tasks"),
    (("reference_losses",), [1], "reference_losses"),
    (("reference_losses", "normal", "val"), "nan", "reference_losses.normal.val"),
])
def test_malformed_fields_are_refused_naming_file_and_field(tmp_path, path, value, field):
    doc = json.loads(json.dumps(GOOD))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    f = tmp_path / "losses.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(SchemaError) as err:
        LossTable.load(f)
    assert str(f) in str(err.value) and field in str(err.value)


def test_duplicate_networks_and_wrong_kind(tmp_path):
    doc = json.loads(json.dumps(GOOD))
    doc["networks"].append(doc["networks"][0])
    f = tmp_path / "dup.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match="duplicate network"):
        LossTable.load(f)
    f.write_text(json.dumps(dict(GOOD, kind="grouping")))
    with pytest.raises(SchemaError, match="'kind'"):
        LossTable.load(f)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TaskgroupError, match="no losses.json here or in"):
        LossTable.load(empty)


def test_a_pipeline_run_directory_reads_its_training_table(tmp_path):
    from taskgroup.losstable import resolve_table_path

    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "losses.json").write_text(json.dumps(GOOD))
    assert LossTable.load(tmp_path).tasks == LossTable.load(tmp_path / "train").tasks
    assert resolve_table_path(tmp_path) == tmp_path / "train" / "losses.json"
