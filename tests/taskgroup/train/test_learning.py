"""On held-out rendered scenes, each task's single-task network clearly beats the trivial predictor."""

import pytest

from taskgroup.tasks import TASKS
from taskgroup.train import CandidateSpec
from taskgroup.train.trainer import load_run_data, train_one

MARGIN = 0.93  # test loss must be below 93% of the best constant predictor's test loss

# Sparse targets: the edge tasks are binary maps (0/1 per pixel) and principal curvature is
# exactly 0.5 on every plane. Under L1 the median (0, or 0.5) is a strong constant, and the
# preset networks (stride-8 trunks, no skip connections) do not localise the rare non-constant
# pixels well enough to beat it within a few epochs (measured ratios 1.00-1.10 here and ~1.00
# for edge_texture on the default preset; see docs/training.md).
SPARSE_TARGETS = ["edge_texture", "edge_occlusion", "principal_curvature"]
LEARNABLE = [t for t in TASKS if t not in SPARSE_TARGETS]


@pytest.fixture(scope="module")
def setup(tiny_config_factory):
    # The tiny preset's 10 epochs reach ~0.93 of trivial on keypoints2d; 20 epochs give a clear margin.
    config = tiny_config_factory(overrides={"train": {"epochs": 20}})
    return config, load_run_data(config, tuple(TASKS))


@pytest.mark.slow
@pytest.mark.parametrize("task", LEARNABLE)
def test_single_task_network_beats_trivial_predictor(setup, task):
    config, data = setup
    result = train_one(CandidateSpec((task,)), config, data)["final"]
    loss, trivial = result.losses["test"][task], data.reference[task]["test"]
    assert loss < MARGIN * trivial, f"{task}: test loss {loss:.4f} vs trivial {trivial:.4f}"


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="sparse targets under L1: see the note on SPARSE_TARGETS")
@pytest.mark.parametrize("task", SPARSE_TARGETS)
def test_sparse_target_tasks_are_not_learnt_by_the_tiny_preset(setup, task):
    config, data = setup
    result = train_one(CandidateSpec((task,)), config, data)["final"]
    assert result.losses["test"][task] < MARGIN * data.reference[task]["test"]
