"""The report states uncertainty: ± over seeds, verdicts only beyond two standard errors, the
preset's seed noise with one seed, and unlearnt served tasks first."""

import dataclasses

import pytest

from taskgroup.grouping import GroupingNetwork
from taskgroup.pipeline.report import GroupingResult, ReportData, comparison_notes, gain_within_noise, write_report
from taskgroup.stats import compare, estimate

NETS = [GroupingNetwork(("a", "b"), ("a", "b"), 1.0)]


def grouping(name, per_seed, networks=None):
    """A grouping with its own networks (baselines differ from the choice unless given the same)."""
    mean = {t: sum(v[t] for v in per_seed.values()) / len(per_seed) for t in ("a", "b")}
    nets = networks or [dataclasses.replace(NETS[0], width=1.0 if name == "chosen" else 0.5 + 0.01 * len(name))]
    return GroupingResult(name, nets, 1.0, mean, per_seed=per_seed)


def report(chosen, baselines, seeds, **kw):
    kw.setdefault("pairwise_gains", {})
    return ReportData(tasks=["a", "b"], budget=1.0, budget_unit="ms", device="cpu", chosen=chosen, baselines=baselines,
                      gains_split="test", frontier=[], latency={}, compute={}, machine="m", seeds=seeds, **kw)


def test_statistics_of_a_paired_comparison():
    e = estimate([1.0, 2.0, 3.0])
    assert (e.mean, e.std, e.n) == (2.0, 1.0, 3) and e.stderr == pytest.approx(1 / 3 ** 0.5)
    assert estimate([5.0]).std is None and estimate([5.0]).stderr is None
    # the numbers: the choice beat one network by 0.032, 0.071 and 0.036
    chosen = {0: 1.6876, 1: 1.6509, 2: 1.6473}
    one = {0: 1.7199, 1: 1.7218, 2: 1.6833}
    c = compare(chosen, one)
    assert c.difference.mean == pytest.approx(-0.0464, abs=1e-4)
    assert c.difference.stderr == pytest.approx(0.0123, abs=1e-4)  # the issue rounds it to 0.012
    assert c.verdict == "lower"
    # seed 0's optimum against the choice: the sign flips between seeds
    other = {0: 1.6441, 1: 1.7328, 2: 1.6943}
    assert compare(other, chosen).verdict == "indistinguishable"
    assert compare({0: 1.0}, {0: 2.0}).verdict == "unknown"


def test_several_seeds_differences_within_noise_are_indistinguishable(tmp_path):
    chosen = grouping("chosen", {0: {"a": 1.00, "b": 0.10}, 1: {"a": 1.05, "b": 0.10}, 2: {"a": 0.98, "b": 0.11}})
    close = grouping("random #1", {0: {"a": 0.99, "b": 0.10}, 1: {"a": 1.08, "b": 0.10}, 2: {"a": 0.97, "b": 0.11}})
    far = grouping("one network", {0: {"a": 1.20, "b": 0.12}, 1: {"a": 1.26, "b": 0.12}, 2: {"a": 1.19, "b": 0.13}})
    data = report(chosen, [close, far], [0, 1, 2])
    notes = comparison_notes(data)
    assert "indistinguishable" in notes[0] and "LOWER" not in notes[0]
    assert "higher" in notes[1] and "beyond 2 standard errors" in notes[1]
    text = write_report(tmp_path, data).read_text()
    assert "3 seeds" in text and "±" in text
    assert f"{estimate([1.10, 1.15, 1.09]).mean:.5f} ± {estimate([1.10, 1.15, 1.09]).std:.5f}" in text


def test_one_seed_report_names_the_presets_seed_noise(tmp_path):
    chosen = grouping("chosen", {0: {"a": 1.00, "b": 0.10}})
    close = grouping("random #1", {0: {"a": 0.99, "b": 0.10}})
    noise = {"grouping_total_std": 0.02, "pairwise_gain_std": 0.01, "seeds": 3, "source": "benchmarks/x.md"}
    data = report(chosen, [close], [0], seed_noise=noise, pairwise_gains={"a": {"b": 0.015}, "b": {"a": 0.05}})
    assert "within the seed noise" in comparison_notes(data)[0] and "LOWER" not in comparison_notes(data)[0]
    assert gain_within_noise(data, "a", "b") is True and gain_within_noise(data, "b", "a") is False
    text = write_report(tmp_path, data).read_text()
    assert "differences below 0.0400 cannot be told apart" in text
    assert "(+1.5%)" in text and "| +5.0% |" in text
    # without a measured noise, a one-seed difference is reported with its caveat, not as a fact
    data = report(chosen, [close], [0])
    assert "one seed" in comparison_notes(data)[0]
    assert "has not been measured" in write_report(tmp_path, data).read_text()


def test_warnings_open_the_report(tmp_path):
    chosen = grouping("chosen", {0: {"a": 1.00, "b": 0.10}})
    data = report(chosen, [], [0], warnings=["b is not learnt by a+b@1: validation loss 0.1 is not below 0.09"])
    text = write_report(tmp_path, data).read_text()
    assert text.index("**Warning:** b is not learnt") < text.index("## Chosen grouping")


def test_the_presets_seed_noise_applies_only_to_the_preset_as_shipped():
    from taskgroup.train import make_run_config
    from taskgroup.train.config import SEED_NOISE, preset_seed_noise

    assert preset_seed_noise("wide", make_run_config("wide", seed=4)) is SEED_NOISE["wide"]
    assert preset_seed_noise("wide", make_run_config("wide", overrides={"train": {"epochs": 3}})) is None
    assert preset_seed_noise("tiny", make_run_config("tiny")) is None  # never measured


def test_a_baseline_that_is_the_choice_is_named_as_such():
    chosen = grouping("chosen", {0: {"a": 1.0, "b": 0.1}})
    same = grouping("one network", {0: {"a": 1.0, "b": 0.1}}, networks=NETS)
    assert comparison_notes(report(chosen, [same], [0])) == ["'one network' is the chosen grouping."]


def test_a_cheaper_choice_within_noise_of_the_optimum_is_explained(tmp_path):
    from taskgroup.grouping import Grouping
    from taskgroup.pipeline.run import parsimony_text

    def grouping(chose_the_optimum):
        return Grouping(tasks=("a", "b"), budget={"value": 1.0, "unit": "ms"}, networks=tuple(NETS), served_by={},
                        objective=2.0, total_loss=2.0, cost=0.5,
                        extra={"parsimony": {"tolerance": 0.0161, "chose_the_optimum": chose_the_optimum,
                                             "optimum": {"networks": ["a@1", "b@0.5"], "objective": 1.995,
                                                         "cost": 0.9}}})
    assert parsimony_text(grouping(True)) is None
    text = parsimony_text(grouping(False))
    assert "a@1 + b@0.5" in text and "1.995" in text and "0.0161" in text and "cheapest" in text
    chosen = GroupingResult("chosen", NETS, 0.5, {"a": 1.0, "b": 1.0})
    path = write_report(tmp_path, report(chosen, [], [0], parsimony=text))
    assert text in path.read_text()
