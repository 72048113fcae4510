"""The folder source: layout, encodings, resizing, ignore values, missing labels, clear errors."""

import cv2
import numpy as np
import pytest

from taskgroup import tasks as registry
from taskgroup.data import DataConfig, open_split
from taskgroup.errors import TaskgroupError
from taskgroup.task_tables import parse_task_tables

SRC, RES = 32, 16  # images of constant 2x2 blocks: area resizing to 16 px is exact


@pytest.fixture(autouse=True)
def declared(monkeypatch):
    monkeypatch.setattr(registry, "_DECLARED", {})
    registry.declare_tasks(parse_task_tables({
        "wetness": {"loss": "l1", "channels": 2, "ignore_value": 65535},
        "terrain": {"loss": "cross_entropy", "classes": 4, "ignore_index": 255},
        "hazards": {"loss": "bce", "channels": 1},
    }, "test"), "test")


def blocks(small):
    return np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)


def png(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img[:, :, ::-1] if img.ndim == 3 and img.shape[2] == 3 else img)


@pytest.fixture
def dataset(tmp_path):
    """Three train images; labels with ignore values, a missing file, .npy and 16-bit PNGs."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    expected = {}
    for split in ("train", "val", "test"):
        for k in range(3):
            sid = f"s{k}"
            rgb = rng.integers(0, 256, (RES, RES, 3), dtype=np.uint8)
            png(root / split / "rgb" / f"{sid}.png", blocks(rgb))
            wet = rng.integers(0, 60000, (RES, RES, 2)).astype(np.uint16)
            wet[0, 0] = 65535  # both channels: no label at this pixel
            wet[1, 1, 0] = 65535  # one channel only: still labelled
            if k != 1:  # s1 has no wetness label; two channels in an RGB PNG (the third is dropped)
                png(root / split / "wetness" / f"{sid}.png", np.dstack([blocks(wet), np.zeros((SRC, SRC), np.uint16)]))
            (root / split / "wetness").mkdir(parents=True, exist_ok=True)
            ids = rng.integers(0, 4, (RES, RES)).astype(np.uint8)
            ids[2, :] = 255
            (root / split / "terrain").mkdir(parents=True, exist_ok=True)
            np.save(root / split / "terrain" / f"{sid}.npy", blocks(ids).astype(np.int16))
            haz = (rng.random((RES, RES)) > 0.5).astype(np.uint8) * 255
            png(root / split / "hazards" / f"{sid}.png", blocks(haz))
            edge = rng.integers(0, 65535, (RES, RES)).astype(np.uint16)
            png(root / split / "edge_texture" / f"{sid}.png", blocks(edge))
            expected[(split, sid)] = dict(rgb=rgb, wet=wet, ids=ids, haz=haz, edge=edge)
    config = DataConfig(source="folder", folder_root=str(root), resolution=RES, cache_dir=str(tmp_path / "cache"))
    return root, config, expected


TASKS = ["wetness", "terrain", "hazards", "edge_texture", "rgb"]


def test_values_masks_and_missing_labels(dataset):
    root, config, expected = dataset
    s = open_split(config, "train", TASKS)
    assert (s.directory / "samples.txt").read_text().split() == ["s0", "s1", "s2"]
    for i in range(3):
        e = expected[("train", f"s{i}")]
        np.testing.assert_allclose(s.images[i], np.moveaxis(e["rgb"], -1, 0) / 255.0, atol=1e-6)
        np.testing.assert_array_equal(s.targets["edge_texture"][i, 0], e["edge"])  # 16-bit values as stored
        if i == 1:
            assert not s.masks["wetness"][i].any()  # no file: no label
        else:
            mask = np.ones((RES, RES), bool)
            mask[0, 0] = False
            np.testing.assert_array_equal(s.masks["wetness"][i, 0], mask)
            np.testing.assert_array_equal(s.targets["wetness"][i][:, mask], np.moveaxis(e["wet"], -1, 0)[:, mask])
        np.testing.assert_array_equal(s.masks["terrain"][i, 0], e["ids"] != 255)
        np.testing.assert_array_equal(s.targets["terrain"][i], np.where(e["ids"] != 255, e["ids"], 0))
        np.testing.assert_allclose(s.targets["hazards"][i, 0], e["haz"] / 255.0)  # bce: PNG / max
    assert s.targets["terrain"].dtype == np.int64 and s.targets["wetness"].dtype == np.float32
    assert s.meta["labelled_samples"] == {"wetness": 2, "terrain": 3, "hazards": 3, "edge_texture": 3}


def test_any_image_size_is_resized_and_labels_must_match_their_image(dataset, tmp_path):
    root, config, _ = dataset
    img = np.full((20, 36, 3), 100, np.uint8)
    png(root / "val" / "rgb" / "wide.png", img)  # not square, not a multiple of 16
    png(root / "val" / "edge_texture" / "wide.png", np.full((20, 36), 700, np.uint16))
    s = open_split(config, "val", ["edge_texture"])
    assert s.images.shape == (4, 3, RES, RES)
    np.testing.assert_allclose(s.targets["edge_texture"][3], 700.0)
    png(root / "test" / "rgb" / "odd.png", img)
    png(root / "test" / "edge_texture" / "odd.png", np.zeros((10, 18), np.uint16))
    with pytest.raises(TaskgroupError, match="odd.png: label is 18x10 pixels but its image is 36x20"):
        open_split(config, "test", ["edge_texture"])


@pytest.mark.parametrize("mutate, message", [
    (lambda r: (r / "val" / "edge_texture" / "stray.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1]),
     "stray.png has no image"),
    (lambda r: np.save(r / "val" / "terrain" / "s0.npy", np.full((SRC, SRC), 7, np.int16)), r"class id 7 out of range 0..3"),
    (lambda r: np.save(r / "val" / "terrain" / "s0.npy", np.zeros((SRC, SRC), np.float32)), "class ids must be integers"),
    (lambda r: (r / "val" / "rgb" / "s0.jpg").write_bytes((r / "val" / "rgb" / "s0.png").read_bytes()),
     "two files for id 's0'"),
    (lambda r: (r / "val" / "hazards" / "s2.png").write_bytes(b"garbage"), "cannot read .*s2.png"),
])
def test_bad_files_are_named(dataset, mutate, message):
    root, config, _ = dataset
    mutate(root)
    with pytest.raises(TaskgroupError, match=message):
        open_split(config, "val", TASKS)
    assert not list(config.cache_root().rglob("val"))  # nothing half-built is left


def test_a_missing_task_folder_or_root_is_clear(dataset, tmp_path):
    root, config, _ = dataset
    with pytest.raises(TaskgroupError, match="no folder .*val/keypoints2d for task 'keypoints2d'"):
        open_split(config, "val", ["keypoints2d"])
    cfg = DataConfig(source="folder", folder_root=str(tmp_path / "none"), resolution=RES, cache_dir=config.cache_dir)
    with pytest.raises(TaskgroupError, match="no folder .*none/train/rgb"):
        open_split(cfg, "train", ["rgb"])
    with pytest.raises(TaskgroupError, match="'folder_root': required"):
        DataConfig(source="folder")


def test_the_ignore_value_is_part_of_the_cache_key(dataset):
    root, config, _ = dataset
    plain = open_split(config, "train", ["edge_texture"])
    assert plain.masks["edge_texture"].all()
    some = DataConfig(**{**config.to_dict(), "ignore": {"edge_texture": float(plain.targets["edge_texture"][0, 0, 0, 0])}})
    masked = open_split(some, "train", ["edge_texture"])
    assert masked.directory != plain.directory and not masked.masks["edge_texture"][0, 0, 0, 0]
    with pytest.raises(TaskgroupError, match="'ignore': only the folder source"):
        DataConfig(ignore={"edge_texture": 0})


def test_a_non_finite_ignore_value_is_refused_naming_the_field(tmp_path):
    """TOML allows `nan` and `inf`: such an ignore value could never be stored with the run (strict JSON)."""
    from taskgroup.data import DataConfig
    from taskgroup.errors import TaskgroupError

    for value in (float("nan"), float("inf")):
        with pytest.raises(TaskgroupError, match="field 'ignore': expected a table task = finite number"):
            DataConfig(source="folder", folder_root=str(tmp_path), ignore={"wetness": value})
