"""Loss estimates from a one-run affinity table: the documented mapping, its calibration, the
registered `tag`/`cosine` estimators and `select --estimate tag|cosine`."""

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from taskgroup.affinity import AffinityRun, AffinityTable
from taskgroup.cli import main
from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable, NetworkResult
from taskgroup.search import ESTIMATORS, candidates_from_table, select
from taskgroup.search.affinity import affinity_candidates, calibration_for

ROOT = Path(__file__).resolve().parents[3]
TASKS = ("s", "d", "n", "k")
SINGLE = {"s": 1.0, "d": 0.2, "n": 0.3, "k": 0.5}
REFERENCE = {"s": 2.0, "d": 0.25, "n": 0.3, "k": 1.0}  # n: the single did not beat its trivial predictor
ALL = {"s": 0.95, "d": 0.22, "n": 0.29, "k": 0.55}
# Affinity onto each target (column) from each source (row).
TAG = [[0.010, 0.004, 0.008, 0.000],
       [0.006, 0.020, 0.002, 0.010],
       [0.002, 0.006, 0.010, 0.004],
       [0.000, 0.002, 0.004, 0.020]]
COSINE = [[1.0, 0.1, 0.3, -0.2], [0.1, 1.0, 0.5, 0.0], [0.3, 0.5, 1.0, 0.2], [-0.2, 0.0, 0.2, 1.0]]


def make_table(matrix=TAG, extra=(), reference=REFERENCE):
    nets = [NetworkResult((t,), w, "final", {"val": {t: SINGLE[t] * (1.2 if w == 0.5 else 1.0)},
                                             "test": {t: 2 * SINGLE[t]}}, f"c/{t}{w}.pt") for t in TASKS for w in (1.0, 0.5)]
    nets.append(NetworkResult(TASKS, 1.0, "final", {"val": dict(ALL), "test": dict(ALL)}, "c/all.pt"))
    nets += list(extra)
    affinity = AffinityTable(TASKS, 1.0, [AffinityRun(0, "final", 10, 10, 1.0, {"tag": matrix, "cosine": COSINE})])
    return LossTable(TASKS, nets, {t: {"val": v} for t, v in reference.items()}, {}, affinity)


def documented(matrix, group, t, reference=REFERENCE):
    """The mapping of docs/select.md, written out independently."""
    i = TASKS.index(t)
    s = lambda members: sum(matrix[TASKS.index(u)][i] for u in members if u != t) / matrix[i][i]  # noqa: E731
    g = max(0.0, math.log(reference[t] / SINGLE[t]))
    c = math.log(ALL[t] / SINGLE[t]) + g * s(TASKS)
    return SINGLE[t] * math.exp(-g * s(group) + c * (len(group) - 1) / (len(TASKS) - 1))


def test_group_of_one_is_the_single_and_all_tasks_is_the_all_task_network():
    table = make_table()
    for kind in ("tag", "cosine"):
        got = affinity_candidates(table, [("n",), TASKS, ("k", "s")], kind=kind)
        assert got[0].losses == {"n": SINGLE["n"]} and not got[0].estimated and got[0].checkpoint == "c/n1.0.pt"
        assert got[1].losses == pytest.approx(ALL, rel=1e-12)
        assert got[2].tasks == ("s", "k") and got[2].estimated and got[2].checkpoint is None


@pytest.mark.parametrize("kind", ["tag", "cosine"])
def test_the_documented_mapping(kind):
    table = make_table()
    matrix = TAG if kind == "tag" else COSINE
    for group in itertools.chain.from_iterable(itertools.combinations(TASKS, k) for k in (2, 3)):
        (cand,) = affinity_candidates(table, [group], kind=kind)
        assert cand.losses == pytest.approx({t: documented(matrix, group, t) for t in group}, rel=1e-12)
    cal = calibration_for(table, kind)
    assert cal.gain["n"] == 0.0  # not learnt: affinity is not used for it
    assert cal.gain["s"] == pytest.approx(math.log(2.0))


def test_within_a_task_groups_rank_by_their_affinity_onto_it():
    table = make_table()
    # onto s: d gives 0.006, n 0.002, k 0.000
    pairs = {u: affinity_candidates(table, [("s", u)])[0].losses["s"] for u in ("d", "n", "k")}
    assert pairs["d"] < pairs["n"] < pairs["k"]
    # and onto n (not learnt) the partner makes no difference
    assert len({round(affinity_candidates(table, [("n", u)])[0].losses["n"], 12) for u in ("s", "d", "k")}) == 1


def test_a_task_whose_own_step_does_not_help_it_follows_the_residual_only():
    matrix = [row[:] for row in TAG]
    matrix[3][3] = -0.001
    table = make_table(matrix=matrix)
    for group in [("k", "s"), ("k", "d", "n")]:
        share = (len(group) - 1) / (len(TASKS) - 1)
        got = affinity_candidates(table, [group])[0].losses["k"]
        assert got == pytest.approx(SINGLE["k"] * (ALL["k"] / SINGLE["k"]) ** share, rel=1e-12)


def test_without_reference_losses_affinity_is_not_used():
    table = make_table(reference={})
    (cand,) = affinity_candidates(table, [("s", "d")])
    for t in ("s", "d"):
        assert cand.losses[t] == pytest.approx(SINGLE[t] * (ALL[t] / SINGLE[t]) ** (1 / 3), rel=1e-12)


def test_registered_estimators_keep_what_the_method_trains_and_estimate_the_rest():
    assert {"hoa", "tag", "cosine"} <= set(ESTIMATORS)
    pair = NetworkResult(("s", "d"), 1.0, "final", {"val": {"s": 0.1, "d": 0.1}}, "c/sd.pt")
    table = make_table(extra=[pair])
    for kind in ("tag", "cosine"):
        cands = candidates_from_table(table, "val", "final", estimate=kind)
        measured = [c for c in cands if not c.estimated]
        assert {c.name for c in measured} == {f"{t}@{w:g}" for t in TASKS for w in (1, 0.5)} | {"s+d+n+k@1"}
        estimated = [c for c in cands if c.estimated]
        assert len(estimated) == 2 ** len(TASKS) - 1 - len(TASKS) - 1  # every other full-width group
        assert all(c.width == 1.0 and c.checkpoint is None for c in estimated)
        sd = next(c for c in estimated if c.tasks == ("s", "d"))
        assert sd.losses["s"] != 0.1  # the measured pair is replaced by its estimate
    tag = {c.key: c.losses for c in candidates_from_table(table, estimate="tag")}
    cos = {c.key: c.losses for c in candidates_from_table(table, estimate="cosine")}
    assert tag != cos
    sel = select(candidates_from_table(table, estimate="tag"), 1.5, tasks=TASKS)
    assert sel.cost <= 1.5


def test_tag_nomomentum_reads_its_own_matrix_and_older_tables_say_they_lack_it():
    """The estimator of the lookahead without momentum is the same mapping on the `tag-nomomentum`
    matrix; a table measured before that kind existed names the missing matrix."""
    flat = [[0.020, 0.001, 0.012, 0.000], [0.010, 0.030, 0.001, 0.015],
            [0.001, 0.009, 0.012, 0.002], [0.000, 0.001, 0.006, 0.025]]
    table = make_table()
    table.affinity.runs[0].matrices["tag-nomomentum"] = flat
    assert "tag-nomomentum" in ESTIMATORS and table.affinity.kinds() == ["tag", "cosine", "tag-nomomentum"]
    got = {c.tasks: c for c in candidates_from_table(table, "val", "final", estimate="tag-nomomentum") if c.estimated}
    for group in [("s", "d"), ("d", "n", "k")]:
        for t in group:
            assert got[group].losses[t] == pytest.approx(documented(flat, group, t), rel=1e-12)
    tag = {c.tasks: c.losses for c in candidates_from_table(table, "val", "final", estimate="tag") if c.estimated}
    assert tag[("s", "d")] != got[("s", "d")].losses
    with pytest.raises(TaskgroupError, match="no 'tag-nomomentum' matrix"):
        candidates_from_table(make_table(), estimate="tag-nomomentum")


def test_without_an_affinity_table_the_estimator_says_how_to_get_one():
    table = make_table()
    table.affinity = None
    with pytest.raises(TaskgroupError, match="--candidates affinity"):
        candidates_from_table(table, estimate="tag")


def test_select_cli_with_tag_and_cosine(tmp_path, capsys):
    table = make_table()
    table.save(tmp_path / "run" / "losses.json")
    for kind in ("tag", "cosine"):
        out = tmp_path / f"{kind}.json"
        try:
            main(["select", "--losses", str(tmp_path / "run"), "--budget", "1.5", "--estimate", kind,
                  "--out", str(out)])
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
        doc = json.loads(out.read_text())
        assert doc["cost"] <= 1.5 and len(doc["served_by"]) == len(TASKS)
    # a table without affinity: one line naming the cure, exit 2, no output
    table.affinity = None
    table.save(tmp_path / "plain" / "losses.json")
    proc = subprocess.run([sys.executable, "-m", "taskgroup", "select", "--losses", str(tmp_path / "plain"),
                           "--budget", "1.5", "--estimate", "tag", "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "no affinity table" in proc.stderr and "--candidates affinity" in proc.stderr
    assert not (tmp_path / "x.json").exists()
