"""Target standardisation: measured statistics, training in standardised space, losses and
outputs back in the dataset's units (parity with direct computation)."""

import dataclasses

import numpy as np
import pytest
import torch

from fake_splits import fake_split
from taskgroup.data.standardize import TargetTransform, fit_transforms, measure, transforms_from_json
from taskgroup.train import CandidateSpec, make_run_config
from taskgroup.train.trainer import RunData, build_model, evaluate, train_one

TASKS = ("segment_semantic", "depth_zbuffer", "normal")


def scaled(split, offset=300.0, factor=1000.0):
    """The same split with its regression targets in large units (like 16-bit PNG values)."""
    targets = {t: (v * factor + offset).astype(np.float32) if v.dtype.kind == "f" else v for t, v in split.targets.items()}
    return dataclasses.replace(split, targets=targets)


@pytest.fixture(scope="module")
def data():
    return RunData.from_splits(TASKS, *(scaled(fake_split(n, s)) for n, s in ((64, 1), (32, 2), (32, 3))))


def config(**train):
    return make_run_config("tiny", overrides={"train": {"epochs": 3, "batch_size": 16, **train}})


def test_measure_is_the_mean_and_std_of_defined_pixels():
    rng = np.random.default_rng(0)
    values = rng.normal(5000.0, 40.0, size=(7, 2, 6, 6))
    masks = rng.random((7, 1, 6, 6)) > 0.3
    values[:, 1] = 3.0  # a constant channel keeps std 1 (nothing to scale)
    mean, std = measure(values, masks, chunk=3)
    defined = values[:, 0][masks[:, 0]]
    assert mean[0] == pytest.approx(defined.mean(), rel=1e-12)
    assert std[0] == pytest.approx(defined.std(), rel=1e-9)
    assert mean[1] == pytest.approx(3.0) and std[1] == 1.0
    assert measure(values, np.zeros_like(masks)) == ((0.0, 0.0), (1.0, 1.0))  # no label at all


def test_training_targets_are_standardised_and_classes_untouched(data):
    train = data.train
    depth = train.targets["depth_zbuffer"][train.masks["depth_zbuffer"].expand_as(train.targets["depth_zbuffer"])]
    assert float(depth.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(depth.std(unbiased=False)) == pytest.approx(1.0, rel=1e-4)
    assert train.targets["segment_semantic"].dtype == torch.int64
    assert data.transforms["segment_semantic"].mean is None
    assert data.transforms["normal"].mean == pytest.approx(measure(scaled(fake_split(64, 1)).targets["normal"],
                                                                   fake_split(64, 1).masks["normal"])[0])


def test_losses_are_in_the_dataset_units(data):
    """The stored L1 equals the L1 of the outputs mapped back to the data's units, computed directly."""
    spec = CandidateSpec(("depth_zbuffer", "normal", "segment_semantic"))
    r = train_one(spec, config(), data)["final"]
    model = build_model(config(), spec)
    model.load_state_dict(r.state_dict)
    model.target_transforms = data.transforms
    test = scaled(fake_split(32, 3))
    with torch.no_grad():
        out = model.in_dataset_units()(torch.from_numpy(test.images))
    for task in ("depth_zbuffer", "normal"):
        m = np.broadcast_to(test.masks[task], test.targets[task].shape)
        direct = np.abs(out[task].numpy().astype(np.float64) - test.targets[task])[m].mean()
        assert r.losses["test"][task] == pytest.approx(direct, rel=1e-5), task
        assert direct > 10  # really in the large units, not standardised
    logits = out["segment_semantic"]  # logits pass through unchanged
    ce = torch.nn.functional.cross_entropy(logits, torch.from_numpy(test.targets["segment_semantic"]), reduction="none")
    mask = torch.from_numpy(test.masks["segment_semantic"][:, 0])
    assert r.losses["test"]["segment_semantic"] == pytest.approx(float(ce[mask].mean()), rel=1e-5)
    assert evaluate(model, data.test, ("depth_zbuffer",))["depth_zbuffer"] == pytest.approx(r.losses["test"]["depth_zbuffer"])


def test_reference_losses_and_the_initial_bias_agree(data):
    """The trivial predictor's loss is in the dataset's units; the heads start at its constant."""
    from taskgroup.train.trainer import init_output_bias

    model = build_model(config(), CandidateSpec(("depth_zbuffer",)))
    init_output_bias(model, data.standardized_constants())
    for p in model.heads["depth_zbuffer"].body[-1].parameters():
        if p.dim() > 1:
            torch.nn.init.zeros_(p)  # the head now outputs exactly its bias
    model.target_transforms = data.transforms
    loss = evaluate(model, data.val, ("depth_zbuffer",))["depth_zbuffer"]
    assert loss == pytest.approx(data.reference["depth_zbuffer"]["val"], rel=1e-5)


def test_checkpoint_carries_the_transform_and_deploys_in_dataset_units(data, tmp_path):
    from taskgroup.models import load_checkpoint, save_checkpoint

    model = build_model(config(), CandidateSpec(("normal", "segment_semantic"))).eval()
    model.target_transforms = {t: data.transforms[t] for t in model.tasks}
    save_checkpoint(model, tmp_path / "n.pt")
    loaded = load_checkpoint(tmp_path / "n.pt")
    assert loaded.target_transforms == model.target_transforms
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        raw, deployed = loaded(x), loaded.in_dataset_units()(x)
        served = loaded.with_heads(["normal"]).in_dataset_units()(x)
    tr = data.transforms["normal"]
    expected = raw["normal"] * torch.tensor(tr.std).view(1, -1, 1, 1) + torch.tensor(tr.mean).view(1, -1, 1, 1)
    torch.testing.assert_close(deployed["normal"], expected)
    torch.testing.assert_close(served["normal"], expected)
    torch.testing.assert_close(deployed["segment_semantic"], raw["segment_semantic"])


def test_checkpoint_without_transform_loads_as_identity(tmp_path):
    """Checkpoints written before standardisation: heads trained on the data's values directly."""
    from taskgroup.models import load_checkpoint

    model = build_model(config(), CandidateSpec(("depth_zbuffer",))).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"arch": model.arch_config(), "state_dict": state, "extra": {}}, tmp_path / "old.pt")
    loaded = load_checkpoint(tmp_path / "old.pt")
    assert loaded.target_transforms == {}
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.in_dataset_units()(x)["depth_zbuffer"], model(x)["depth_zbuffer"])


def test_transform_json_round_trip_and_errors():
    from taskgroup.errors import SchemaError

    tr = TargetTransform("depth_zbuffer", "metres", (1.5,), (2.0,), "measured", (0.0, 10.0))
    assert transforms_from_json({"depth_zbuffer": tr.to_json()}, "x") == {"depth_zbuffer": tr}
    with pytest.raises(SchemaError, match="std"):
        transforms_from_json({"depth_zbuffer": dict(tr.to_json(), std=[0.0])}, "x")
    with pytest.raises(SchemaError, match="both"):
        transforms_from_json({"depth_zbuffer": dict(tr.to_json(), std=None)}, "x")


def test_scene_and_taskonomy_sources_describe_their_units():
    from types import SimpleNamespace

    split = scaled(fake_split(8, 0))
    scenes = fit_transforms(SimpleNamespace(source="scenes"), split, TASKS)
    assert "metres" in scenes["depth_zbuffer"].units and scenes["depth_zbuffer"].value_range == (0.0, 1.0)
    assert scenes["depth_zbuffer"].origin.startswith("mean and std")
    taskonomy = fit_transforms(SimpleNamespace(source="taskonomy"), split, TASKS)
    assert (taskonomy["depth_zbuffer"].mean, taskonomy["depth_zbuffer"].std) == ((1500.0,), (1000.0,))
    assert taskonomy["normal"].mean == (0.5,) * 3 and "paper" in taskonomy["normal"].origin
