"""Strategies and weightings by name: every registered one works through the same interface."""

from dataclasses import dataclass

import numpy as np
import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.resultrows import LossWeights
from taskgroup.train.config import TrainConfig
from taskgroup.train.strategies import STRATEGIES, Strategy, parse_strategy, register, syntax
from taskgroup.train.weighting import WEIGHTINGS, LossWeighting

TASKS = ("segment_semantic", "depth_zbuffer", "normal")
EXAMPLES = {"sum": "sum", "alternating": "alternating:shuffled", "alternating-independent": "alternating-independent",
            "random-groups": "random-groups:2:epoch"}


def test_the_built_in_strategies_and_weightings_are_registered_in_order():
    assert list(STRATEGIES) == ["sum", "alternating", "alternating-independent", "random-groups"]
    assert list(WEIGHTINGS) == ["none", "static", "scale", "uncertainty"]
    assert syntax() == "sum | alternating[:shuffled] | alternating-independent[:shuffled] | random-groups:G[:epoch]"


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_round_trips_its_text_and_steps_every_task_once_per_batch(name):
    spec = parse_strategy(EXAMPLES[name])
    assert isinstance(spec, STRATEGIES[name]) and parse_strategy(spec.text) == spec and spec.text == EXAMPLES[name]
    rng = np.random.default_rng(0)
    drawn = spec.epoch_groups(TASKS, rng, None)
    groups = spec.batch_groups(TASKS, rng, drawn)
    assert sorted(t for g in groups for t in g) == sorted(TASKS)
    assert (len(groups) == 1) == spec.summed


def test_unknown_names_list_every_registered_one():
    with pytest.raises(TaskgroupError, match=r"unknown strategy 'sums'; valid strategies: sum \| alternating"):
        parse_strategy("sums")
    with pytest.raises(TaskgroupError, match="unknown weighting 'scaled'; valid weightings: none, static, scale, "
                                             "uncertainty$"):
        LossWeighting.build("scaled", TASKS)
    with pytest.raises(TaskgroupError, match="field 'weighting': unknown weighting 'x'; valid weightings: none, static"):
        TrainConfig(weighting="x").validate()


def test_a_strategy_registered_elsewhere_is_parsed_and_offered(monkeypatch):
    monkeypatch.setattr("taskgroup.train.strategies.STRATEGIES", dict(STRATEGIES))

    @register("reversed", "reversed")
    @dataclass(frozen=True)
    class Reversed(Strategy):
        def batch_groups(self, tasks, rng, drawn):
            return [(t,) for t in reversed(tasks)]

    assert parse_strategy("reversed").batch_groups(TASKS, None, None)[0] == ("normal",)
    with pytest.raises(TaskgroupError, match=r"random-groups:G\[:epoch\] \| reversed$"):
        parse_strategy("nope")


@pytest.mark.parametrize("name", [n for n in WEIGHTINGS if n != "scale"])  # scale needs a run's data (test_strategies)
def test_every_weighting_builds_by_name_with_one_interface(name):
    torch = pytest.importorskip("torch")
    weighting = LossWeighting.build(name, TASKS, task_weights={"normal": 2.0} if name == "static" else None)
    assert isinstance(weighting, WEIGHTINGS[name]) and weighting.kind == name
    losses = {t: torch.tensor(1.0) for t in TASKS}
    assert float(weighting.objective(losses).detach()) == pytest.approx(3.0)  # every weighting starts at, or averages, 1
    snapshot = weighting.snapshot()
    assert snapshot is None if name == "none" else snapshot["weighting"] == name
    assert LossWeights.from_snapshot(snapshot) is None if snapshot is None else \
        LossWeights.from_snapshot(snapshot).to_json() == snapshot  # what the store commits, as it always wrote it
    assert bool(weighting.parameters()) == (name == "uncertainty")
