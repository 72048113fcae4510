"""Camera frames of any size: the runtime resizes them exactly as the training loader resized its
images (area averaging), records the rule in the manifest, and takes BGR frames when told."""

import json

import numpy as np
import pytest

from taskgroup_runtime import load_bundle
from taskgroup_runtime.resize import resize_area

SIZES = [(480, 640, 32, 32), (480, 640, 64, 64), (600, 512, 32, 32), (37, 100, 32, 32), (100, 37, 32, 32),
         (48, 48, 16, 16), (50, 33, 16, 16), (17, 1000, 16, 16), (20, 20, 32, 32), (31, 31, 32, 32),
         (16, 64, 32, 32), (16, 16, 16, 16), (1, 1, 16, 16)]


@pytest.mark.parametrize("h, w, height, width", SIZES)
def test_the_runtime_resizes_as_the_folder_loader_does(h, w, height, width):
    """Against the loader's own resize (taskgroup.data.folder, OpenCV INTER_AREA on image / 255), on
    shrinking, enlarging and mixed frames; integer and fractional factors."""
    from taskgroup.data.resize import resize_square as _resize

    assert height == width  # the loader resizes to a square input
    frame = np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    loader = _resize(frame.astype(np.float64) / 255, height) * 255  # what training stored, in 0..255
    runtime = resize_area(frame[None], height, width)[0]
    assert runtime.shape == loader.shape == (height, width, 3)
    np.testing.assert_allclose(runtime, loader, rtol=0, atol=1e-4)  # OpenCV's weights are float32
    # Rounded to the fused graph's uint8: equal wherever the value is not within float error of a .5 tie.
    clear = np.abs(loader - np.floor(loader) - 0.5) > 1e-3
    assert np.array_equal(np.rint(runtime)[clear], np.rint(loader)[clear])


def test_a_batch_resizes_frame_by_frame():
    frames = np.random.default_rng(1).integers(0, 256, (3, 60, 90, 3), dtype=np.uint8)
    batch = resize_area(frames, 16, 16)
    for k in range(3):
        np.testing.assert_allclose(batch[k], resize_area(frames[k:k + 1], 16, 16)[0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("which", ["tiny_bundle", "fused_bundle"])
def test_a_640x480_camera_frame_runs_as_the_loader_resized_frame_in_either_colour_order(which, request):
    from taskgroup.data.resize import resize_square as _resize

    bundle_dir = request.getfixturevalue(which)
    doc = json.loads((bundle_dir / "manifest.json").read_text())
    assert doc["input"]["resize"]["method"] == "area" and "INTER_AREA" in doc["input"]["resize"]["rule"]
    camera = np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    as_trained = _resize(camera.astype(np.float64) / 255, 16)  # the folder loader's own resize
    with load_bundle(bundle_dir, execution="sequential") as b:
        got = b.run(camera)
        bgr = b.run(np.ascontiguousarray(camera[:, :, ::-1]), color_order="BGR")
        if b.input.dtype == "uint8":  # fused: the graph takes the 8-bit frame, rounded
            want = b.run(np.rint(as_trained * 255).astype(np.uint8))
        else:
            want = b.run(np.ascontiguousarray(as_trained.astype(np.float32).transpose(2, 0, 1)))
        with pytest.raises(ValueError, match="unknown color_order 'YUV'"):
            b.run(camera, color_order="YUV")
    for task in want:
        assert got[task].shape == want[task].shape == (1, want[task].shape[1], 16, 16)
        np.testing.assert_allclose(got[task], want[task], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(bgr[task], got[task])


def test_a_bundle_without_a_resize_rule_takes_its_own_size_only(bundle_copy):
    from taskgroup_runtime.errors import RuntimeInputError
    from taskgroup_runtime.manifest import manifest_digest

    path = bundle_copy / "manifest.json"
    doc = json.loads(path.read_text())
    del doc["input"]["resize"]  # as exported before the rule was recorded
    doc["content_sha256"] = manifest_digest(doc)
    path.write_text(json.dumps(doc))
    with load_bundle(bundle_copy, execution="sequential") as b:
        b.run(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(RuntimeInputError, match="records no resize rule"):
            b.run(np.zeros((480, 640, 3), np.uint8))
