"""Candidates built from a loss table: what selection sees, and which weights a grouping points at."""

from taskgroup.losstable import LossTable, NetworkResult
from taskgroup.search.candidates import candidates_from_table


def _net(tasks, stage, checkpoint):
    losses = {s: {t: 0.5 for t in tasks} for s in ("val", "test")}
    return NetworkResult(tuple(tasks), 1.0, stage, losses, checkpoint)


def test_an_early_candidate_points_at_the_fully_trained_weights_or_at_none():
    table = LossTable(("a", "b"), [
        _net(("a",), "early", "a_early.pt"), _net(("a",), "final", "a.pt"),
        _net(("b",), "early", "b_early.pt"),  # never trained fully
    ])
    early = {c.tasks: c for c in candidates_from_table(table, "val", "early")}
    assert early[("a",)].checkpoint == "a.pt" and early[("a",)].stage == "early"
    assert early[("b",)].checkpoint is None  # export refuses it instead of shipping ESA weights
    final = {c.tasks: c for c in candidates_from_table(table, "val", "final")}
    assert final[("a",)].checkpoint == "a.pt"
