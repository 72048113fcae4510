"""The selection workflow on a table small enough to rank every grouping by hand.

Tasks a, b, c in SNT (full width 1, half width 0.5). At budget 2 the groupings rank:
  ab + c@1 2.7 | ab + abc(c) 2.9 | ab + c@0.5 3.2 | abc(a,b) + c@1 3.4 | abc 3.6 (cost 1, the cheapest)
"""

import sys

import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.search import make_candidate, snt_cost
from taskgroup.search.workflow import (Budget, SelectionRequest, check_top_k, resolve_budget, select_grouping,
                                       served_not_learnt)

TASKS = ("a", "b", "c")


def candidates():
    def cand(tasks, width, losses, estimated=False):
        return make_candidate(tasks, width, dict(zip(tasks, losses)), snt_cost, estimated=estimated)

    return [cand(("a",), 1.0, [1.0]), cand(("b",), 1.0, [1.0]), cand(("c",), 1.0, [1.0]),
            cand(("a",), 0.5, [1.5]), cand(("b",), 0.5, [1.5]), cand(("c",), 0.5, [1.5]),
            cand(("a", "b"), 1.0, [0.8, 0.9]), cand(("a", "b", "c"), 1.0, [1.2, 1.2, 1.2], estimated=True)]


def request(tmp_path, budget=2.0, **options):
    return SelectionRequest(candidates(), TASKS, Budget(budget, "snt"), tmp_path / "best.json", tmp_path, **options)


def served(grouping):
    return sorted((n.tasks, n.served, n.width) for n in grouping.networks)


def test_the_known_optimum_is_chosen_and_recorded(tmp_path):
    result = select_grouping(request(tmp_path, options={"losses": "hand"}))
    g = result.grouping
    assert served(g) == [(("a", "b"), ("a", "b"), 1.0), (("c",), ("c",), 1.0)]
    assert g.objective == pytest.approx(2.7) and g.cost == pytest.approx(2.0)
    assert (g.budget.value, g.budget.unit) == (2.0, "snt") and g.options.losses == "hand"
    assert g.options.solver == "auto" and g.options.max_networks is None
    assert result.stakes is not None and g.stakes is not None  # what `select` explains
    assert result.warnings == [] and g.warnings is None and g.top_k is None
    g.save(tmp_path / "best.json")  # the file contract accepts it


def test_top_k_ranks_distinct_groupings_and_lists_estimated_networks_once(tmp_path):
    g = select_grouping(request(tmp_path, top_k=3)).grouping
    assert [round(s.objective, 6) for s in g.top_k.top_k] == [2.7, 2.9, 3.2]
    assert [(n.tasks, n.width) for n in g.top_k.to_train] == [(("a", "b", "c"), 1.0)]


def test_a_smaller_budget_changes_the_choice(tmp_path):
    g = select_grouping(request(tmp_path, budget=1.5)).grouping
    assert served(g) == [(("a", "b"), ("a", "b"), 1.0), (("c",), ("c",), 0.5)]
    assert g.objective == pytest.approx(3.2)


def test_an_infeasible_budget_names_the_cheapest_grouping_and_the_flag(tmp_path):
    with pytest.raises(TaskgroupError, match=r"budget 0.4 snt is below every feasible grouping: the cheapest grouping "
                                             r"serving all 3 tasks costs 1 snt \(a\+b\+c@1\); use --budget 1 or more"):
        select_grouping(request(tmp_path, budget=0.4))


def test_not_learnt_tasks_are_warned_and_estimated_networks_can_be_skipped(tmp_path):
    result = select_grouping(request(tmp_path, reference={"c": {"val": 1.0}, "a": {"val": 5.0}}))
    assert [(w.task, w.network) for w in result.warnings] == [("c", "c@1")]
    assert result.grouping.warnings[0].startswith("c is not learnt by c@1")
    only = select_grouping(request(tmp_path, budget=1.0, reference={"c": {"val": 1.0}})).grouping  # abc, estimated
    assert [w.network for w in served_not_learnt(only, {"c": {"val": 1.0}})] == ["a+b+c@1~est (estimated)"]
    assert served_not_learnt(only, {"c": {"val": 1.0}}, measured_only=True) == []


def test_budgets_resolve_to_the_unit_costs_are_in():
    assert resolve_budget(None, budget=2.0) == Budget(2.0, "snt")
    assert resolve_budget(0.3, budget_ms=1.5) == Budget(1.5, "ms")
    assert resolve_budget(0.5, budget_snt=3.0) == Budget(1.5, "ms", 3.0)
    assert resolve_budget(3.0, budget_snt=1e308).value == sys.float_info.max  # finite for JSON


@pytest.mark.parametrize("bad", [0, 51, True, 2.0])
def test_top_k_out_of_range_is_refused_before_any_work(bad):
    with pytest.raises(TaskgroupError, match="--top-k must be an integer from 1 to 50"):
        check_top_k(bad)


def test_a_budget_in_ms_without_a_profile_is_refused(tmp_path):
    with pytest.raises(TaskgroupError, match="needs costs in the same unit"):
        SelectionRequest(candidates(), TASKS, Budget(2.0, "ms"), tmp_path / "b.json", tmp_path)
