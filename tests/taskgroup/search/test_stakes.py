"""Stakes: how much grouping matters at the chosen budget, against one network and independent singles,
with a verdict at 95% from Student's t (paired over seeds, else the preset's measured noise, else unknown)."""

import json
import math

import pytest
from scipy.stats import t as student_t

from taskgroup.cli import main
from taskgroup.grouping import GroupingNetwork
from taskgroup.losstable import LossTable, NetworkResult, SeedResult
from taskgroup.pipeline.report import write_report
from taskgroup.pipeline.report_model import GroupingResult, ReportData
from taskgroup.pipeline.report_text import stakes_of
from taskgroup.search.stakes import SHIP_ONE, Side, measure
from taskgroup.seednoise import MeasuredGrouping, SeedNoise

AB = ((("a", "b"), 1.0, ("a", "b")),)
SINGLES = ((("a",), 1.0, ("a",)), (("b",), 1.0, ("b",)))
PAIR_AND_HALF = ((("a", "b"), 1.0, ("a",)), (("b",), 0.5, ("b",)))


def side(name, networks, per_seed, cost=1.0, fits=True):
    values = list(per_seed.values())
    return Side(name, networks, sum(values) / len(values), cost, fits, per_seed if len(per_seed) > 1 else {})


def test_within_noise_over_seeds_says_grouping_does_not_matter():
    # chosen - one network per seed: -0.01, 0, -0.01 (mean -0.00667, sd 0.00577, se 0.00333); 95% with 2 degrees
    # of freedom needs beyond 4.303 x 0.00333 = 0.01434
    one = side("one network", AB, {0: 3.00, 1: 3.02, 2: 2.98})
    chosen = side("the chosen grouping", SINGLES, {0: 2.99, 1: 3.02, 2: 2.97}, cost=2.0)
    st = measure(chosen, one, None, "val")
    c = st.one_network.comparison
    se = math.sqrt(((-0.01 + 0.02 / 3) ** 2 * 2 + (0.02 / 3) ** 2) / 2) / math.sqrt(3)
    assert c.threshold == pytest.approx(student_t.ppf(0.975, 2) * se) and c.df == 2
    assert st.one_network.percent == pytest.approx(100 * (0.02 / 3) / 3.0)
    assert st.one_network.verdict == "within noise" and st.matters is False
    assert st.conclusion().startswith(SHIP_ONE) and "0.22% below" in st.conclusion()
    assert "95% confidence (two-sided)" in st.conclusion()


def test_clearly_beyond_noise_gives_the_percent_and_the_verdict():
    # differences -0.20, -0.22, -0.18: mean -0.2, se 0.01155, threshold 4.303 x 0.01155 = 0.0497
    one = side("one network", AB, {0: 3.00, 1: 3.02, 2: 2.98})
    chosen = side("the chosen grouping", SINGLES, {0: 2.80, 1: 2.80, 2: 2.80}, cost=2.0)
    singles = side("independent singles", SINGLES, {0: 2.80, 1: 2.80, 2: 2.80}, cost=2.0)
    st = measure(chosen, one, singles, "test")
    assert st.matters is True and st.one_network.verdict == "better"
    assert st.one_network.percent == pytest.approx(100 * 0.2 / 3.0)
    assert st.one_network.threshold_percent == pytest.approx(100 * student_t.ppf(0.975, 2) * 0.02 / math.sqrt(3) / 3)
    assert st.conclusion() == ("Grouping matters on these tasks at this budget: the chosen grouping's objective is "
                               "6.67% below one network's, beyond noise at 95% confidence (two-sided).")
    assert st.singles.verdict == "same"
    doc = st.to_json()
    assert doc["matters"] is True and doc["one_network"]["p_value"] == pytest.approx(
        2 * student_t.sf(0.2 / (0.02 / math.sqrt(3)), 2))


def test_one_network_better_beyond_noise_says_ship_one_network():
    one = side("one network", AB, {0: 2.80, 1: 2.80, 2: 2.80})
    chosen = side("the chosen grouping", SINGLES, {0: 3.00, 1: 3.02, 2: 2.98}, cost=2.0)
    st = measure(chosen, one, None, "test")
    assert st.one_network.verdict == "worse" and st.matters is False
    assert "one network is better than the chosen grouping" in st.conclusion() and "ship one network" in st.conclusion()


def test_the_chosen_grouping_is_one_network():
    one = side("one network", AB, {0: 3.0, 1: 3.1})
    st = measure(one, one, None, "val")
    assert st.one_network.verdict == "same" and st.matters is False
    assert st.conclusion() == f"{SHIP_ONE} (it is the optimum)."


def record(*measured):
    groupings = tuple(MeasuredGrouping(name, nets, {"total": values, "normalised": values})
                      for name, nets, values in measured)
    return SeedNoise("default", "benchmarks/x.json", "test", {}, (0, 1, 2), groupings, {"a|b": (0.0, 0.01, 0.02)})


def test_one_seed_uses_the_presets_measured_noise():
    # pooled one-grouping sd over 2 groupings, 4 degrees of freedom; two groupings not measured together
    # differ by sqrt(2) x that
    noise = record(("x", AB, (1.0, 1.02, 1.04)), ("y", PAIR_AND_HALF, (2.0, 2.02, 2.0)))
    pooled = math.sqrt((0.0008 + sum((v - 6.02 / 3) ** 2 for v in (2.0, 2.02, 2.0))) / 4)
    threshold = student_t.ppf(0.975, 4) * math.sqrt(2) * pooled
    one = Side("one network", AB, 3.0, 1.0)
    near = Side("the chosen grouping", SINGLES, 3.0 - 0.9 * threshold, 2.0)
    far = Side("the chosen grouping", SINGLES, 3.0 - 1.1 * threshold, 2.0)
    st = measure(near, one, None, "val", noise, "none")
    assert st.one_network.comparison.threshold == pytest.approx(threshold) and st.one_network.comparison.df == 4
    assert st.matters is False and "sqrt(2)" in st.one_network.noise
    assert measure(far, one, None, "val", noise, "none").matters is True
    # the run's 3 seeds: the spread of the mean difference is sqrt(3) times smaller
    assert measure(near, one, None, "val", noise, "none", run_seeds=3).one_network.comparison.threshold == \
        pytest.approx(threshold / math.sqrt(3))
    # both measured together: their own paired spread (differences -1, -1, -0.96: sd 0.0231, 2 degrees of freedom)
    both = measure(Side("the chosen grouping", PAIR_AND_HALF, 2.9, 2.0), one, None, "val", noise, "none")
    assert both.one_network.comparison.threshold == pytest.approx(student_t.ppf(0.975, 2) * 0.04 / math.sqrt(3))
    assert "paired" in both.one_network.noise
    # an objective the record did not measure, or no record: unknown
    assert measure(near, one, None, "val", noise, "single").matters is None
    unknown = measure(near, one, None, "val")
    assert unknown.matters is None and unknown.conclusion().startswith("How much grouping matters here is unknown")


def test_within_noise_when_one_network_does_not_fit_ships_the_cheapest_within_noise():
    one = side("one network", AB, {0: 3.00, 1: 3.02, 2: 2.98}, fits=False)
    chosen = side("the chosen grouping", SINGLES, {0: 2.99, 1: 3.02, 2: 2.97})
    assert "ship the cheapest grouping within noise" in measure(chosen, one, None, "val").conclusion()


def test_no_all_task_network_is_unknown():
    st = measure(side("the chosen grouping", SINGLES, {0: 1.0}), None, None, "val")
    assert st.matters is None and "no network trained on all tasks" in st.conclusion()


def seeded_table(single_a):
    """Tasks a, b with three seeds: the all-task network, full and half singles."""
    def net(tasks, width, per_seed):
        seeds = {s: SeedResult({"val": dict(zip(tasks, v)), "test": dict(zip(tasks, v))}) for s, v in per_seed.items()}
        mean = {t: sum(v[i] for v in per_seed.values()) / len(per_seed) for i, t in enumerate(tasks)}
        return NetworkResult(tuple(tasks), width, "final", {"val": mean, "test": mean}, seeds=seeds)
    return LossTable(("a", "b"), [
        net(["a", "b"], 1.0, {0: (1.00, 2.0), 1: (1.02, 2.0), 2: (0.98, 2.0)}),
        net(["a"], 1.0, dict(enumerate((x,) for x in single_a))),
        net(["b"], 1.0, {0: (1.99,), 1: (2.00,), 2: (1.98,)}),
        net(["a"], 0.5, {0: (1.2,), 1: (1.2,), 2: (1.2,)}),
        net(["b"], 0.5, {0: (2.4,), 1: (2.4,), 2: (2.4,)}),
    ])


def run_select(tmp_path, capsys, single_a):
    seeded_table(single_a).save(tmp_path / "run" / "losses.json")
    out = tmp_path / "best.json"
    with pytest.raises(SystemExit) as exc:
        main(["select", "--losses", str(tmp_path / "run"), "--budget", "2", "--normalize", "none", "--out", str(out)])
    assert not exc.value.code
    return json.loads(out.read_text())["stakes"], capsys.readouterr().out


def test_select_says_grouping_does_not_matter_within_noise(tmp_path, capsys):
    # singles a@1 + b@1 (2.98, 3.03, 2.94) against one network (3.00, 3.02, 2.98): differences -0.02, +0.01,
    # -0.04 (se 0.0145; 95% needs beyond 4.303 x 0.0145 = 0.0625): within noise over 3 seeds
    doc, stdout = run_select(tmp_path, capsys, (0.99, 1.03, 0.96))
    assert doc["matters"] is False and doc["one_network"]["verdict"] == "within noise"
    assert doc["one_network"]["percent_lower"] == pytest.approx(100 * (0.05 / 3) / 3.0)
    assert doc["one_network"]["threshold_percent"] == pytest.approx(
        100 * student_t.ppf(0.975, 2) * math.sqrt(0.0038 / 3 / 2) / math.sqrt(3) / 3.0)
    assert doc["independent_singles"]["verdict"] == "same"
    assert "grouping does not matter: ship one network" in " ".join(stdout.split())


def test_select_states_stakes_beyond_noise(tmp_path, capsys):
    # differences -0.21, -0.22, -0.20
    doc, stdout = run_select(tmp_path, capsys, (0.80, 0.80, 0.80))
    assert doc["matters"] is True and doc["one_network"]["percent_lower"] == pytest.approx(100 * 0.21 / 3.0)
    assert doc["one_network"]["df"] == 2 and "paired over 3 seeds" in doc["one_network"]["noise"]
    assert "Grouping matters" in stdout and "7.00% below" in " ".join(stdout.split())


def test_frontier_marks_the_budgets_where_grouping_matters(tmp_path, capsys):
    seeded_table((0.80, 0.80, 0.80)).save(tmp_path / "run" / "losses.json")
    out = tmp_path / "f.json"
    with pytest.raises(SystemExit) as exc:
        main(["frontier", "--losses", str(tmp_path / "run"), "--normalize", "none", "--out", str(out),
              "--plot", str(tmp_path / "f.png")])
    assert not exc.value.code
    points = json.loads(out.read_text())["points"]
    assert [(p["cost"], p["stakes"]["verdict"]) for p in points] == [(1.0, "same"), (2.0, "better")]
    assert "+7.00% beyond" in capsys.readouterr().out


def test_report_states_the_stakes(tmp_path):
    def result(name, nets, per_seed, cost):
        mean = {t: sum(v[t] for v in per_seed.values()) / len(per_seed) for t in ("a", "b")}
        return GroupingResult(name, [GroupingNetwork(tk, sv, w) for tk, w, sv in nets], cost, mean, per_seed=per_seed)

    one = result("one network", AB, {0: {"a": 1.0, "b": 2.0}, 1: {"a": 1.02, "b": 2.0}, 2: {"a": 0.98, "b": 2.0}}, 1.0)
    chosen = result("chosen", SINGLES, {0: {"a": 0.99, "b": 2.0}, 1: {"a": 1.03, "b": 1.99},
                                        2: {"a": 0.96, "b": 2.01}}, 2.0)
    data = ReportData(tasks=["a", "b"], budget=2.0, budget_unit="ms", device="cpu", chosen=chosen, baselines=[one],
                      pairwise_gains={}, gains_split="test", frontier=[], latency={}, compute={}, machine="m",
                      seeds=[0, 1, 2])
    assert stakes_of(data).matters is False
    text = " ".join(write_report(tmp_path, data).read_text().split())
    assert "## Stakes: how much grouping matters here" in text
    assert f"**{SHIP_ONE}" in text and "paired over 3 seeds" in text


def three_task_pairs_table() -> LossTable:
    """Tasks a, b, c over 3 seeds: the trained all-task network, singles at two widths and every pair."""
    def net(tasks, width, loss):
        per_seed = {s: SeedResult({"val": {t: loss + 0.01 * s for t in tasks}, "test": {t: loss for t in tasks}})
                    for s in range(3)}
        mean = {t: loss + 0.01 for t in tasks}
        return NetworkResult(tuple(tasks), width, "final", {"val": mean, "test": mean}, seeds=per_seed)
    tasks = ("a", "b", "c")
    nets = [net(list(tasks), 1.0, 1.5)] + [net([t], w, 0.5 if w == 1 else 0.6) for t in tasks for w in (1.0, 0.5)]
    nets += [net([x, y], 1.0, 0.45) for i, x in enumerate(tasks) for y in tasks[i + 1:]]
    return LossTable(tasks, nets)


def test_select_with_hoa_compares_with_the_trained_all_task_network(tmp_path, capsys):
    # Three tasks: HOA estimates the 3-task network from the pairs, but the table trained it; the stakes
    # compare the choice with the trained one (before, "unknown: no network trained on all tasks").
    three_task_pairs_table().save(tmp_path / "run" / "losses.json")
    with pytest.raises(SystemExit) as exc:
        main(["select", "--losses", str(tmp_path / "run"), "--budget", "2", "--estimate", "hoa", "--normalize", "none",
              "--out", str(tmp_path / "best.json")])
    assert not exc.value.code
    doc = json.loads((tmp_path / "best.json").read_text())["stakes"]
    assert doc["one_network"] is not None and "no network trained on all tasks" not in capsys.readouterr().out


def test_frontier_with_hoa_marks_stakes_against_the_trained_all_task_network(tmp_path, capsys):
    three_task_pairs_table().save(tmp_path / "run" / "losses.json")
    with pytest.raises(SystemExit) as exc:
        main(["frontier", "--losses", str(tmp_path / "run"), "--estimate", "hoa", "--normalize", "none",
              "--out", str(tmp_path / "frontier.json")])
    assert not exc.value.code
    points = json.loads((tmp_path / "frontier.json").read_text())["points"]
    assert points and all(p["stakes"] is not None for p in points)
