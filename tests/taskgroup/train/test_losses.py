import numpy as np
import pytest
import torch

from taskgroup.train.losses import fit_trivial, loss_mean, loss_sum_count, trivial_loss


def test_masked_l1_ignores_undefined_pixels():
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[[1.0, 9.0], [1.0, 9.0]], [[3.0, 9.0], [3.0, 9.0]]]])
    mask = torch.tensor([[[[True, False], [True, False]]]])
    # defined: 2 pixels x 2 channels, errors 1, 1, 3, 3 -> mean 2
    assert loss_mean("depth_zbuffer", pred, target, mask).item() == pytest.approx(2.0)
    s, c = loss_sum_count("depth_zbuffer", pred, target, mask)
    assert (s.item(), c.item()) == (8.0, 4.0)


def test_masked_cross_entropy_matches_manual_value_and_ignores_garbage_labels():
    logits = torch.zeros(1, 8, 1, 2)
    logits[0, 3, 0, 0] = 2.0
    target = torch.tensor([[[3, 255]]])  # second pixel undefined, with an out-of-range label
    mask = torch.tensor([[[[True, False]]]])
    expected = -(2.0 - np.log(np.exp(2.0) + 7))
    assert loss_mean("segment_semantic", logits, target, mask).item() == pytest.approx(expected, rel=1e-6)


def test_unmasked_fast_path_equals_masked_mean():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    full = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    assert loss_mean("normal", pred, target, None).item() == pytest.approx(loss_mean("normal", pred, target, full).item())


def test_trivial_l1_is_the_median_and_beats_the_mean():
    rng = np.random.default_rng(0)
    targets = rng.exponential(0.1, size=(20, 1, 4, 4)).astype(np.float32)  # skewed: median != mean
    masks = np.ones((20, 1, 4, 4), bool)
    const = fit_trivial("depth_zbuffer", targets, masks)
    assert const[0] == pytest.approx(np.median(targets), rel=1e-6)
    at_median = trivial_loss("depth_zbuffer", const, targets, masks)
    at_mean = trivial_loss("depth_zbuffer", np.array([targets.mean()], np.float32), targets, masks)
    assert at_median < at_mean


def test_trivial_cross_entropy_uses_class_frequencies_of_defined_pixels():
    targets = np.zeros((1, 2, 2), np.int64)
    targets[0, 0, 0] = 1
    targets[0, 1, 1] = 5  # masked out: must not count
    masks = np.ones((1, 1, 2, 2), bool)
    masks[0, 0, 1, 1] = False
    const = fit_trivial("segment_semantic", targets, masks)
    counts = np.array([2, 1, 0, 0, 0, 0, 0, 0]) + 1.0  # add-one smoothing over 8 classes
    assert np.allclose(np.exp(const), counts / counts.sum(), atol=1e-6)
    p = counts / counts.sum()
    expected = -(2 * np.log(p[0]) + np.log(p[1])) / 3
    assert trivial_loss("segment_semantic", const, targets, masks) == pytest.approx(expected, rel=1e-6)
