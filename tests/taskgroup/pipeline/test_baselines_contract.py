"""baselines.json is written and read only through BaselinesRecord: it round-trips byte for byte, the
files earlier pipelines wrote still load, and a damaged field is refused in one line naming the
file, the field and how to get a good file back."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.grouping import GroupingNetwork
from taskgroup.pipeline.baselines import (BASELINES_FILE, Baseline, BaselineNetwork, BaselinesRecord, ScoredBaseline,
                                          measured_baselines)
from taskgroup.search import make_candidate

EXAMPLE = Path(__file__).parents[3] / "docs" / "example-report" / BASELINES_FILE


def record() -> BaselinesRecord:
    return BaselinesRecord(0.3, (
        ScoredBaseline("one network", 0.2, {"a": 1.25, "b": 0.5}, 1.75, (GroupingNetwork(("a", "b"), ("a", "b"), 1.0),)),
        ScoredBaseline("random #1", 0.25, {"b": 0.4, "a": 1.0}, 1.4,
                       (GroupingNetwork(("b",), ("b",), 0.5), GroupingNetwork(("a",), ("a",), 1.0))),
    ))


def test_a_record_round_trips_through_its_file(tmp_path):
    path = tmp_path / BASELINES_FILE
    record().save(path)
    loaded = BaselinesRecord.load(path)
    assert loaded == record()
    assert list(loaded.baselines[1].test_losses) == ["b", "a"]  # the order the stage measured them in
    first = path.read_bytes()
    loaded.save(path)
    assert path.read_bytes() == first


def test_the_file_an_earlier_pipeline_wrote_still_loads_and_is_written_back_unchanged(tmp_path):
    text = EXAMPLE.read_text()
    loaded = BaselinesRecord.load(EXAMPLE)
    assert [b.name for b in loaded.baselines][:2] == ["one network", "independent singles"]
    assert all(n.served == n.tasks for b in loaded.baselines for n in b.networks)
    loaded.save(tmp_path / BASELINES_FILE)
    assert (tmp_path / BASELINES_FILE).read_text() == text


def test_measured_baselines_writes_what_the_stage_always_wrote():
    cost = {1.0: 2.0, 0.5: 1.0}
    test = {(frozenset(t), w): make_candidate(t, w, dict.fromkeys(t, 0.25 * len(t) / w),
                                               lambda w, s: (cost[w], dict.fromkeys(s, 0.0)))
            for t, w in [(("a", "b"), 1.0), (("a",), 0.5), (("b",), 0.5)]}
    baselines = [Baseline("one network", (BaselineNetwork(("a", "b"), 1.0),)),
                 Baseline("independent singles", (BaselineNetwork(("a",), 0.5), BaselineNetwork(("b",), 0.5)))]
    doc = measured_baselines(baselines, 3.0, test, lambda w, s: cost[w], 0.0).to_json()
    assert doc == {"schema_version": 1, "kind": "baselines", "budget_ms": 3.0, "baselines": [
        {"name": "one network", "cost_ms": 2.0, "test_losses": {"a": 0.5, "b": 0.5}, "total": 1.0,
         "networks": [{"tasks": ["a", "b"], "served": ["a", "b"], "width": 1.0}]},
        {"name": "independent singles", "cost_ms": 2.0, "test_losses": {"a": 0.5, "b": 0.5}, "total": 1.0,
         "networks": [{"tasks": ["a"], "served": ["a"], "width": 0.5}, {"tasks": ["b"], "served": ["b"], "width": 0.5}]},
    ]}


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(budget_ms=-1), "budget_ms"),
    (lambda d: d.pop("baselines"), "baselines"),
    (lambda d: d["baselines"].__setitem__(0, "one network"), "baselines[0]"),
    (lambda d: d["baselines"][0].update(name=""), "baselines[0].name"),
    (lambda d: d["baselines"][0].update(cost_ms="cheap"), "baselines[0].cost_ms"),
    (lambda d: d["baselines"][1]["test_losses"].update(a=None), "baselines[1].test_losses.a"),
    (lambda d: d["baselines"][0].update(test_losses=[1.0]), "baselines[0].test_losses"),
    (lambda d: d["baselines"][0].pop("total"), "baselines[0].total"),
    (lambda d: d["baselines"][0].update(networks=[]), "baselines[0].networks"),
    (lambda d: d["baselines"][1]["networks"][0].update(served=["a"]), "baselines[1].networks[0].served"),
    (lambda d: d["baselines"][1]["networks"][1].update(tasks="a"), "baselines[1].networks[1].tasks"),
    (lambda d: d["baselines"][1]["networks"][1].update(width=0), "baselines[1].networks[1].width"),
])
def test_a_damaged_field_is_refused_in_one_line_naming_file_field_and_fix(tmp_path, edit, field):
    doc = copy.deepcopy(record().to_json())
    edit(doc)
    path = tmp_path / BASELINES_FILE
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=re.escape(f"{path}: field '{field}'")) as caught:
        BaselinesRecord.load(path)
    message = str(caught.value)
    assert "\n" not in message and "run the pipeline again into a new --out" in message


def test_another_kind_or_version_is_refused(tmp_path):
    path = tmp_path / BASELINES_FILE
    for change, field in ((dict(kind="grouping"), "kind"), (dict(schema_version=2), "schema_version")):
        path.write_text(json.dumps({**record().to_json(), **change}))
        with pytest.raises(TaskgroupError, match=re.escape(f"field '{field}'")):
            BaselinesRecord.load(path)
