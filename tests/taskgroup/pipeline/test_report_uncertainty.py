"""The report states uncertainty: ± over seeds, verdicts at 95% confidence from Student's t, the
preset's measured spread of a difference with one seed, and unlearnt served tasks first."""

import dataclasses

import pytest

from taskgroup.grouping import GroupingNetwork
from taskgroup.pipeline.report import write_report
from taskgroup.pipeline.report_model import GroupingResult, ReportData
from taskgroup.pipeline.report_text import comparison_notes, gain_within_noise
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
    assert c.difference.stderr == pytest.approx(0.0123, abs=1e-4)
    # 3.8 standard errors: beyond two, but 95% with 2 degrees of freedom needs 4.3 (p = 0.064)
    assert c.verdict == "indistinguishable" and c.p_value == pytest.approx(0.064, abs=1e-3)
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
    assert "indistinguishable" in notes[0] and "95% confidence (two-sided)" in notes[0] and "LOWER" not in notes[0]
    assert "higher" in notes[1] and "95% confidence (two-sided)" in notes[1] and "2 degrees of freedom" in notes[1]
    text = write_report(tmp_path, data).read_text()
    assert "3 seeds" in text and "±" in text
    assert f"{estimate([1.10, 1.15, 1.09]).mean:.5f} ± {estimate([1.10, 1.15, 1.09]).std:.5f}" in text


def seed_noise(*measured):
    """A record (plain-sum objective) in which `measured` (name, networks, per-seed totals) were measured."""
    from taskgroup.seednoise import MeasuredGrouping, SeedNoise

    groupings = tuple(MeasuredGrouping(name, tuple((n.tasks, n.width, n.served) for n in nets),
                                       {"total": values, "normalised": values}) for name, nets, values in measured)
    return SeedNoise("default", "benchmarks/x.json", "test", {}, (0, 1, 2), groupings,
                     {"a|b": (0.0, 0.01, 0.02), "b|a": (0.01, 0.02, 0.0)})


def test_one_seed_report_judges_a_difference_by_its_measured_spread(tmp_path):
    """Two groupings not measured together: sqrt(2) x one grouping's spread (pooled sd 0.02 over 2 groupings,
    4 degrees of freedom): 95% needs beyond 2.776 x 0.0283 = 0.0785. Measured together: their paired spread."""
    import math

    chosen = grouping("chosen", {0: {"a": 1.00, "b": 0.10}})
    close = grouping("random #1", {0: {"a": 0.99, "b": 0.10}})
    far = grouping("one network", {0: {"a": 1.10, "b": 0.10}})
    other = [GroupingNetwork(("a",), ("a",), 1.0), GroupingNetwork(("b",), ("b",), 1.0)]
    noise = seed_noise(("chosen", NETS, (1.0, 1.02, 0.98)), ("singles", other, (1.0, 1.02, 0.98)))
    data = report(chosen, [close, far], [0], seed_noise=noise, pairwise_gains={"a": {"b": 0.015}, "b": {"a": 0.05}})
    notes = comparison_notes(data)
    assert "one seed cannot tell apart from seed-to-seed noise (95% confidence (two-sided) needs beyond " in notes[0]
    assert "LOWER" not in notes[0] and "sqrt(2) x one grouping's" in notes[0] and "±0.07853" in notes[0]
    assert "higher" in notes[1] and "beyond the noise: 95% confidence" in notes[1]
    assert gain_within_noise(data, "a", "b") is True and gain_within_noise(data, "b", "a") is False
    text = write_report(tmp_path, data).read_text()
    assert f"±{2.7764451 * math.sqrt(2) * 0.02:.4f} (t with 4 degrees of freedom) cannot be told apart" in text
    assert "(+1.5%)" in text and "| +5.0% |" in text and "within ±2.8%" in text
    # the same two groupings measured together: their paired spread (here 0: they moved alike) decides
    singles = GroupingResult("singles", other, 1.0, {"a": 0.99, "b": 0.10})
    note = comparison_notes(report(chosen, [singles], [0], seed_noise=noise))[0]
    assert "paired seed-to-seed standard deviation 0.0000 of 'chosen' minus 'singles'" in note and "LOWER" in note
    # without a measured noise, a one-seed difference is reported with its caveat, not as a fact
    data = report(chosen, [close], [0])
    assert "one seed" in comparison_notes(data)[0]
    assert "has not been measured" in write_report(tmp_path, data).read_text()


def test_warnings_open_the_report(tmp_path):
    chosen = grouping("chosen", {0: {"a": 1.00, "b": 0.10}})
    data = report(chosen, [], [0], warnings=["b is not learnt by a+b@1: validation loss 0.1 is not below 0.09"])
    text = write_report(tmp_path, data).read_text()
    assert text.index("**Warning:** b is not learnt") < text.index("## Chosen grouping")


def test_the_presets_seed_noise_applies_only_to_the_recipe_it_measured():
    from taskgroup.seednoise import for_preset
    from taskgroup.train.recipes import seed_noise_for as for_run
    from taskgroup.train import make_run_config

    assert for_run("wide", make_run_config("wide", seed=4)) is for_preset("wide")
    assert for_run("wide", make_run_config("wide", overrides={"train": {"epochs": 3}})) is None
    assert for_run("tiny", make_run_config("tiny")) is None  # never measured


def test_a_baseline_that_is_the_choice_is_named_as_such():
    chosen = grouping("chosen", {0: {"a": 1.0, "b": 0.1}})
    same = grouping("one network", {0: {"a": 1.0, "b": 0.1}}, networks=NETS)
    assert comparison_notes(report(chosen, [same], [0])) == ["'one network' is the chosen grouping."]


def test_a_cheaper_choice_within_noise_of_the_optimum_is_explained(tmp_path):
    from taskgroup.grouping import Grouping
    from taskgroup.pipeline.report_text import parsimony_text

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


def test_the_reports_sentence_names_the_spread_the_within_noise_rule_used():
    from taskgroup.grouping import Grouping
    from taskgroup.pipeline.report_text import parsimony_text

    def spread(basis, std):
        text = "the conservative bound 0.0443 (the largest paired standard deviation measured)" if basis == "bound" \
            else f"the paired seed-to-seed standard deviation {std:.4f}"
        return {"std": std, "df": 2, "basis": basis, "text": text}

    def grouping(chosen, extra=None):
        compared = [{"networks": ["a@1", "b@1"], "objective": 2.004, "cost": 0.7, "minus_optimum": 0.009,
                     "tolerance": 0.0443, "spread": spread("bound", 0.0443), "measured_as": None,
                     "within": True, "chosen": chosen}]
        block = {"rule": "...", "chose_the_optimum": not chosen, "tolerance": 0.0443 if chosen else None,
                 "optimum": {"networks": ["a+b@1", "b@0.5"], "objective": 1.995, "cost": 0.9}, "compared": compared,
                 "evidence": {"run_seeds": 1, "source": "benchmarks/results/seed_noise.json (m, 2 cores, d)"}}
        return Grouping(tasks=("a", "b"), budget={"value": 1.0, "unit": "ms"}, networks=tuple(NETS), served_by={},
                        objective=2.0, total_loss=2.0, cost=0.5, extra=extra or {"parsimony": block})

    text = parsimony_text(grouping(True), grouping(True))
    assert text.startswith("Among the fully trained networks, the exact optimum on the validation objective")
    assert "tolerance 0.0443 (no paired measurement of these two groupings: the conservative bound" in text
    assert "sqrt(1) seeds; spreads from benchmarks/results/seed_noise.json" in text
    text = parsimony_text(grouping(False), grouping(False))
    assert "the exact optimum was taken: no cheaper grouping is within noise" in text and "+0.009" in text
    off = grouping(False, {"within_noise_off": "no seed noise was measured for this recipe (preset 'tiny')"})
    assert parsimony_text(grouping(False), off) == (
        "The within-noise rule was off for the final choice: no seed noise was measured for this recipe (preset "
        "'tiny'); the exact optimum was taken.")
