"""export --fuse: one graph per bundle taking the uint8 frame, bit-identical to the separate networks."""

import json

import numpy as np
import pytest

from bundle_fixtures import make_grouping
from taskgroup_exporters import export_bundle
from taskgroup_exporters.bundle import quantized_frames
from taskgroup_exporters.fuse import fuse_models
from taskgroup_runtime import OrtRunner, RuntimeInputError, SessionFromOnnx, load_bundle
from taskgroup_runtime.specs import InputSpec
from taskgroup_runtime.preprocess import to_network_input


def _conv(seed: int, out: str):
    """A hand-made network: image (N, 3, 8, 8) -> 1x1 convolution -> `out` (N, 2, 8, 8)."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).normal(size=(2, 3, 1, 1)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Conv", ["image", "w"], [out])], f"net{seed}",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 2, 8, 8])],
                              [numpy_helper.from_array(w, "w")])  # both networks name their weights "w"
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_fused_graph_equals_the_separate_networks_on_the_runtimes_input_conversion():
    nets = [_conv(0, "depth"), _conv(1, "edges")]
    fused = fuse_models(nets, height=8, width=8)
    frames = np.random.default_rng(2).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    x = to_network_input(frames, InputSpec("image", 8, 8))  # what the runtime feeds separate networks
    with OrtRunner(SessionFromOnnx(fused.SerializeToString())) as r:
        assert r.get_input_metadata() == {"frame": ((None, 8, 8, 3), "uint8")}
        got = r.infer({"frame": frames})
    for net, name in zip(nets, ("depth", "edges")):
        with OrtRunner(SessionFromOnnx(net.SerializeToString())) as alone:
            np.testing.assert_array_equal(got[name], alone.infer({"image": x})[name])  # bit-identical


def test_colliding_output_names_must_be_renamed():
    nets = [_conv(0, "depth"), _conv(1, "depth")]
    with pytest.raises(Exception, match="repeat a name"):
        fuse_models(nets, height=8, width=8)
    fused = fuse_models(nets, height=8, width=8, outputs=[{"depth": "a/depth"}, {"depth": "b/depth"}])
    assert [o.name for o in fused.graph.output] == ["a/depth", "b/depth"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuse")
    grouping = make_grouping(root)
    return (grouping, export_bundle(grouping, root / "separate", resolution=16, fuse=False),
            export_bundle(grouping, root / "fused", resolution=16))  # fused is the default


def test_the_fused_bundle_is_one_graph_taking_the_uint8_frame(bundles):
    _, _, fused = bundles
    m = json.loads((fused / "manifest.json").read_text())
    assert m["schema_version"] == 2 and m["graph"] == "fused" and set(m["files"]) == {"fused.onnx"}
    assert m["input"]["name"] == "frame" and m["input"]["dtype"] == "uint8" and m["input"]["shape"] == ["N", 16, 16, 3]
    (net,) = m["networks"]
    assert net["tasks"] == ["segment_semantic", "depth_zbuffer", "edge_texture"]
    assert [p["name"] for p in net["fused_from"]] == ["net0", "net1"] and net["predicted_latency"] == pytest.approx(3.75)
    assert all(t["network"] == 0 for t in m["tasks"].values())
    assert "rounded to 8 bits" in m["verification"]["fused"]


def test_fused_and_separate_bundles_give_the_same_outputs_and_the_same_api(bundles):
    _, separate, fused = bundles
    frames = np.random.default_rng(3).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    as_float = (frames.transpose(0, 3, 1, 2) / np.float32(255)).astype(np.float32)
    with load_bundle(separate) as a, load_bundle(fused) as b:
        assert b.tasks == a.tasks and len(b.describe()["runners"]) == 1
        want = a.run(frames)
        for got in (b.run(frames), b.run(as_float), b.run(frames[0])):
            for t in want:
                np.testing.assert_array_equal(got[t], want[t][: len(got[t])])  # bit-identical
        with pytest.raises(RuntimeInputError, match="takes 8-bit frames.*export without --fuse"):
            b.run(np.full((1, 3, 16, 16), 0.5001, np.float32))
        measured = b.measure(runs=10)
        assert [s.network for s in measured.standalone] == ["fused"] and measured.whole.runs >= 10


def test_the_fused_graph_matches_pytorch_on_8bit_frames(bundles):
    from taskgroup_exporters.frames import synthetic_frames
    from test_export import _torch_reference

    grouping, _, fused = bundles
    frames = quantized_frames(synthetic_frames(6, 16, seed=4))
    ref = _torch_reference(grouping, frames)
    with load_bundle(fused) as b:
        got = b.run(frames)
    for t in ref:
        assert np.abs(got[t] - ref[t]).max() <= 1e-4 * max(1.0, np.abs(ref[t]).max())


def test_export_follows_what_the_grouping_was_profiled_with(tmp_path):
    grouping = make_grouping(tmp_path)
    doc = json.loads(grouping.read_text())
    doc["budget"]["backend_settings"] = {"intra_op_num_threads": 1, "precision": "fp32", "fused": False}
    grouping.write_text(json.dumps(doc))
    out = export_bundle(grouping, tmp_path / "deploy", resolution=16)
    m = json.loads((out / "manifest.json").read_text())
    assert m["schema_version"] == 1 and m["graph"] == "separate" and set(m["files"]) == {"net0.onnx", "net1.onnx"}


@pytest.mark.slow
def test_a_fused_fp16_bundle(tmp_path):
    out = export_bundle(make_grouping(tmp_path), tmp_path / "deploy", resolution=16, precision="fp16")
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["files"]) == {"fused.fp16.onnx"} and m["precision"] == "fp16"
    with load_bundle(out) as b:
        assert b.run(np.zeros((16, 16, 3), np.uint8))["depth_zbuffer"].dtype == np.float32
