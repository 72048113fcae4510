"""Candidates built from a loss table: what selection sees, and which weights a grouping points at."""

from taskgroup.losstable import LossTable, NetworkResult
from taskgroup.search.table import candidates_from_table


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


def test_on_an_exact_tie_a_trained_network_is_chosen_over_an_estimated_one():
    from taskgroup.search import select
    from taskgroup.search.candidates import make_candidate, snt_cost

    def cand(tasks, losses, estimated=False):
        return make_candidate(tasks, 1.0, dict(zip(tasks, losses)), snt_cost, estimated=estimated)

    # The estimated triple serves a and b exactly as well as the trained pair, at the same cost;
    # the strong single serves c. Both groupings score 1.3 at cost 2.
    cands = [cand(("a",), [1.0]), cand(("b",), [1.0]), cand(("c",), [0.3]), cand(("a", "b"), [0.5, 0.5]),
             cand(("a", "c"), [0.5, 0.9]), cand(("b", "c"), [0.5, 0.9]),
             cand(("a", "b", "c"), [0.5, 0.5, 0.9], estimated=True)]
    for solver in ("milp", "dp", "reference"):
        for order in (cands, cands[::-1]):
            sel = select(order, 2.0, tasks=("a", "b", "c"), solver=solver)
            assert sel.objective == 1.3 or abs(sel.objective - 1.3) < 1e-12
            assert not any(n.candidate.estimated for n in sel.networks), (solver, [n.candidate.tasks for n in sel.networks])
