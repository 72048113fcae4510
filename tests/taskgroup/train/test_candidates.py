import math

import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.train.candidates import CandidateSpec, candidate_set, normalise_spec

TASKS = ("segment_semantic", "depth_zbuffer", "normal", "keypoints2d", "edge_texture")


@pytest.mark.parametrize("kind,count", [("singles", 10), ("pairs", 10 + 10), ("all", 2 ** 5 - 1 + 5)])
def test_candidate_set_sizes(kind, count):
    specs = candidate_set(kind, TASKS)
    assert len(specs) == count
    assert len({s.name for s in specs}) == count  # no duplicates


def test_pairs_are_full_width_and_singles_have_both_widths():
    specs = candidate_set("pairs", TASKS)
    assert {s.width for s in specs if len(s.tasks) == 2} == {1.0}
    assert sum(1 for s in specs if len(s.tasks) == 1 and s.width == 0.5) == 5
    assert sum(1 for s in specs if len(s.tasks) == 2) == math.comb(5, 2)


def test_unknown_set_lists_valid_ones():
    with pytest.raises(TaskgroupError, match="singles, pairs, all"):
        candidate_set("triples", TASKS)


def test_normalise_orders_tasks_as_in_the_run_and_rejects_foreign_tasks():
    spec = normalise_spec(CandidateSpec(("normal", "segment_semantic")), TASKS)
    assert spec.tasks == ("segment_semantic", "normal")
    assert spec.name == "segment_semantic+normal@1"
    with pytest.raises(TaskgroupError, match="not in this run's tasks"):
        normalise_spec(CandidateSpec(("rgb",)), TASKS)


def test_parse_networks_orders_tasks_and_reads_widths():
    from taskgroup.errors import TaskgroupError
    from taskgroup.train.candidates import CandidateSpec, parse_networks

    tasks = ("segment_semantic", "depth_zbuffer", "normal")
    assert parse_networks("normal+segment_semantic@1, depth_zbuffer@0.5,normal", tasks) == [
        CandidateSpec(("segment_semantic", "normal"), 1.0), CandidateSpec(("depth_zbuffer",), 0.5),
        CandidateSpec(("normal",), 1.0)]
    for bad, message in [("normal@half", "not a number"), ("rgb@1", "not in this run's tasks"), (" , ", "empty"),
                         ("normal+normal", "no task twice"), ("normal@0", "width must be in")]:
        with pytest.raises(TaskgroupError, match=message):
            parse_networks(bad, tasks)
