"""The Taskonomy loader on a small fixture written in the real directory layout."""

import cv2
import numpy as np
import pytest

from taskgroup.data import DataConfig, open_split
from taskgroup.data.taskonomy import SEGMENT_CLASSES
from taskgroup.errors import TaskgroupError

SRC, RES = 64, 32  # fixture images are 64 px, made of constant 2x2 blocks, so area resizing to 32 px is exact
BUILDINGS = {"train": ["allensville", "beechwood"], "val": ["coffeen"], "test": ["darden"]}


def blocks(rng, low, high, dtype, channels=None):
    shape = (RES, RES) if channels is None else (RES, RES, channels)
    small = rng.integers(low, high, size=shape).astype(dtype)
    return small, np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)


def write_png(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    if img.ndim == 3:
        img = img[:, :, ::-1]  # RGB -> BGR for cv2
    assert cv2.imwrite(str(path), img)


def make_fixture(root, rng):
    """Write every task for 2 views per building; return the expected normalised values per sample."""
    expected = {}
    for split, buildings in BUILDINGS.items():
        for b in buildings:
            for view in range(2):
                stem = f"point_{view + 3}_view_{view}"
                e = {}
                small, big = blocks(rng, 0, 256, np.uint8, 3)
                write_png(root / "rgb" / b / f"{stem}_domain_rgb.png", big)
                e["rgb"] = np.moveaxis(small / 255.0, -1, 0)
                small, big = blocks(rng, 0, 12000, np.uint16)
                big[0, 0] = 65535  # one undefined source pixel: the output pixel (0, 0) must be masked
                small_masked = small.copy()
                write_png(root / "depth_zbuffer" / b / f"{stem}_domain_depth_zbuffer.png", big)
                valid = small < 2 ** 13
                valid[0, 0] = False
                e["depth_zbuffer"] = small_masked.astype(np.float64)  # 16-bit values as stored (1/512 m)
                e["depth_mask"] = valid
                small, big = blocks(rng, 0, 256, np.uint8, 3)
                write_png(root / "normal" / b / f"{stem}_domain_normal.png", big)
                e["normal"] = np.moveaxis(small / 255.0, -1, 0)
                small, big = blocks(rng, 0, 18, np.uint8)
                write_png(root / "segment_semantic" / b / f"{stem}_domain_segment_semantic.png", big)
                e["segment_semantic"] = small.astype(np.int64)
                for task in ("edge_texture", "keypoints2d", "edge_occlusion"):
                    small, big = blocks(rng, 0, 65536, np.uint16)
                    write_png(root / task / b / f"{stem}_domain_{task}.png", big)
                    e[task] = small.astype(np.float64)  # 16-bit values as stored
                small, big = blocks(rng, 0, 256, np.uint8, 3)
                write_png(root / "reshading" / b / f"{stem}_domain_reshading.png", big)
                e["reshading"] = small.mean(axis=2) / 255.0
                small, big = blocks(rng, 0, 256, np.uint8, 3)
                write_png(root / "principal_curvature" / b / f"{stem}_domain_principal_curvature.png", big)
                e["principal_curvature"] = np.moveaxis(small[:, :, :2] / 255.0, -1, 0)
                expected[(b, stem)] = e
    return expected


@pytest.fixture
def fixture(tmp_path):
    root = tmp_path / "taskonomy"
    expected = make_fixture(root, np.random.default_rng(0))
    config = DataConfig(source="taskonomy", resolution=RES, taskonomy_root=str(root), cache_dir=str(tmp_path / "cache"),
                        train_buildings=BUILDINGS["train"], val_buildings=BUILDINGS["val"],
                        test_buildings=BUILDINGS["test"])
    return root, config, expected


ALL = ("rgb", "depth_zbuffer", "normal", "segment_semantic", "edge_texture", "keypoints2d", "edge_occlusion",
       "reshading", "principal_curvature")


def test_values_and_masks_after_normalisation(fixture):
    root, config, expected = fixture
    s = open_split(config, "train", ALL)
    samples = (s.directory / "samples.txt").read_text().split()
    assert samples == [f"{b}/point_{v + 3}_view_{v}" for b in BUILDINGS["train"] for v in range(2)]
    assert len(s) == 4 and s.images.shape == (4, 3, RES, RES)
    assert s.segment_classes == SEGMENT_CLASSES and len(SEGMENT_CLASSES) == 18
    for i, name in enumerate(samples):
        b, stem = name.split("/")
        e = expected[(b, stem)]
        np.testing.assert_allclose(s.images[i], e["rgb"], atol=1e-6)
        np.testing.assert_allclose(s.targets["rgb"][i], e["rgb"], atol=1e-6)
        np.testing.assert_array_equal(s.masks["depth_zbuffer"][i, 0], e["depth_mask"])
        valid = e["depth_mask"]
        np.testing.assert_allclose(s.targets["depth_zbuffer"][i, 0][valid], e["depth_zbuffer"][valid], atol=1e-6)
        for task in ("normal", "reshading", "edge_occlusion", "principal_curvature"):
            np.testing.assert_array_equal(s.masks[task][i, 0], valid)  # the paper masks these by depth
        np.testing.assert_allclose(s.targets["normal"][i], e["normal"], atol=1e-6)
        np.testing.assert_allclose(s.targets["reshading"][i, 0], e["reshading"], atol=1e-6)
        np.testing.assert_allclose(s.targets["principal_curvature"][i], e["principal_curvature"], atol=1e-6)
        for task in ("edge_texture", "keypoints2d", "edge_occlusion"):
            np.testing.assert_allclose(s.targets[task][i, 0], e[task], atol=1e-6)
        for task in ("edge_texture", "keypoints2d", "rgb"):
            assert s.masks[task][i].all()
        np.testing.assert_array_equal(s.targets["segment_semantic"][i], e["segment_semantic"])
        np.testing.assert_array_equal(s.masks["segment_semantic"][i, 0], e["segment_semantic"] != 0)
    images, targets, masks = s.batch([1, 0])
    assert str(targets["segment_semantic"].dtype) == "torch.int64" and str(masks["normal"].dtype) == "torch.bool"
    np.testing.assert_array_equal(images.numpy(), s.images[[1, 0]])


def test_training_uses_the_papers_constants(fixture):
    """Taskonomy is standardised with the paper's loader constants, in the loader's units."""
    from taskgroup.data.standardize import fit_transforms

    _, config, expected = fixture
    s = open_split(config, "train", ALL)
    tr = fit_transforms(config, s, ALL)
    assert (tr["edge_texture"].mean, tr["edge_texture"].std) == ((718.0,), (1070.0,))
    assert (tr["depth_zbuffer"].mean, tr["depth_zbuffer"].std) == ((1500.0,), (1000.0,))
    assert (tr["principal_curvature"].mean, tr["principal_curvature"].std) == ((0.5175, 0.4987), (0.1373, 0.0359))
    assert tr["segment_semantic"].mean is None and "16-bit" in tr["keypoints2d"].units
    assert tr["rgb"].origin.startswith("mean and std")  # the paper has no rgb constants: measured
    # standardised targets of order 1, as the paper trains them
    b, stem = s.meta["buildings"][0], "point_3_view_0"
    z = tr["edge_texture"].standardize(s.targets["edge_texture"][:1])
    np.testing.assert_allclose(z[0, 0], (expected[(b, stem)]["edge_texture"] - 718.0) / 1070.0, rtol=1e-5, atol=1e-6)


def test_splits_are_the_listed_buildings(fixture):
    _, config, _ = fixture
    for split, buildings in BUILDINGS.items():
        s = open_split(config, split, ["rgb"])
        assert s.meta["buildings"] == buildings and len(s) == 2 * len(buildings)


def test_resolution_is_applied_to_native_size_images(fixture, tmp_path):
    root, config, expected = fixture
    cfg = DataConfig(**{**config.to_dict(), "resolution": 16, "cache_dir": str(tmp_path / "c16")})
    s = open_split(cfg, "val", ["segment_semantic", "normal"])
    assert s.images.shape == (2, 3, 16, 16) and s.targets["segment_semantic"].shape == (2, 16, 16)
    assert set(np.unique(s.targets["segment_semantic"])) <= set(range(18))  # nearest neighbour keeps valid ids


def test_a_missing_task_file_leaves_that_sample_unlabelled(fixture):
    root, config, expected = fixture
    (root / "normal" / "coffeen" / "point_4_view_1_domain_normal.png").unlink()
    (root / "depth_zbuffer" / "coffeen" / "point_3_view_0_domain_depth_zbuffer.png").unlink()
    s = open_split(config, "val", ["normal", "depth_zbuffer", "edge_texture"])
    assert not s.masks["normal"][1].any() and not s.masks["depth_zbuffer"][0].any()
    assert s.masks["normal"][0].all()  # no depth file: normals are defined everywhere for that sample
    np.testing.assert_array_equal(s.masks["depth_zbuffer"][1, 0], expected[("coffeen", "point_4_view_1")]["depth_mask"])
    assert s.masks["edge_texture"].all()
    assert s.meta["labelled_samples"] == {"normal": 1, "depth_zbuffer": 1, "edge_texture": 2, "edge_occlusion": 2,
                                          "keypoints2d": 2, "reshading": 2, "principal_curvature": 2,
                                          "segment_semantic": 2}


def test_an_unreadable_task_file_is_named(fixture):
    root, config, _ = fixture
    (root / "normal" / "coffeen" / "point_4_view_1_domain_normal.png").write_bytes(b"not a png")
    with pytest.raises(TaskgroupError, match="cannot read .*point_4_view_1_domain_normal.png"):
        open_split(config, "val", ["normal"])
    assert not list(config.cache_root().rglob("val")) and not list(config.cache_root().rglob(".tmp-*"))


def test_unknown_building_lists_available(fixture, tmp_path):
    root, config, _ = fixture
    cfg = DataConfig(**{**config.to_dict(), "test_buildings": ["nowhere"]})
    with pytest.raises(TaskgroupError, match="building 'nowhere' not found.*available: allensville, beechwood"):
        open_split(cfg, "test", ["rgb"])


def test_bad_labels_are_refused(fixture):
    root, config, _ = fixture
    bad = np.full((SRC, SRC), 20, np.uint8)
    write_png(root / "segment_semantic" / "darden" / "point_3_view_0_domain_segment_semantic.png", bad)
    with pytest.raises(TaskgroupError, match="class id 20 out of range"):
        open_split(config, "test", ["segment_semantic"])


def test_eight_bit_depth_is_refused(fixture):
    root, config, _ = fixture
    write_png(root / "depth_zbuffer" / "darden" / "point_3_view_0_domain_depth_zbuffer.png", np.zeros((SRC, SRC), np.uint8))
    with pytest.raises(TaskgroupError, match="16-bit"):
        open_split(config, "test", ["depth_zbuffer"])


def test_task_without_folder_is_unavailable(fixture, tmp_path):
    root, config, _ = fixture
    import shutil

    shutil.rmtree(root / "keypoints2d")
    cfg = DataConfig(**{**config.to_dict(), "cache_dir": str(tmp_path / "c2")})
    with pytest.raises(TaskgroupError, match="keypoints2d not available.*available: .*depth_zbuffer"):
        open_split(cfg, "val", ["keypoints2d"])


def test_missing_root_is_clear(tmp_path):
    cfg = DataConfig(source="taskonomy", taskonomy_root=str(tmp_path / "none"), train_buildings=["a"],
                     val_buildings=["b"], test_buildings=["c"], cache_dir=str(tmp_path / "cache"))
    with pytest.raises(TaskgroupError, match="has no 'rgb' folder"):
        open_split(cfg, "train", ["rgb"])
