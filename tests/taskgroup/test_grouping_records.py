"""Selection's records in a grouping file: typed when read, written back byte for byte.

The groupings under data/groupings/ were written by the code before these records were typed (when
they were plain dicts in `Grouping.extra`): a profiled selection with the latency-noise rule, the
within-noise rule choosing a cheaper grouping, top-3 compared within noise, stakes and not-learnt
warnings; one whose noise rule left a better grouping out; column generation's proof; and the
pipeline's finalize with its estimate errors.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from taskgroup.errors import SchemaError
from taskgroup.grouping import Grouping
from taskgroup.grouping_records import (RECORD_KEYS, ColumnSearch, EstimateError, ExcludedByNoise, NoiseComparison, NoiseEvidence,
                                        ParsimonyRecord, RobustnessRecord, SolveRecord, StakesRecord, TopK)
from taskgroup.search.robustness import robustness_sentence

DATA = Path(__file__).parent / "data"
STORED = sorted((DATA / "groupings").glob("*.json"))


def load(name: str) -> Grouping:
    return Grouping.load(DATA / "groupings" / name)


def doc_of(name: str) -> dict:
    return json.loads((DATA / "groupings" / name).read_text())


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.name)
def test_a_stored_grouping_is_written_back_byte_for_byte(path, tmp_path):
    grouping = Grouping.load(path)
    assert grouping.extra == {}  # every record it holds is typed
    grouping.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()
    assert Grouping.from_json(grouping.to_json(), path) == grouping


def test_the_records_are_typed_all_the_way_down():
    g = load("profiled-topk-parsimony.json")
    assert isinstance(g.solve, SolveRecord) and g.solve.solver == "reference" and g.solve.optimality.proven_optimal
    assert isinstance(g.robustness, RobustnessRecord) and g.robustness.standard_network_ms > 0
    assert g.robustness.sentence == robustness_sentence(g.robustness)
    assert isinstance(g.parsimony, ParsimonyRecord) and g.parsimony.chose_the_optimum is True
    assert g.parsimony.compared and all(isinstance(c, NoiseComparison) for c in g.parsimony.compared)
    assert not any(c.chosen for c in g.parsimony.compared) and g.parsimony.evidence.run_seeds == 2
    assert isinstance(g.top_k, TopK) and len(g.top_k.top_k) == 3 and isinstance(g.top_k.top_k_noise, NoiseEvidence)
    assert g.top_k.top_k[0].within_noise_of_best is None and g.top_k.top_k[1].within_noise_of_best.spread.basis
    assert isinstance(g.stakes, StakesRecord) and g.stakes.chosen.networks and g.warnings
    excluded = load("profiled-excluded.json")
    assert isinstance(excluded.excluded_by_noise, ExcludedByNoise) and excluded.within_noise_off
    assert excluded.excluded_by_noise.cost_ms < excluded.budget.value < excluded.excluded_by_noise.fit_cost_ms
    colgen = load("colgen.json")
    assert isinstance(colgen.solve.optimality.search, ColumnSearch) and colgen.solve.optimality.search.rounds >= 1
    final = load("finalized.json")
    assert all(isinstance(e, EstimateError) for e in final.estimate_errors) and final.estimate_errors
    # the pipeline writes its estimate errors before the selection's records
    assert [k for k in doc_of("finalized.json") if k in RECORD_KEYS][:2] == ["estimate_errors", "max_networks"]


def test_a_grouping_from_before_the_records_loads_and_gains_no_nulls(tmp_path):
    """The earlier example report's grouping: no optimality, robustness or stakes recorded."""
    path = DATA / "legacy" / "best-before-contracts.json"
    g = Grouping.load(path)
    assert g.solve.solver == "reference" and g.solve.optimality is None and g.robustness is None
    doc = g.to_json()
    assert "optimality" not in doc and "robustness" not in doc and "stakes" not in doc


def test_an_older_robustness_record_loads_and_still_reads_as_a_sentence():
    """Before the next-profile risk, the asked margin and the noise flag were recorded."""
    doc = doc_of("profiled-excluded.json")
    for key in ("risk_next_profile", "sigmas_asked", "noise_known", "standard_network_ms", "holds_from_snt",
                "holds_to_snt"):
        del doc["robustness"][key]
    g = Grouping.from_json(doc, "best.json")
    assert g.robustness.risk_next_profile is None and g.robustness.standard_network_ms is None
    assert robustness_sentence(g.robustness).startswith("The choice would change below ")


def test_a_newer_writers_fields_survive_inside_each_record():
    doc = doc_of("profiled-topk-parsimony.json")
    doc["robustness"]["next_year"] = {"x": 1}
    doc["top_k"][1]["within_noise_of_best"]["spread"]["method"] = "bootstrap"
    doc["stakes"]["one_network"]["effect_size"] = 0.5
    doc["a_new_block"] = [1, 2]
    g = Grouping.from_json(doc, "best.json")
    assert g.robustness.extra == {"next_year": {"x": 1}} and g.extra == {"a_new_block": [1, 2]}
    assert g.top_k.top_k[1].within_noise_of_best.spread.extra == {"method": "bootstrap"}
    assert json.dumps(g.to_json()) == json.dumps(doc)


def test_records_in_extra_are_read_into_their_typed_fields():
    """A builder holding a record as a plain dict (as selection did) gets the typed grouping."""
    doc = doc_of("profiled-excluded.json")
    typed = Grouping.from_json(doc, "best.json")
    core = {k: v for k, v in doc.items() if k not in ("robustness", "stakes", "top_k", "to_train")}
    g = Grouping.from_json(core, "best.json")
    g = Grouping(**{**g.__dict__, "extra": {"robustness": doc["robustness"], "stakes": doc["stakes"],
                                            "top_k": doc["top_k"], "to_train": doc["to_train"]}})
    assert (g.robustness, g.stakes, g.top_k, g.extra) == (typed.robustness, typed.stakes, typed.top_k, {})


@pytest.mark.parametrize("field, edit, message", [
    ("robustness.sigmas", lambda d: d["robustness"].update(sigmas="2"), "expected a finite number, found '2'"),
    ("robustness.near_budget[0].fits", lambda d: d["robustness"].update(near_budget=[{"networks": ["a@1"], "fits": 1}]),
     "expected true or false, found 1"),
    ("top_k[1].networks[0].losses", lambda d: d["top_k"][1]["networks"][0].update(losses={"normal": "x"}),
     "expected an object name -> number"),
    ("stakes.one_network", lambda d: d["stakes"].update(one_network=[1]), "expected an object, found list"),
    ("candidates.given", lambda d: d["candidates"].update(given=2.5), "expected an integer, found 2.5"),
    ("warnings", lambda d: d.update(warnings="c is not learnt"), "expected a list of strings"),
    ("parsimony.compared[0].spread", lambda d: d["parsimony"]["compared"][0].update(spread=7),
     "expected an object, found int"),
])
def test_a_bad_field_is_one_line_naming_the_file_the_field_and_the_fix(field, edit, message):
    doc = copy.deepcopy(doc_of("profiled-topk-parsimony.json"))
    edit(doc)
    with pytest.raises(SchemaError) as exc:
        Grouping.from_json(doc, "best.json")
    text = str(exc.value)
    assert text.startswith(f"best.json: field '{field}': ") and message in text and "\n" not in text
    assert text.endswith("fix the field, or select again to rewrite the file")
