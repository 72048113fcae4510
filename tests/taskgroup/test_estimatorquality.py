"""The estimator quality record: what the report quotes beside the choice, read back exactly and
refused when malformed; it applies only to the recipe and tasks its benchmark measured."""

from __future__ import annotations

import json

import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.estimatorquality import EstimatorQuality, MethodQuality, for_preset
from taskgroup.train import make_run_config
from taskgroup.train.recipes import estimator_quality_for

TASKS = ("segment_semantic", "depth_zbuffer", "normal", "keypoints2d", "edge_texture")


def record(**methods) -> EstimatorQuality:
    return EstimatorQuality("default", "bench.json, m, d", TASKS, 3, "1.25-3", "reference", make_run_config("default").to_dict(),
                            {k: MethodQuality(k, *v) for k, v in methods.items()})


def test_a_record_round_trips_and_names_the_method_its_regret_and_compute():
    r = record(**{"HOA (pairs)": (0.69, 43.6), "HOA + top-3": (0.04, 50.2)})
    back = EstimatorQuality.from_json(json.loads(json.dumps(r.to_json())))
    assert back == r
    assert back.sentence("pairs", "hoa") == ("On this preset's benchmark (bench.json, m, d; 5 tasks, 3 seeds, budgets 1.25-3 "
                                    "SNT), the selection method used here (HOA (pairs)) was at worst +0.69% from "
                                    "selecting among every subset trained, for at most 44% of that training.")
    assert "HOA + top-3" in back.sentence("pairs", "hoa", 3)
    # never scored, nothing claimed: TAG, top-5, HOA on another candidate set, no estimate without every subset
    assert back.sentence("affinity", "tag") is None and back.sentence("pairs", "hoa", 5) is None
    assert back.sentence("all", "hoa") is None and back.sentence("pairs", None) is None


@pytest.mark.parametrize("broken", [{"kind": "grouping"}, {"methods": {"HOA (pairs)": {"worst_regret_pct": "x"}}},
                                    {"methods": {"HOA (pairs)": {"worst_regret_pct": float("nan"),
                                                                 "compute_max_pct": 1}}}])
def test_a_malformed_record_is_refused_naming_the_file(broken):
    doc = {**record(**{"HOA (pairs)": (0.69, 43.6)}).to_json(), **broken}
    with pytest.raises(TaskgroupError, match="q.json"):
        EstimatorQuality.from_json(doc, "q.json")


def test_the_shipped_record_applies_to_the_default_recipe_on_its_tasks_only():
    shipped = for_preset("default")
    assert shipped is not None and shipped.sentence("pairs", "hoa") is not None
    ref = "reference"
    assert estimator_quality_for("default", make_run_config("default", seed=3, esa_fraction=0.2), TASKS, ref)
    assert estimator_quality_for("default", make_run_config("default"), TASKS, "none") is None  # another objective
    assert estimator_quality_for("default", make_run_config("default"), TASKS[:3], ref) is None
    assert estimator_quality_for("default", make_run_config("default", overrides={"train": {"epochs": 3}}), TASKS,
                                 ref) is None
    assert estimator_quality_for("tiny", make_run_config("tiny"), TASKS, ref) is None
