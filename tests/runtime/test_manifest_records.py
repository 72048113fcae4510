"""The manifest typed all the way down: what export writes reads back to the same JSON and digest,
older layouts still load, unknown fields are kept, and a bad field is one line naming file, field
and fix."""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from taskgroup_runtime import BundleError, read_manifest
from taskgroup_runtime.manifest import Manifest, manifest_digest
from taskgroup_runtime.provenance import CreatedWith
from taskgroup_runtime.specs import FusedPart, OutputCheck, OutputTransform


def _as_written(manifest: Manifest) -> str:
    """The text export writes for a document (taskgroup.fileio.write_json_atomic)."""
    return json.dumps(manifest.to_json(), indent=2, sort_keys=False, allow_nan=False) + "\n"


def _resealed(bundle: Path, edit, tmp_path: Path) -> Path:
    """A copy of the bundle's manifest, edited and sealed again (the model files are not needed to parse it)."""
    doc = json.loads((bundle / "manifest.json").read_text())
    edit(doc)
    doc["content_sha256"] = manifest_digest(doc)
    out = tmp_path / "edited"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps(doc, indent=2))
    return out


@pytest.mark.parametrize("which", ["tiny_bundle", "fused_bundle"])
def test_an_exported_manifest_round_trips_to_the_same_json_and_digest(which, request):
    bundle = request.getfixturevalue(which)
    text = (bundle / "manifest.json").read_text()
    manifest = read_manifest(bundle)
    assert _as_written(manifest) == text
    assert manifest.to_json()["content_sha256"] == manifest.content_sha256 == json.loads(text)["content_sha256"]


def test_the_blocks_are_typed(tiny_bundle, fused_bundle):
    manifest = read_manifest(tiny_bundle)
    assert isinstance(manifest.created_with, CreatedWith) and manifest.created_with.opset_requested == 18
    assert manifest.created_with.exporter.startswith("torch.onnx.export")
    net = manifest.networks[0]
    assert all(isinstance(c, OutputCheck) and 0 <= c.max_abs_error <= c.tolerance for c in net.verification.values())
    assert set(net.verification) == set(net.tasks) and net.fused_from is None
    assert all(o.transform is None or isinstance(o.transform, OutputTransform) for o in manifest.tasks.values())
    fused = read_manifest(fused_bundle).networks[0]
    assert [p.name for p in fused.fused_from] == ["net0", "net1"]
    assert all(isinstance(p, FusedPart) and set(p.verification) == set(p.tasks) for p in fused.fused_from)


def test_older_layouts_load(fused_bundle, tmp_path):
    """A fused bundle from before epochs were recorded, from before units and transforms, with no
    per-output verification and a bare created_with."""
    def older(doc):
        for part in doc["networks"][0]["fused_from"]:
            part.pop("epoch", None)
            part.pop("stopped_for", None)
        for task in doc["tasks"].values():
            task.pop("units", None)
            task.pop("transform", None)
        doc["networks"][0].pop("verification")
        doc["created_with"] = {"torch": "2.5.0"}

    manifest = read_manifest(_resealed(fused_bundle, older, tmp_path))
    assert manifest.created_with == CreatedWith(torch="2.5.0")
    assert all(p.epoch is None for p in manifest.networks[0].fused_from)
    assert manifest.networks[0].verification == {}
    assert all(o.transform is None for o in manifest.tasks.values())


def test_unknown_fields_are_kept(tiny_bundle, tmp_path):
    def newer(doc):
        doc["created_with"]["cuda"] = "13.0"
        first = next(iter(doc["tasks"].values()))
        first["transform"] = {"kind": "affine", "mean": [1.5], "std": [2], "origin": "declared", "applied": "x",
                              "clip": [0, 1]}
        check = next(iter(doc["networks"][0]["verification"].values()))
        check["mean_abs_error"] = 0.0

    edited = _resealed(tiny_bundle, newer, tmp_path)
    manifest = read_manifest(edited)
    assert manifest.created_with.extra == {"cuda": "13.0"}
    transform = next(iter(manifest.tasks.values())).transform
    assert transform == OutputTransform("affine", (1.5,), (2,), "declared", "x", {"clip": [0, 1]})
    assert next(iter(manifest.networks[0].verification.values())).extra == {"mean_abs_error": 0.0}
    assert manifest.to_json() == json.loads((edited / "manifest.json").read_text())


@pytest.mark.parametrize("edit, field", [
    (lambda doc: doc["created_with"].update(opset_requested="18"), "created_with.opset_requested"),
    (lambda doc: doc["created_with"].update(torch=2), "created_with.torch"),
    (lambda doc: next(iter(doc["tasks"].values())).update(transform={"kind": "affine", "mean": ["a"]}),
     ".transform.mean"),
    (lambda doc: next(iter(doc["networks"][0]["verification"].values())).update(tolerance="small"),
     "networks[0].verification."),
    (lambda doc: doc["networks"][0]["verification"].update(depth_zbuffer=[1]), "networks[0].verification.depth_zbuffer"),
])
def test_a_bad_field_is_one_line_naming_file_field_and_fix(tiny_bundle, tmp_path, edit, field):
    with pytest.raises(BundleError) as info:
        read_manifest(_resealed(tiny_bundle, edit, tmp_path))
    message = str(info.value)
    assert "\n" not in message and "manifest.json" in message and field in message
    assert "re-export the bundle with `taskgroup export`" in message


@pytest.mark.parametrize("part, field", [
    ({"tasks": ["depth_zbuffer"]}, "fused_from[0].name"),
    ({"name": "net0", "tasks": "depth_zbuffer"}, "fused_from[0].tasks"),
    ({"name": "net0", "tasks": ["depth_zbuffer"], "epoch": -1}, "fused_from[0].epoch"),
    ({"name": "net0", "tasks": ["depth_zbuffer"], "verification": {"depth_zbuffer": {"max_abs_error": 0}}},
     "fused_from[0].verification.depth_zbuffer.tolerance"),
])
def test_a_bad_fused_part_is_refused(fused_bundle, tmp_path, part, field):
    with pytest.raises(BundleError, match=re.escape(f"field 'networks[0].{field}'")):
        read_manifest(_resealed(fused_bundle, lambda doc: doc["networks"][0].update(fused_from=[part]), tmp_path))


def test_records_round_trip_on_their_own():
    part = FusedPart("net0", ("depth_zbuffer",), ("depth_zbuffer", "normal"), 0.5, "final", "net0.pt", 12.0, None,
                     3.5, {"depth_zbuffer": OutputCheck(1e-6, 1e-4)}, {"note": "x"})
    assert FusedPart.from_json(part.to_json(), "p", "m") == part
    assert "stopped_for" not in part.to_json() and part.to_json()["epoch"] == 12.0
    created = CreatedWith("2.13.0", "1.23", "1.32", "3.12", "torch.onnx.export (dynamo)", 18, {"cuda": "13"})
    assert CreatedWith.from_json(created.to_json(), "m") == created
    assert list(created.to_json()) == ["torch", "onnx", "onnxruntime", "python", "exporter", "opset_requested", "cuda"]
    none = OutputTransform("none", applied="logits")
    assert none.to_json() == {"kind": "none", "applied": "logits"}
    assert OutputTransform.from_json(none.to_json(), "t", "m") == none


@pytest.mark.parametrize("doc", [
    {"intra_op_num_threads": 1, "inter_op_num_threads": 1, "allow_spinning": False, "precision": "fp32"},
    {"inter_op_num_threads": 1, "allow_spinning": False, "intra_op_num_threads": 1, "fused": True},
    {"torch_num_threads": 1, "mode": "eval"},
])
def test_backend_settings_are_written_back_in_the_order_read(doc):
    """Profiles, groupings and manifests of several versions put the thread count first or after the
    other settings: each file reads back as it was."""
    from taskgroup_runtime.provenance import BackendSettings

    settings = BackendSettings.parse(doc, "backend_settings", lambda f, p: ValueError(f"{f}: {p}"))
    assert json.dumps(settings.to_json()) == json.dumps(doc)
    fresh = BackendSettings.parse({}, "s", ValueError)
    assert list(dataclasses.replace(fresh, precision="fp16", intra_op_num_threads=2, extra={"x": 1}).to_json()) \
        == ["intra_op_num_threads", "x", "precision"]
