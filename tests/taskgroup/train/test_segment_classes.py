"""Segmentation class counts: a dataset with more classes than the head is a clear error,
and a head sized for it (segment_classes) trains."""

import numpy as np
import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.train import CandidateSpec
from taskgroup.train.trainer import RunData, train_one


def _eighteen_class_data():
    from fake_splits import fake_split

    splits = [fake_split(n, seed) for n, seed in ((64, 1), (32, 2), (32, 3))]
    for s in splits:  # Taskonomy-like ids 0..17
        s.targets["segment_semantic"] = (s.images[:, 1] * 17.999).astype(np.int64)
    return RunData.from_splits(["segment_semantic"], *splits)


def test_more_classes_than_the_head_is_a_clear_error(tiny_config_factory):
    with pytest.raises(TaskgroupError, match="segment_classes = 18"):
        train_one(CandidateSpec(("segment_semantic",)), tiny_config_factory(), _eighteen_class_data())


def test_a_head_sized_for_the_classes_trains(tiny_config_factory):
    config = tiny_config_factory(overrides={"arch": {"model_config": {"segment_classes": 18}}})
    result = train_one(CandidateSpec(("segment_semantic",)), config, _eighteen_class_data())["final"]
    assert np.isfinite(result.losses["val"]["segment_semantic"])
