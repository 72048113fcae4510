import json
import shutil

import numpy as np
import pytest
import torch

from bundle_fixtures import DEFAULT_NETWORKS, make_grouping, reseal_checkpoints
from taskgroup_exporters import DEFAULT_ATOL, export_bundle, read_grouping, synthetic_frames
from taskgroup_runtime import load_bundle
from taskgroup_runtime.integrity import sha256_file
from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.train.store_integrity import verified_checkpoint_sha256
from taskgroup.models import load_checkpoint
from taskgroup.tasks import TASKS


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("g")
    grouping = make_grouping(root)
    return grouping, export_bundle(grouping, root / "deploy", resolution=16, fuse=False)


def _torch_reference(grouping_path, frames):
    """Outputs of the served heads of every chosen network, computed by PyTorch eager."""
    doc = json.loads(grouping_path.read_text())
    ref = {}
    for net in doc["networks"]:
        model = load_checkpoint(grouping_path.parent / net["checkpoint"])
        with torch.no_grad():
            out = model(torch.from_numpy(frames))
        ref.update({t: out[t].numpy() for t in net["served"]})
    return ref


def test_round_trip_runtime_matches_pytorch_for_every_task(exported):
    grouping, bundle_dir = exported
    frames = synthetic_frames(7, 16, seed=123)  # not the frames export verified on
    ref = _torch_reference(grouping, frames)
    with load_bundle(bundle_dir) as bundle:
        out = bundle.run(frames)
    assert set(out) == set(ref) == {"segment_semantic", "depth_zbuffer", "edge_texture"}
    for task in ref:
        assert out[task].shape == ref[task].shape
        scale = max(1.0, np.abs(ref[task]).max())
        assert np.abs(out[task] - ref[task]).max() <= DEFAULT_ATOL["fp32"] * scale, task


def test_auxiliary_heads_are_dropped_from_the_onnx_graph(exported):
    import onnx

    _, bundle_dir = exported
    outputs = [o.name for o in onnx.load(str(bundle_dir / "net0.onnx")).graph.output]
    assert outputs == ["segment_semantic", "depth_zbuffer"]  # 'normal' was trained as auxiliary only
    graph_input = onnx.load(str(bundle_dir / "net0.onnx")).graph.input[0]
    assert graph_input.type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis


def test_manifest_describes_inputs_outputs_files_and_selection(exported):
    _, bundle_dir = exported
    m = json.loads((bundle_dir / "manifest.json").read_text())
    assert m["kind"] == "bundle_manifest" and m["schema_version"] == 1
    assert m["input"]["shape"] == ["N", 3, 16, 16]
    assert m["input"]["color_order"] == "RGB" and m["input"]["layout"] == "NCHW"
    assert m["input"]["normalization"]["mean"] == [0.5, 0.5, 0.5]
    assert m["tasks"]["segment_semantic"]["shape"] == ["N", 8, 16, 16]
    assert m["tasks"]["edge_texture"]["network"] == 1
    assert m["tasks"]["depth_zbuffer"]["meaning"] == TASKS["depth_zbuffer"].meaning
    assert set(m["files"]) == {"net0.onnx", "net1.onnx"}  # weights embedded, no .onnx.data
    for name, entry in m["files"].items():
        assert entry["sha256"] == sha256_file(bundle_dir / name)
    assert m["selection"]["predicted_latency"]["value"] == pytest.approx(3.75)  # 2.5 + 1.25 ms
    assert m["selection"]["budget"] == {"value": 5.0, "unit": "ms"}
    assert m["tensorrt"]["built"] is False
    assert not list(bundle_dir.parent.glob(".deploy.*"))  # no temporary directories left behind


def test_existing_destination_is_refused_unless_overwrite(exported, tmp_path):
    grouping, bundle_dir = exported
    with pytest.raises(TaskgroupError, match="already exists"):
        export_bundle(grouping, bundle_dir, resolution=16)


@pytest.mark.slow  # three exports
def test_overwrite_replaces_only_the_files_the_earlier_manifest_lists(tmp_path):
    """An earlier bundle is replaced: its model files that the new one no longer has go with it, while a
    user's file kept beside the models (not listed by the manifest) survives unchanged."""
    out = export_bundle(make_grouping(tmp_path / "two"), tmp_path / "deploy", resolution=16, fuse=False)
    assert (out / "net1.onnx").is_file()
    (out / "calibration.yaml").write_text("camera: {fx: 500}\n")
    (out / "notes").symlink_to("calibration.yaml")
    one = make_grouping(tmp_path / "one", networks=DEFAULT_NETWORKS[:1])
    export_bundle(one, out, resolution=16, overwrite=True, fuse=False)
    assert (out / "calibration.yaml").read_text() == "camera: {fx: 500}\n"
    assert (out / "notes").is_symlink() and (out / "notes").read_text() == "camera: {fx: 500}\n"
    assert not (out / "net1.onnx").exists()  # listed by the earlier manifest, not written by this export
    assert sorted(json.loads((out / "manifest.json").read_text())["files"]) == ["net0.onnx"]
    load_bundle(out).close()  # files the manifest does not list do not disturb the runtime
    empty = tmp_path / "empty"
    empty.mkdir()
    export_bundle(one, empty, resolution=16, overwrite=True)
    assert (empty / "manifest.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary or .old directories


def test_overwrite_refuses_a_user_file_the_new_bundle_would_clobber(tmp_path):
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"kind": "bundle_manifest", "files": {}}))
    (out / "net0.onnx").write_text("the user's own file, not listed by the manifest")
    one = make_grouping(tmp_path / "one", networks=DEFAULT_NETWORKS[:1])
    with pytest.raises(TaskgroupError, match=r"\['net0.onnx'\] not listed by the earlier bundle's manifest"):
        export_bundle(one, out, resolution=16, overwrite=True, fuse=False)
    assert (out / "net0.onnx").read_text() == "the user's own file, not listed by the manifest"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("content", ["run directory", "foreign manifest", "bundle with subdirectory", "a file"])
def test_overwrite_never_deletes_what_is_not_a_bundle(tmp_path, content):
    grouping = make_grouping(tmp_path / "g")
    out = tmp_path / "target"
    if content == "a file":
        out.write_text("user data")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("user data")
        if content == "foreign manifest":
            (out / "manifest.json").write_text('{"kind": "something_else"}')
        if content == "bundle with subdirectory":
            (out / "manifest.json").write_text('{"kind": "bundle_manifest"}')
            (out / "checkpoints").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(TaskgroupError, match="not a bundle|not a directory|holds directories"):
        export_bundle(grouping, out, resolution=16, overwrite=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing deleted, nothing left behind


def test_failed_numerical_check_leaves_no_bundle(tmp_path, monkeypatch):
    import taskgroup_exporters.bundle as eb

    grouping = make_grouping(tmp_path)
    real = eb.ort_outputs

    def perturbed(path, frames, batch=16):
        return {k: v + 1e-2 for k, v in real(path, frames, batch).items()}

    monkeypatch.setattr(eb, "ort_outputs", perturbed)
    with pytest.raises(TaskgroupError, match="does not match PyTorch"):
        export_bundle(grouping, tmp_path / "deploy", resolution=16)
    assert not (tmp_path / "deploy").exists()
    assert not list(tmp_path.glob(".deploy.*"))


def test_estimated_network_without_checkpoint_is_refused(tmp_path):
    grouping = make_grouping(tmp_path)
    doc = json.loads(grouping.read_text())
    doc["networks"][1]["checkpoint"] = None
    grouping.write_text(json.dumps(doc))
    with pytest.raises(TaskgroupError, match=r"estimated \(HOA\) losses.*select again without --estimate"):
        export_bundle(grouping, tmp_path / "deploy", resolution=16)
    assert not (tmp_path / "deploy").exists()


def test_early_stopped_checkpoint_is_refused(tmp_path):
    from taskgroup.models import load_checkpoint, save_checkpoint

    grouping = make_grouping(tmp_path)
    save_checkpoint(load_checkpoint(tmp_path / "ckpt/net1.pt"), tmp_path / "ckpt/net1.pt", stage="early")
    reseal_checkpoints(grouping)
    with pytest.raises(TaskgroupError, match="early-stopped"):
        export_bundle(grouping, tmp_path / "deploy", resolution=16)
    doc = json.loads(grouping.read_text())
    doc["networks"][1].update(checkpoint=None, stage="early")
    grouping.write_text(json.dumps(doc))
    with pytest.raises(TaskgroupError, match="only its early-stopped"):
        export_bundle(grouping, tmp_path / "deploy", resolution=16)
    assert not (tmp_path / "deploy").exists()


def test_checkpoint_not_matching_grouping_is_refused(tmp_path):
    grouping = make_grouping(tmp_path)
    shutil.copy(tmp_path / "ckpt/net1.pt", tmp_path / "ckpt/net0.pt")
    reseal_checkpoints(grouping)
    with pytest.raises(TaskgroupError, match="checkpoint has tasks"):
        export_bundle(grouping, tmp_path / "deploy", resolution=16)


def _nudge_a_bias(path) -> None:
    """Rewrite a checkpoint with one bias moved by 0.002: a valid file, silently different weights."""
    from taskgroup.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    name = next(k for k in ckpt["state_dict"] if k.endswith(".bias"))
    ckpt["state_dict"][name][0] += 0.002
    torch.save(ckpt, path)


def test_a_checkpoint_changed_after_training_is_refused_with_the_command_that_retrains_it(tmp_path):
    run = tmp_path / "run"
    grouping = make_grouping(run, networks=DEFAULT_NETWORKS[1:], run_store=True)
    _nudge_a_bias(run / "checkpoints/net0_final.pt")
    with pytest.raises(TaskgroupError, match=r"net0_final.pt: does not match the sha256 recorded in .*runs.sqlite.*"
                                             rf"taskgroup train --out {run} --resume --networks 'edge_texture@0.5'"):
        export_bundle(grouping, tmp_path / "deploy", resolution=16, verify_checkpoint=verified_checkpoint_sha256)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written


def test_a_checkpoint_without_a_recorded_sha256_is_refused(tmp_path):
    import sqlite3

    run = tmp_path / "run"
    grouping = make_grouping(run, networks=DEFAULT_NETWORKS[1:], run_store=True)
    with sqlite3.connect(run / "runs.sqlite") as conn:  # as if its commit never happened
        conn.execute("DELETE FROM results")
    with pytest.raises(TaskgroupError, match="has no committed result in .*runs.sqlite.*--resume --networks"):
        export_bundle(grouping, tmp_path / "deploy", resolution=16, verify_checkpoint=verified_checkpoint_sha256)
    # Without the run's store, the exporter trusts only a digest the grouping records.
    with pytest.raises(TaskgroupError, match=r"records no networks\[0\].checkpoint_sha256.*taskgroup export"):
        export_bundle(grouping, tmp_path / "deploy", resolution=16)
    (run / "runs.sqlite").unlink()
    with pytest.raises(TaskgroupError, match=r"no sha256 is recorded for this checkpoint.*networks\[0\].checkpoint_sha256"):
        export_bundle(grouping, tmp_path / "deploy", resolution=16, verify_checkpoint=verified_checkpoint_sha256)
    other = make_grouping(tmp_path / "g", networks=DEFAULT_NETWORKS[1:])  # the grouping records the digest
    _nudge_a_bias(tmp_path / "g/ckpt/net0.pt")
    with pytest.raises(TaskgroupError, match=r"does not match networks\[0\].checkpoint_sha256 of .*best.json"):
        export_bundle(other, tmp_path / "deploy", resolution=16)
    assert not (tmp_path / "deploy").exists()


def test_tensorrt_required_without_tensorrt_is_a_clear_error(tmp_path):
    from taskgroup_runtime import tensorrt_status

    if tensorrt_status()[0]:
        pytest.skip("tensorrt is installed here")
    grouping = make_grouping(tmp_path)
    with pytest.raises(TaskgroupError, match=r"--format tensorrt: the tensorrt Python package cannot be imported.*"
                                             r"pip install 'taskgrouping\[tensorrt\]'"):
        export_bundle(grouping, tmp_path / "deploy", formats="tensorrt", resolution=16)
    assert not (tmp_path / "deploy").exists()


@pytest.mark.slow
def test_fp16_bundle_with_all_formats_records_why_no_engine(tmp_path):
    grouping = make_grouping(tmp_path)
    out = export_bundle(grouping, tmp_path / "deploy", formats="all", precision="fp16", resolution=16, fuse=False)
    m = json.loads((out / "manifest.json").read_text())
    assert m["precision"] == "fp16" and set(m["files"]) == {"net0.fp16.onnx", "net1.fp16.onnx"}
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert m["tensorrt"]["built"] is False and "tensorrt" in m["tensorrt"]["reason"]
    frames = synthetic_frames(4, 16, seed=5)
    ref = _torch_reference(grouping, frames)
    with load_bundle(out) as bundle:
        got = bundle.run(frames)
    for t in ref:
        assert got[t].dtype == np.float32
        assert np.abs(got[t] - ref[t]).max() <= DEFAULT_ATOL["fp16"] * max(1.0, np.abs(ref[t]).max())


def test_caller_frames_set_the_resolution_and_are_validated(tmp_path):
    grouping = make_grouping(tmp_path)
    with pytest.raises(TaskgroupError, match=r"\[0, 1\]"):
        export_bundle(grouping, tmp_path / "d", frames=synthetic_frames(2, 16) * 255)
    with pytest.raises(TaskgroupError, match="does not match"):
        export_bundle(grouping, tmp_path / "d", frames=synthetic_frames(2, 16), resolution=32)


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["networks"][0].update(served=["rgb"]), "networks[0].served"),
    (lambda d: d["networks"][0].update(tasks=["nonsense"]), "networks[0].tasks"),
    (lambda d: d["served_by"].update(edge_texture=7), "served_by.edge_texture"),
    (lambda d: d["budget"].update(unit="seconds"), "budget.unit"),
    (lambda d: d["networks"][1].update(cost="cheap"), "networks[1].cost"),
    (lambda d: d["networks"][1].update(cost=-2.9), "networks[1].cost"),  # would predict a negative latency
    (lambda d: d["networks"][1].update(cost=0), "networks[1].cost"),
    (lambda d: d["budget"].update(value=-5.0), "budget.value"),
    (lambda d: d["networks"][0].update(checkpoint_sha256="abc"), "networks[0].checkpoint_sha256"),
    # found by the fuzz tests: each would reach the manifest or its predicted latency
    (lambda d: d.update(tasks=["segment_semantic", "segment_semantic", "depth_zbuffer", "edge_texture"]), "tasks"),
    (lambda d: d.update(objective=float("nan")), "objective"),
    (lambda d: d.update(corun_factor=float("inf")), "corun_factor"),
    (lambda d: d.update(corun_factor=0.5), "corun_factor"),
    (lambda d: d["budget"].update(backend_settings={"intra_op_num_threads": float("nan")}), "budget"),
    (lambda d: [n.update(cost=1e308) for n in d["networks"]], "networks"),  # the sum overflows to infinity
    # a task served twice, and a served task the grouping does not list
    (lambda d: d["networks"][1].update(tasks=["edge_texture", "depth_zbuffer"], served=["edge_texture", "depth_zbuffer"]),
     "networks[1].served"),
    (lambda d: d["networks"][0].update(served=["segment_semantic", "depth_zbuffer", "normal"]), "networks[0].served"),
])
def test_grouping_reader_names_the_bad_field(tmp_path, edit, field):
    grouping = make_grouping(tmp_path)
    doc = json.loads(grouping.read_text())
    edit(doc)
    grouping.write_text(json.dumps(doc))
    with pytest.raises(SchemaError) as info:
        read_grouping(grouping)
    assert info.value.field == field and str(grouping) in str(info.value)


def test_grouping_reader_tolerates_odd_optional_fields_and_quotes_names(tmp_path):
    grouping = make_grouping(tmp_path)
    doc = json.loads(grouping.read_text())
    doc["options"] = 1  # not an object: treated as absent
    grouping.write_text(json.dumps(doc))
    assert read_grouping(grouping).profile is None
    doc["tasks"][0] = "segment\nsemantic"
    grouping.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=r"unknown task 'segment\\nsemantic'") as info:
        read_grouping(grouping)
    assert "\n" not in str(info.value)  # a name with a line break is quoted, the message stays one line


def test_grouping_reader_accepts_both_field_spellings(tmp_path):
    grouping = make_grouping(tmp_path)
    doc = json.loads(grouping.read_text())
    for net in doc["networks"]:
        net["tasks_trained"] = net.pop("tasks")
        net["tasks_served"] = net.pop("served")
    grouping.write_text(json.dumps(doc))
    g = read_grouping(grouping)
    assert g.networks[0].served == ("segment_semantic", "depth_zbuffer")
    assert g.checkpoint_path(g.networks[0]) == (tmp_path / "ckpt/net0.pt").resolve()
    assert g.to_json()["networks"][0]["served"] == ["segment_semantic", "depth_zbuffer"]  # written one way


def test_synthetic_frames_are_deterministic_and_in_range():
    a, b = synthetic_frames(9, 16), synthetic_frames(9, 16)
    assert a.shape == (9, 3, 16, 16) and a.dtype == np.float32
    assert np.array_equal(a, b) and a.min() == 0.0 and a.max() == 1.0


def test_a_grouping_costed_at_another_precision_is_refused(tmp_path):
    grouping = make_grouping(tmp_path)
    doc = json.loads(grouping.read_text())
    doc["budget"]["backend_settings"] = {"intra_op_num_threads": 1, "precision": "fp16"}
    grouping.write_text(json.dumps(doc))
    with pytest.raises(TaskgroupError, match="costs were measured at fp16.*--precision fp16"):
        export_bundle(grouping, tmp_path / "deploy", resolution=16)
    assert not (tmp_path / "deploy").exists()
