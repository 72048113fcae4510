"""On held-out rendered scenes, each task's single-task network clearly beats the trivial predictor."""

import pytest

from taskgroup.tasks import TASKS
from taskgroup.train import CandidateSpec
from taskgroup.train.trainer import load_run_data, train_one

MARGIN = 0.93  # test loss must be below 93% of the best constant predictor's test loss

# Principal curvature is exactly 0.5 on every plane, box face and cap (~85% of its values). Under
# L1 a network beats that constant only where it is sure a surface is curved, and networks trained
# at CPU scale do not recognise the objects (segmentation recall of every curved class is 0 on the
# default preset): measured ratios ~1.02 here and ~1.26 on the default preset. docs/training.md
# lists the architecture, optimiser, data and target changes measured without success. The edge
# tasks are soft edge-strength maps (taskgroup.data.scenes.edge_strength) and are learnt.
NOT_LEARNT = ["principal_curvature"]
LEARNABLE = [t for t in TASKS if t not in NOT_LEARNT]


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
@pytest.mark.xfail(strict=True, reason="curvature is constant on planes: see the note on NOT_LEARNT")
@pytest.mark.parametrize("task", NOT_LEARNT)
def test_curvature_is_not_learnt_by_the_tiny_preset(setup, task):
    config, data = setup
    result = train_one(CandidateSpec((task,)), config, data)["final"]
    assert result.losses["test"][task] < MARGIN * data.reference[task]["test"]
