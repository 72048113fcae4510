"""Base-model estimation: every group from the all-task network (full and half width) and its affinity.

A planted model of exactly the documented form must be recovered exactly from the two networks the
plan trains; measured networks keep their losses; bad input is a one-line error."""

import itertools
import json
import math

import pytest

from taskgroup.affinity import AffinityRun, AffinityTable
from taskgroup.cli import main
from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable, NetworkResult
from taskgroup.search import ESTIMATORS, candidates_from_table, select
from taskgroup.search.base_model import MIN_SHARE, base_calibration_for
from taskgroup.search.registry import TRAINING_PLANS
from taskgroup.train.candidates import CandidateSpec, candidate_set

TASKS = ("s", "d", "n", "k")
REFERENCE = {"s": 2.0, "d": 0.25, "n": 0.4, "k": 1.0}
OWN = {"s": 0.30, "d": 0.20, "n": 0.10, "k": 0.25}  # g_t: each task's own progress (log-loss below trivial)
HALF = {"s": 1.05, "d": 1.10, "n": 1.02, "k": 1.20}  # L@0.5 / L@1 of the all-task network, per task
COSINE = [[1.0, 0.2, 0.3, -0.1],
          [0.2, 1.0, -0.2, 0.1],
          [0.3, -0.2, 1.0, 0.0],
          [-0.1, 0.1, 0.0, 1.0]]
TAG = [[0.010, 0.004, 0.008, 0.000], [0.006, 0.020, 0.002, 0.010],
       [0.002, 0.006, 0.010, 0.004], [0.000, 0.002, 0.004, 0.020]]


def planted(group, t, matrix=COSINE, own=OWN):
    """The planted additive model: P_G(t) = g_t (1 + sum over groupmates of M[u][t] / M[t][t])."""
    i = TASKS.index(t)
    share = 1 + sum(matrix[TASKS.index(u)][i] for u in group if u != t) / matrix[i][i]
    return REFERENCE[t] * math.exp(-own[t] * share)


def make_table(matrix=COSINE, own=OWN, extra=(), half=True, affinity=True):
    whole = {t: planted(TASKS, t, matrix, own) for t in TASKS}
    nets = [NetworkResult(TASKS, 1.0, "final", {"val": dict(whole), "test": dict(whole)}, "c/all.pt")]
    if half:
        nets.append(NetworkResult(TASKS, 0.5, "final", {"val": {t: whole[t] * HALF[t] for t in TASKS}}, "c/half.pt"))
    nets += list(extra)
    table_affinity = (AffinityTable(TASKS, 1.0, [AffinityRun(0, "final", 10, 10, 1.0, {"tag": matrix, "cosine": matrix})])
                      if affinity else None)
    return LossTable(TASKS, nets, {t: {"val": v, "test": v} for t, v in REFERENCE.items()}, {}, table_affinity)


def test_planted_additive_model_is_recovered_exactly_for_every_group_and_half_width_single():
    cands = candidates_from_table(make_table(), "val", "final", estimate="base")
    by_key = {c.key: c for c in cands}
    for k in range(1, len(TASKS) + 1):
        for group in itertools.combinations(TASKS, k):
            c = by_key.pop((frozenset(group), 1.0))
            assert c.losses == pytest.approx({t: planted(group, t) for t in group}, rel=1e-12)
            assert c.estimated == (k < len(TASKS)) and c.tasks == group
    for t in TASKS:
        c = by_key.pop((frozenset((t,)), 0.5))
        assert c.estimated and c.losses[t] == pytest.approx(planted((t,), t) * HALF[t], rel=1e-12)
    assert by_key == {}  # 15 full-width groups + 4 half singles; the half-width all-task network is not offered


def test_estimates_feed_an_exact_selection():
    """At 1.5 SNT the planted model's best grouping, found by brute force, is the one selected."""
    cands = candidates_from_table(make_table(), "val", "final", estimate="base")
    sel = select(cands, 1.5, tasks=TASKS)
    best = min(((net_a, net_b) for net_a in cands for net_b in cands if net_a.width + net_b.width <= 1.5),
               key=lambda p: sum(min(c.losses.get(t, math.inf) for c in p) for t in TASKS))
    assert sel.objective == pytest.approx(sum(min(c.losses.get(t, math.inf) for c in best) for t in TASKS), rel=1e-12)


def test_measured_networks_keep_their_losses():
    pair = NetworkResult(("s", "d"), 1.0, "final", {"val": {"s": 0.123, "d": 0.0456}}, "c/sd.pt")
    half_single = NetworkResult(("k",), 0.5, "final", {"val": {"k": 0.777}}, "c/k.pt")
    cands = candidates_from_table(make_table(extra=[pair, half_single]), "val", "final", estimate="base")
    by_key = {c.key: c for c in cands}
    assert by_key[(frozenset("sd"), 1.0)].losses == {"s": 0.123, "d": 0.0456}
    assert not by_key[(frozenset("sd"), 1.0)].estimated and by_key[(frozenset("sd"), 1.0)].checkpoint == "c/sd.pt"
    assert by_key[(frozenset("k"), 0.5)].losses == {"k": 0.777} and not by_key[(frozenset("k"), 0.5)].estimated
    assert len(cands) == 19


def test_a_task_whose_groupmates_would_undo_its_progress_keeps_the_all_task_loss():
    """n's groupmates oppose it so much (1 + S_n(all) < MIN_SHARE) that affinity is not used for it."""
    matrix = [row[:] for row in COSINE]
    matrix[0][2] = matrix[1][2] = -0.5  # s and d onto n: 1 + S_n(all) = 1 - 0.5 - 0.5 + 0 = 0
    assert 1 + sum(matrix[i][2] for i in (0, 1, 3)) < MIN_SHARE
    table = make_table(matrix=matrix)
    whole = {(n.tasks, n.width): n for n in table.networks}[(TASKS, 1.0)].losses["val"]
    cal = base_calibration_for(table)
    assert "n" not in cal.own_progress and set(cal.own_progress) == {"s", "d", "k"}
    for c in candidates_from_table(table, "val", "final", estimate="base"):
        if "n" in c.tasks:
            assert c.losses["n"] == pytest.approx(whole["n"] * (HALF["n"] if c.width == 0.5 else 1.0), rel=1e-12)


def test_without_the_half_width_network_only_full_width_groups_are_estimated():
    cands = candidates_from_table(make_table(half=False), "val", "final", estimate="base")
    assert {c.width for c in cands} == {1.0} and len(cands) == 15


def test_no_affinity_table_no_all_task_network_or_trivial_losses_is_an_error():
    with pytest.raises(TaskgroupError, match=r"no affinity table: .*`taskgroup train --candidates base`"):
        candidates_from_table(make_table(affinity=False), "val", "final", estimate="base")
    table = make_table()
    table.networks = [n for n in table.networks if n.width == 0.5]
    with pytest.raises(TaskgroupError, match=r"no 'final' network s\+d\+n\+k@1"):
        candidates_from_table(table, "val", "final", estimate="base")
    table = make_table()
    table.reference_losses = {}
    with pytest.raises(TaskgroupError, match="no trivial-predictor loss"):
        candidates_from_table(table, "val", "final", estimate="base")


def test_registered_with_its_training_plan():
    assert "base" in ESTIMATORS and ESTIMATORS["base"].uses_table and TRAINING_PLANS["base"] == "base"
    assert candidate_set("base", TASKS) == [CandidateSpec(TASKS, 1.0), CandidateSpec(TASKS, 0.5)]


def run_cli(args, capsys) -> tuple[int, str]:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_select_cli_estimates_with_base(tmp_path, capsys):
    path = tmp_path / "losses.json"
    make_table().save(path)
    out = tmp_path / "best.json"
    code, err = run_cli(["select", "--losses", str(path), "--estimate", "base", "--budget", "2", "--out", str(out)],
                        capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["options"]["estimate"] == "base" and doc["cost"] <= 2 and len(doc["served_by"]) == len(TASKS)


def test_select_cli_refuses_a_table_without_affinity_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "losses.json"
    make_table(affinity=False).save(path)
    out = tmp_path / "best.json"
    code, err = run_cli(["select", "--losses", str(path), "--estimate", "base", "--budget", "2", "--out", str(out)],
                        capsys)
    assert code == 2 and "affinity" in err and "--candidates base" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
