"""open_split: the contract's arrays, determinism, disjoint splits, a verified cache, clear errors."""

import json

import numpy as np
import pytest
import torch

from taskgroup.data import DataConfig, open_split
from taskgroup.data import scenes
from taskgroup.data.split import split_directory
from taskgroup.errors import TaskgroupError
from taskgroup.tasks import SEGMENT_CLASSES, TASKS

SMALL = dict(resolution=32, n_train=12, n_val=6, n_test=6, views_per_layout=3, seed=5)
ALL = tuple(TASKS)


@pytest.fixture
def config(tmp_path):
    return DataConfig(**SMALL, cache_dir=str(tmp_path / "cache"))


def test_contract_shapes_dtypes_and_batch(config):
    s = open_split(config, "train", ALL)
    n = 12
    assert len(s) == n and s.images.shape == (n, 3, 32, 32) and s.images.dtype == np.float32
    for task in ALL:
        if task == "segment_semantic":
            assert s.targets[task].shape == (n, 32, 32) and s.targets[task].dtype == np.int64
        else:
            assert s.targets[task].shape == (n, TASKS[task].channels, 32, 32) and s.targets[task].dtype == np.float32
        assert s.masks[task].shape == (n, 1, 32, 32) and s.masks[task].dtype == np.bool_
    assert isinstance(s.images, np.memmap)
    np.testing.assert_array_equal(s.targets["rgb"], s.images)  # autoencoding target is the image
    images, targets, masks = s.batch([7, 2, 7, 0])
    assert images.dtype == torch.float32 and images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(images.numpy(), s.images[[7, 2, 7, 0]])
    assert targets["segment_semantic"].dtype == torch.int64 and targets["segment_semantic"].shape == (4, 32, 32)
    np.testing.assert_array_equal(targets["normal"].numpy(), s.targets["normal"][[7, 2, 7, 0]])
    assert masks["depth_zbuffer"].dtype == torch.bool and masks["depth_zbuffer"].shape == (4, 1, 32, 32)
    with pytest.raises(IndexError):
        s.batch([12])
    assert s.segment_classes == SEGMENT_CLASSES
    # Trivial-predictor helpers.
    freq = s.class_frequencies()
    assert freq.shape == (len(SEGMENT_CLASSES),) and abs(freq.sum() - 1) < 1e-9
    assert np.allclose(s.target_mean("depth_zbuffer"), s.targets["depth_zbuffer"].mean(axis=(0, 2, 3)), atol=1e-6)


def test_only_requested_tasks_are_opened(config):
    s = open_split(config, "val", "depth_zbuffer,normal")
    assert s.tasks == ("depth_zbuffer", "normal") and set(s.targets) == {"depth_zbuffer", "normal"}


def test_same_config_gives_identical_arrays(tmp_path):
    a = open_split(DataConfig(**SMALL, cache_dir=str(tmp_path / "a")), "train", ALL)
    b = open_split(DataConfig(**SMALL, cache_dir=str(tmp_path / "b")), "train", ALL)
    assert a.directory != b.directory
    np.testing.assert_array_equal(a.images, b.images)
    for task in ALL:
        np.testing.assert_array_equal(a.targets[task], b.targets[task])
    c = open_split(DataConfig(**{**SMALL, "seed": 6}, cache_dir=str(tmp_path / "a")), "train", ALL)
    assert not np.array_equal(a.images, c.images)


def test_splits_come_from_disjoint_layouts(config):
    rooms = {}
    for split in ("train", "val", "test"):
        s = open_split(config, split, ["rgb"])
        layouts = s.meta["layouts"]
        assert sum(l["views"] for l in layouts) == len(s)
        rooms[split] = {tuple(l["room"]) for l in layouts}
    assert not rooms["train"] & rooms["val"] and not rooms["train"] & rooms["test"] and not rooms["val"] & rooms["test"]
    # Views of one layout share the room; the layout is regenerated identically from its seed.
    layout = scenes.random_layout(scenes.layout_seed(SMALL["seed"], 1, 0))
    assert tuple(round(float(v), 6) for v in layout.room) in rooms["val"]


def test_reopening_uses_the_cache(config, monkeypatch):
    first = open_split(config, "test", ["depth_zbuffer"])
    monkeypatch.setattr(scenes, "render_split_layout", lambda *a, **k: pytest.fail("re-rendered a cached split"))
    again = open_split(config, "test", ["depth_zbuffer"])
    np.testing.assert_array_equal(first.targets["depth_zbuffer"], again.targets["depth_zbuffer"])


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKGROUP_CACHE", str(tmp_path / "env"))
    s = open_split(DataConfig(**SMALL), "val", ["rgb"])
    assert str(s.directory).startswith(str(tmp_path / "env"))


def test_unknown_task_and_split(config):
    with pytest.raises(TaskgroupError, match="unknown task 'depth'.*known tasks"):
        open_split(config, "train", ["depth"])
    with pytest.raises(TaskgroupError, match="unknown split 'dev'"):
        open_split(config, "dev", ["rgb"])


def test_corrupted_cache_is_refused(config):
    s = open_split(config, "train", ["normal"])
    path = s.directory / "normal.npy"
    del s
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # one damaged byte near the start
    path.write_bytes(bytes(data))
    with pytest.raises(TaskgroupError, match=r"normal\.npy does not match its manifest.*delete"):
        open_split(config, "train", ["normal"])


def test_truncated_cache_file_is_refused(config):
    s = open_split(config, "train", ["depth_zbuffer"])
    path = s.directory / "depth_zbuffer.npy"
    del s
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(TaskgroupError, match="depth_zbuffer.npy"):
        open_split(config, "train", ["depth_zbuffer"])


def test_empty_cache_directory_is_refused(config):
    directory = split_directory(config, "train")
    directory.mkdir(parents=True)
    with pytest.raises(TaskgroupError, match="no manifest.json.*delete"):
        open_split(config, "train", ["rgb"])


def test_manifest_from_another_config_is_refused(config):
    s = open_split(config, "val", ["rgb"])
    manifest = s.directory / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["config"]["seed"] = 99
    manifest.write_text(json.dumps(doc))
    with pytest.raises(TaskgroupError, match="field 'config'"):
        open_split(config, "val", ["rgb"])


def test_interrupted_render_leaves_no_split(config, monkeypatch):
    calls = []
    real = scenes.render_split_layout

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(scenes, "render_split_layout", flaky)
    with pytest.raises(KeyboardInterrupt):
        open_split(config, "train", ["rgb"])
    parent = split_directory(config, "train").parent
    assert not split_directory(config, "train").exists()
    assert list(parent.iterdir()) == []  # the temporary directory is gone too
    monkeypatch.setattr(scenes, "render_split_layout", real)
    assert len(open_split(config, "train", ["rgb"])) == 12


@pytest.mark.parametrize("field,value,message", [
    ("resolution", 40, "multiple of 16"),
    ("resolution", "64", "expected an integer"),
    ("n_train", 2.5, "expected an integer"),
    ("n_val", 0, ">= 1"),
    ("seed", True, "expected an integer"),
    ("source", "nyu", "unknown source 'nyu'; valid sources: scenes, taskonomy"),
    ("train_buildings", ["a", 3], "building names"),
])
def test_bad_config_values(field, value, message):
    with pytest.raises(TaskgroupError, match=f"field '{field}'.*" if field != "source" else "field 'source'"):
        DataConfig(**{field: value})
    with pytest.raises(TaskgroupError, match=message):
        DataConfig(**{field: value})


def test_config_from_dict_and_taskonomy_requirements():
    assert DataConfig.from_dict({"resolution": 32, "n_train": 5}).n_train == 5
    with pytest.raises(TaskgroupError, match="unknown field.*resolutoin.*valid fields"):
        DataConfig.from_dict({"resolutoin": 32})
    with pytest.raises(TaskgroupError, match="taskonomy_root"):
        DataConfig(source="taskonomy")
    with pytest.raises(TaskgroupError, match="'b' is in both"):
        DataConfig(source="taskonomy", taskonomy_root="/x", train_buildings=["a", "b"], val_buildings=["b"],
                   test_buildings=["c"])
    with pytest.raises(TaskgroupError, match="expected a DataConfig"):
        open_split({"source": "scenes"}, "train", ["rgb"])


def test_cache_name_ignores_cache_dir_but_not_content():
    a, b = DataConfig(cache_dir="/x"), DataConfig(cache_dir="/y")
    assert a.cache_name(1) == b.cache_name(1)
    assert DataConfig(seed=1).cache_name(1) != a.cache_name(1)
    assert DataConfig(resolution=32).cache_name(1) != a.cache_name(1)


def test_parallel_rendering_matches_in_process_rendering(tmp_path):
    """Enough layouts to use worker processes; every view equals a direct in-process render."""
    config = DataConfig(resolution=16, n_train=2 * scenes.PARALLEL_MIN_LAYOUTS, n_val=1, n_test=1, views_per_layout=2,
                        seed=3, cache_dir=str(tmp_path))
    s = open_split(config, "train", ["depth_zbuffer", "segment_semantic"])
    for layout_index in (0, scenes.PARALLEL_MIN_LAYOUTS - 1):
        (images, targets, _), _ = scenes.render_split_layout(3, 0, layout_index, 2, 16)
        views = slice(2 * layout_index, 2 * layout_index + 2)
        np.testing.assert_array_equal(s.images[views], images)
        np.testing.assert_array_equal(s.targets["segment_semantic"][views], targets["segment_semantic"])
