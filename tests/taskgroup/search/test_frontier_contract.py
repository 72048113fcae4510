"""The frontier file (frontier.json) reads back through Frontier.from_json, and the report draws its
test-split markers from what the pipeline writes (they were once read from a field no longer written)."""

from __future__ import annotations

import json
import re

import pytest

from taskgroup.errors import SchemaError
from taskgroup.pipeline import report_figures
from taskgroup.pipeline.report_model import GroupingResult, ReportData, frontier_points
from taskgroup.grouping import GroupingNetwork
from taskgroup.search import Candidate, frontier
from taskgroup.search.frontier import Frontier

TASKS = ("a", "b")


def candidates(losses_a=1.0, estimated_pair=False):
    return [Candidate(("a",), 1.0, {"a": losses_a}, 1.0), Candidate(("b",), 1.0, {"b": 1.0}, 1.0),
            Candidate(("a", "b"), 1.0, {"a": 1.2, "b": 1.3}, 1.2, estimated=estimated_pair)]


def evaluated_frontier(estimated_pair=False) -> Frontier:
    front = frontier(candidates(estimated_pair=estimated_pair), tasks=TASKS, unit="ms")
    test = [Candidate(c.tasks, c.width, {t: 2 * v for t, v in c.losses.items()}, c.fixed_cost) for c in candidates()]
    for p in front.points:  # as the pipeline's select stage does
        if not any(n.candidate.estimated for n in p.networks):
            p.evaluate(test, "test")
    return front


def test_a_frontier_round_trips_through_its_file(tmp_path):
    front = evaluated_frontier()
    front.extra["profile"] = {"profile": "p.json"}  # what `taskgroup frontier` adds beside the points
    doc = json.loads(json.dumps(front.to_json()))
    again = Frontier.from_json(doc, "frontier.json")
    assert again.to_json() == doc
    assert [(p.cost, p.objective, p.evaluation.total) for p in again.points] == \
           [(p.cost, p.objective, p.evaluation.total) for p in front.points]
    assert again.optimum_at(1.5).cost == 1.2 and len(again.points) == 2
    front.points[1].lower_bound = front.points[1].objective - 0.5  # a bounded, not proven, optimum survives the file
    doc = json.loads(json.dumps(front.to_json()))
    assert Frontier.from_json(doc).points[1].gap == 0.5 and Frontier.from_json(doc).to_json() == doc
    path = tmp_path / "frontier.json"
    path.write_text(json.dumps(doc))
    assert Frontier.load(path).to_json() == doc


def test_a_frontier_written_before_evaluations_named_their_split_still_loads():
    doc = evaluated_frontier().to_json()
    for p in doc["points"]:
        del p["evaluated_on"], p["evaluated_losses"]
    front = Frontier.from_json(doc)
    assert [p.evaluation.split for p in front.points] == ["unknown", "unknown"]
    assert front.points[0].evaluation.total == doc["points"][0]["evaluated_total"]


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(unit="s"), "unit"),
    (lambda d: d["points"][0].update(cost="cheap"), "points[0].cost"),
    (lambda d: d["points"][0]["networks"][0].update(served=["b"], tasks=["a"]), "points[0].networks[0].served"),
    (lambda d: d["points"].reverse(), "points"),
    (lambda d: d["points"][1].update(evaluated_losses=[1]), "points[1].evaluated_losses"),
])
def test_a_damaged_frontier_is_refused_naming_the_field(edit, field):
    doc = evaluated_frontier().to_json()
    edit(doc)
    with pytest.raises(SchemaError, match=re.escape(f"frontier.json: field '{field}'")):
        Frontier.from_json(doc, "frontier.json")


def _report_data(front: Frontier, test_scales=None) -> ReportData:
    chosen = GroupingResult("chosen", [GroupingNetwork(TASKS, TASKS, 1.0)], 1.2, {"a": 2.4, "b": 2.6})
    return ReportData(tasks=list(TASKS), budget=1.5, budget_unit="ms", device="cpu", chosen=chosen, baselines=[],
                      pairwise_gains={}, gains_split="test", frontier=frontier_points(front), latency={},
                      compute={}, machine="m", seeds=[0], test_scales=test_scales)


def _drawn(monkeypatch, tmp_path, data):
    figures = []
    monkeypatch.setattr(report_figures, "_save", lambda fig, path: figures.append(fig))
    report_figures.plot_frontier(tmp_path / "frontier.png", data)
    (ax,) = figures[0].axes
    return {line.get_label(): list(zip(line.get_xdata(), line.get_ydata())) for line in ax.get_lines()}


def test_the_report_draws_the_test_markers_of_a_frontier_file(monkeypatch, tmp_path):
    front = Frontier.from_json(json.loads(json.dumps(evaluated_frontier().to_json())))  # as the report reads it
    lines = _drawn(monkeypatch, tmp_path, _report_data(front))
    # two single networks cost 2.0 and serve a, b at test losses 2 + 2; the pair costs 1.2 at 2.4 + 2.6
    assert sorted(lines["same groupings, test split"]) == [(1.2, pytest.approx(5.0)), (2.0, pytest.approx(4.0))]
    # normalised like the chosen grouping's score when the objective is normalised
    lines = _drawn(monkeypatch, tmp_path, _report_data(front, test_scales={"a": 2.0, "b": 4.0}))
    assert sorted(lines["same groupings, test split"]) == [(1.2, pytest.approx(2.4 / 2 + 2.6 / 4)),
                                                           (2.0, pytest.approx(1.0 + 0.5))]


def test_groupings_with_an_estimated_network_get_no_marker(monkeypatch, tmp_path):
    front = Frontier.from_json(evaluated_frontier(estimated_pair=True).to_json())
    lines = _drawn(monkeypatch, tmp_path, _report_data(front))
    assert lines["same groupings, test split"] == [(2.0, pytest.approx(4.0))]


def test_a_points_stakes_survive_the_file_and_ring_it_in_the_report(monkeypatch, tmp_path):
    doc = evaluated_frontier().to_json()
    doc["points"][1]["stakes"] = {"verdict": "better", "percent": 4.2}  # as the pipeline's select stage adds them
    front = Frontier.from_json(json.loads(json.dumps(doc)))
    assert front.to_json() == doc
    assert [p["beyond_noise"] for p in frontier_points(front)] == [False, True]
    lines = _drawn(monkeypatch, tmp_path, _report_data(front))
    assert lines["beats one network beyond noise (95%)"] == [(2.0, pytest.approx(front.points[1].objective))]
