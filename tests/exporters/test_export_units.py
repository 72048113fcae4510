"""Bundles answer in the dataset's units: the exported graph applies each task's transform,
and the manifest states units and transform."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import pytest
import torch

from bundle_fixtures import make_grouping
from taskgroup_exporters import DEFAULT_ATOL, export_bundle, synthetic_frames
from taskgroup_runtime import load_bundle
from taskgroup_runtime.integrity import sha256_file
from taskgroup.data.standardize import TargetTransform
from taskgroup.models import create_model, load_checkpoint, save_checkpoint
from taskgroup.presets import get_arch_preset

TRANSFORMS = {
    "depth_zbuffer": TargetTransform("depth_zbuffer", "16-bit PNG value: depth in 1/512 m", (1500.0,), (1000.0,),
                                     "the paper's constants", (0.0, 65535.0)),
    "normal": TargetTransform("normal", "8-bit / 255", (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), "measured", (0.0, 1.0)),
    "segment_semantic": TargetTransform("segment_semantic", "class id", None, None, "none: a classification task"),
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    preset = get_arch_preset("tiny")
    torch.manual_seed(0)
    model = create_model(preset.model, list(TRANSFORMS), 1.0, **preset.model_config).eval()
    model.target_transforms = dict(TRANSFORMS)
    (root / "ckpt").mkdir()
    save_checkpoint(model, root / "ckpt" / "net0.pt")
    served = ["segment_semantic", "depth_zbuffer"]  # normals trained as an auxiliary task only
    doc = {"schema_version": 1, "kind": "grouping", "tasks": served, "budget": {"value": 5.0, "unit": "snt"},
           "networks": [{"tasks": list(TRANSFORMS), "served": served, "width": 1.0, "stage": "final",
                         "checkpoint": "ckpt/net0.pt", "cost": 1.0,
                         "checkpoint_sha256": sha256_file(root / "ckpt" / "net0.pt")}],
           "served_by": {t: 0 for t in served}, "objective": 1.0}
    (root / "best.json").write_text(json.dumps(doc))
    return root, export_bundle(root / "best.json", root / "deploy", resolution=16)


def test_runtime_outputs_are_the_heads_mapped_to_dataset_units(bundle):
    root, bundle_dir = bundle
    frames = synthetic_frames(5, 16, seed=7)
    model = load_checkpoint(root / "ckpt" / "net0.pt")
    with torch.no_grad():
        heads = {t: v.numpy() for t, v in model(torch.from_numpy(frames)).items()}  # the standardised space
    with load_bundle(bundle_dir) as b:
        out = b.run(frames)
        assert b.manifest.tasks["depth_zbuffer"].units.startswith("16-bit")
        assert b.manifest.tasks["depth_zbuffer"].transform.mean == (1500.0,)
    expected = heads["depth_zbuffer"] * 1000.0 + 1500.0
    assert np.abs(out["depth_zbuffer"] - expected).max() <= DEFAULT_ATOL["fp32"] * np.abs(expected).max()
    assert np.abs(expected).max() > 100  # in the data's units, not the head's
    np.testing.assert_allclose(out["segment_semantic"], heads["segment_semantic"], atol=1e-4)  # logits unchanged


def test_manifest_states_units_and_transform(bundle):
    _, bundle_dir = bundle
    tasks = json.loads((bundle_dir / "manifest.json").read_text())["tasks"]
    depth = tasks["depth_zbuffer"]
    assert depth["units"] == TRANSFORMS["depth_zbuffer"].units and depth["value_range"] == [0.0, 65535.0]
    assert depth["transform"]["kind"] == "affine" and depth["transform"]["std"] == [1000.0]
    assert "output = head * std + mean" in depth["transform"]["applied"] and depth["loss"] == "l1"
    assert tasks["segment_semantic"]["transform"]["kind"] == "none" and tasks["segment_semantic"]["value_range"] is None
    assert "normal" not in tasks


def test_checkpoints_from_before_standardisation_export_unchanged(tmp_path):
    """No transform in the checkpoint: the heads were trained on the data's values; nothing is applied."""
    grouping = make_grouping(tmp_path, networks=({"tasks": ["edge_texture"], "served": ["edge_texture"],
                                                  "width": 0.5, "cost": 1.0},))
    out = export_bundle(grouping, tmp_path / "deploy", resolution=16)
    entry = json.loads((out / "manifest.json").read_text())["tasks"]["edge_texture"]
    assert entry["transform"] is None and "before target standardisation" in entry["units"]
    frames = synthetic_frames(3, 16)
    model = load_checkpoint(tmp_path / "ckpt" / "net0.pt")
    with torch.no_grad(), load_bundle(out) as b:
        np.testing.assert_allclose(b.run(frames)["edge_texture"], model(torch.from_numpy(frames))["edge_texture"].numpy(),
                                   atol=1e-4)
