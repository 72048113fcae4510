"""The k best distinct groupings: exact against brute force; re-ranking trains each network once."""

import itertools

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.profile.costmodel import corun_factor
from taskgroup.search import Candidate, select
from taskgroup.search.topk import estimate_errors, grouping_summary, networks_to_train, top_k

from test_solvers_agree import tables


def best_per_network_set(tasks, cands, budget, corun=0.0):
    """Every grouping by brute force: per distinct set of networks (each serving a task), its best
    (score, cost) within the budget."""
    best = {}
    options = [[i for i, c in enumerate(cands) if t in c.losses] for t in tasks]
    for assign in itertools.product(*options):
        nets = frozenset(assign)
        cost = sum(cands[i].fixed_cost for i in nets) + sum(cands[i].head_cost(t) for t, i in zip(tasks, assign))
        cost *= corun_factor(corun, len(nets))
        if cost > budget + 1e-9:
            continue
        score = sum(cands[i].losses[t] for t, i in zip(tasks, assign))
        if nets not in best or (score, cost) < best[nets]:
            best[nets] = (score, cost)
    return sorted(best.values())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.integers(1, 5), st.sampled_from([0.0, 0.1]))
def test_top_k_equals_brute_force(table, k, corun):
    tasks, cands, budget, _ = table
    want = best_per_network_set(tasks, cands, budget, corun)[:k]
    got = top_k(cands, budget, k, tasks=tasks, corun=corun)
    assert len(got) == len(want)
    for sel, (score, cost) in zip(got, want):
        assert sel.objective == pytest.approx(score, abs=1e-6)
    assert len({frozenset(n.candidate.key for n in g.networks) for g in got}) == len(got)  # distinct sets
    if got:
        first = select(cands, budget, tasks=tasks, corun=corun)
        assert got[0].objective == pytest.approx(first.objective, abs=1e-6)


def test_re_ranking_lists_each_estimated_network_once_and_measures_its_error():
    tasks = ("a", "b", "c")
    est = [Candidate(("a", "b", "c"), 1.0, {"a": 1.0, "b": 1.0, "c": 1.0}, 1.0, estimated=True),
           Candidate(("a", "b"), 1.0, {"a": 0.9, "b": 1.2}, 1.0),
           Candidate(("b", "c"), 1.0, {"b": 1.1, "c": 1.05}, 1.0, estimated=False),
           Candidate(("a", "c"), 1.0, {"a": 1.2, "c": 0.9}, 1.0, estimated=True),
           Candidate(("c",), 0.5, {"c": 1.3}, 0.5), Candidate(("a",), 0.5, {"a": 1.25}, 0.5)]
    groupings = top_k(est, 2.0, 4, tasks=tasks)
    assert [round(g.objective, 6) for g in groupings] == sorted(round(g.objective, 6) for g in groupings)
    to_train = networks_to_train(groupings)
    assert len(to_train) == len({c.key for c in to_train}) and all(c.estimated for c in to_train)
    assert [c.tasks for c in to_train] == [("a", "b", "c"), ("a", "c")]  # a+b+c is in three of the four
    measured = [Candidate(("a", "b", "c"), 1.0, {"a": 1.1, "b": 0.8, "c": 1.0}, 1.0)]
    entries = [n.to_json() for g in groupings for n in grouping_summary(g).networks]
    errors = {(e.network, e.task): e.error for e in estimate_errors(entries, measured)}
    assert set(errors) == {("a+b+c@1", "a"), ("a+b+c@1", "b"), ("a+b+c@1", "c")}  # a+c is not trained; a+b is measured
    assert errors[("a+b+c@1", "a")] == pytest.approx(1.0 / 1.1 - 1)


def test_k_is_checked():
    c = [Candidate(("a",), 1.0, {"a": 1.0}, 1.0)]
    for bad in (0, 51, 2.5, True):
        with pytest.raises(TaskgroupError, match="--top-k"):
            top_k(c, 1.0, bad, tasks=("a",))
    assert top_k(c, 0.5, 3, tasks=("a",)) == []  # nothing fits


def test_select_top_k_says_which_groupings_are_within_noise_of_the_best(tmp_path, capsys):
    """A loss table trained with the default recipe (its seed noise measured): each of the k best is
    compared with the best on one standard error of their paired difference, the pair's measured spread
    where the seed-noise record has both groupings, else its conservative bound."""
    import json

    from taskgroup.cli import main
    from taskgroup.losstable import LossTable, NetworkResult
    from taskgroup.seednoise import for_preset
    from taskgroup.tasks import PAPER_TASKS
    from taskgroup.train import make_run_config

    tasks = PAPER_TASKS
    base = {t: 0.5 + 0.1 * i for i, t in enumerate(tasks)}

    def net(group, width, bonus):
        losses = {t: base[t] * (1.2 if width == 0.5 else 1.0) * (1 - bonus) for t in group}
        return NetworkResult(tuple(group), width, "final", {"val": losses, "test": losses})
    nets = [net([t], w, 0.0) for t in tasks for w in (1.0, 0.5)]
    nets += [net(p, 1.0, 0.01 * (i % 4)) for i, p in enumerate(itertools.combinations(tasks, 2))]
    nets.append(net(tasks, 1.0, 0.02))
    meta = {"run_config": make_run_config("wide").to_dict()}
    LossTable(tasks, nets, {t: {"val": 2 * base[t], "test": 2 * base[t]} for t in tasks}, meta).save(
        tmp_path / "run" / "losses.json")
    out = tmp_path / "best.json"
    with pytest.raises(SystemExit) as exc:
        main(["select", "--losses", str(tmp_path / "run"), "--budget", "2.5", "--top-k", "6", "--out", str(out)])
    assert exc.value.code in (0, None)
    doc = json.loads(out.read_text())
    record = for_preset("wide")
    assert doc["top_k_noise"]["run_seeds"] == 1 and doc["top_k_noise"]["source"] == record.source
    best = doc["top_k"][0]
    assert "within_noise_of_best" not in best and len(doc["top_k"]) == 6

    def networks(g):
        return [(tuple(n["tasks"]), n["width"], tuple(n["served"])) for n in g["networks"]]
    kinds = set()
    for g in doc["top_k"][1:]:
        c = g["within_noise_of_best"]
        spread = record.pair("reference", networks(best), networks(g))
        assert c["tolerance"] == pytest.approx(spread.std) and c["spread"]["basis"] == spread.basis
        assert c["minus_optimum"] == pytest.approx(g["objective"] - best["objective"])
        assert c["within"] == (c["minus_optimum"] <= c["tolerance"] + 1e-9)
        kinds.add(c["spread"]["basis"])
    assert "bound" in kinds
    text = " ".join(capsys.readouterr().out.split())
    assert "minus best: within noise?" in text and "within one standard error of the paired difference" in text
    # another recipe: no measured noise, no column
    meta = {"run_config": make_run_config("tiny").to_dict()}
    LossTable(tasks, nets, {t: {"val": 2 * base[t], "test": 2 * base[t]} for t in tasks}, meta).save(
        tmp_path / "tiny" / "losses.json")
    with pytest.raises(SystemExit):
        main(["select", "--losses", str(tmp_path / "tiny"), "--budget", "2.5", "--top-k", "3", "--out", str(out)])
    assert "top_k_noise" not in json.loads(out.read_text())
