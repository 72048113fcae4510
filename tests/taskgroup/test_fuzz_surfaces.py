"""Fuzzing the surfaces added since the first fuzz suite: task declarations, config files with folder
data, folder datasets on disk, executor, seed, strategy and top-k arguments.

As in the other fuzz files, each property allows two outcomes: accepted and consistent (the value
reads back, the split has the documented arrays, the command writes its file), or refused with the
documented error (TaskgroupError, exit code 2 and no output). Any other exception fails.
"""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
from hypothesis import event, given, strategies as st

from fuzzing import ODD_VALUES, fuzz, mutated
from generated_data import PHOTO_TASKS_TOML, photo_dataset
from taskgroup import tasks as registry
from taskgroup.errors import TaskgroupError

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib


@pytest.fixture(autouse=True)
def own_registry():
    """Declarations made by an example never leak into the next one (or into other tests)."""
    saved = dict(registry._DECLARED)
    yield
    registry._DECLARED.clear()
    registry._DECLARED.update(saved)


TASKS_DOC = {**tomllib.loads(PHOTO_TASKS_TOML)["tasks"],
             "terrain": {"loss": "cross_entropy", "classes": ["grass", "gravel", "water"], "ignore_index": 255},
             "hazards": {"loss": "bce", "labels": ["puddle", "curb"]},
             "height": {"loss": "l2", "channels": 2, "transform": {"mean": [1.0, 2.0], "std": [3.0, 4.0]}}}


# -- task declarations ---------------------------------------------------------------------------

@fuzz(200)
@given(doc=mutated(TASKS_DOC, max_mutations=4))
def test_fuzzed_task_declarations_parse_to_specs_that_read_back_or_are_refused(doc):
    from taskgroup.task_tables import parse_task_tables, spec_to_json

    registry._DECLARED.clear()
    try:
        specs = parse_task_tables(doc, "f.toml")
    except TaskgroupError as exc:
        event("refused")
        assert str(exc).startswith("f.toml"), exc  # names the file (and the table)
        return
    event("accepted")
    for spec in specs:
        assert spec.channels >= 1 and spec.loss in registry.LOSSES
        if spec.class_names:
            assert len(set(spec.class_names)) == len(spec.class_names) == spec.channels
        assert parse_task_tables({spec.name: spec_to_json(spec)}, "x") == (spec,)  # the recorded form reads back


# -- config files: [train], [data] (folder), [arch] and [tasks] together ---------------------------

@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-photos")
    photo_dataset(root / "data", sizes=(("train", 8), ("val", 4), ("test", 4)), size=20)
    return root


def _config_doc(photos) -> dict:
    return {"arch": {"resolution": 16},
            "data": {"source": "folder", "folder_root": str(photos / "data"), "cache_dir": str(photos / "cache"),
                     "ignore": {"sobel_edges": 0}},
            "train": {"epochs": 1, "strategy": "alternating:shuffled", "weighting": "static",
                      "task_weights": {"brightness": 2.0}, "per_task_stopping": True},
            "tasks": copy.deepcopy(TASKS_DOC)}


@fuzz(150)
@given(data=st.data())
def test_fuzzed_config_files_make_a_run_config_or_are_refused(photos, data):
    from taskgroup.train import make_run_config

    doc = data.draw(mutated(_config_doc(photos), max_mutations=3))
    registry._DECLARED.clear()
    try:
        config = make_run_config("tiny", overrides=doc)
    except TaskgroupError:
        event("refused")
        return
    event("accepted")
    config.train.validate()  # what was accepted is a valid recipe
    assert config.data.resolution == config.arch.resolution
    assert json.loads(json.dumps(config.to_dict(), allow_nan=False))  # and a storable one


@pytest.fixture(scope="module")
def folder_copy(photos, tmp_path_factory):
    """A private copy of the photo dataset that the examples damage and restore."""
    dst = tmp_path_factory.mktemp("fuzz-folder") / "data"
    shutil.copytree(photos / "data", dst)
    return dst


@st.composite
def folder_damage(draw, root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    path = draw(st.sampled_from(files))
    op = draw(st.sampled_from(["delete", "garbage", "truncate", "resize", "dtype", "pickle", "stray", "empty-rgb"]))
    return path, op


def _apply(path, op, root):
    import cv2

    if op == "delete":
        path.unlink()
    elif op == "garbage":
        path.write_bytes(b"\x89PNG not really" * 3)
    elif op == "truncate":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    elif op == "resize":  # a label or image of another size
        if path.suffix == ".npy":
            np.save(path, np.zeros((7, 5), np.float32))
        else:
            cv2.imwrite(str(path), np.zeros((7, 5, 3), np.uint8))
    elif op == "dtype":
        np.save(path.with_suffix(".npy"), np.array([["a", "b"]]))
        if path.suffix != ".npy":
            path.unlink()
    elif op == "pickle":  # a label file that would run code if unpickled
        np.save(path.with_suffix(".npy"), np.array([{"x": 1}], dtype=object), allow_pickle=True)
        if path.suffix != ".npy":
            path.unlink()
    elif op == "stray":  # a label without its image
        (path.parent / "nobody.npy").write_bytes((root / "train" / "brightness").glob("*.npy").__next__().read_bytes())
    else:
        for p in (root / "val" / "rgb").iterdir():
            p.unlink()


@fuzz(25)
@given(data=st.data())
def test_fuzzed_folder_datasets_load_or_are_refused_naming_the_file(photos, folder_copy, tmp_path_factory, data):
    from taskgroup.data import DataConfig, open_split

    path, op = data.draw(folder_damage(folder_copy))
    work = tmp_path_factory.mktemp("example") / "data"
    shutil.copytree(folder_copy, work)
    _apply(work / path.relative_to(folder_copy), op, work)
    registry.declare_tasks(__import__("taskgroup.task_tables", fromlist=["x"]).parse_task_tables(TASKS_DOC, "t"), "t")
    config = DataConfig(source="folder", folder_root=str(work), resolution=16, cache_dir=str(work.parent / "cache"))
    try:
        for split in ("train", "val", "test"):
            arrays = open_split(config, split, ["brightness", "sobel_edges"])
            assert arrays.images.shape[1:] == (3, 16, 16) and len(arrays) >= 1
            assert 0 <= float(np.min(arrays.images)) and float(np.max(arrays.images)) <= 1
    except TaskgroupError as exc:
        event(f"refused: {op}")
        assert "folder data" in str(exc) or str(work) in str(exc), exc
        return
    event(f"accepted: {op}")
    # Never accepted: an unreadable or non-numeric file, a pickled array, an image missing for its labels, a
    # label without its image, a split without images. (A stray file in rgb/ that is no image is ignored.)
    assert op not in ("garbage", "pickle", "dtype", "empty-rgb"), (op, path)
    assert not (op == "stray" and path.parent.name != "rgb"), (op, path)
    assert not (op == "delete" and path.parent.name == "rgb"), (op, path)


# -- executor, seed, strategy arguments ----------------------------------------------------------

EXECUTOR_TEXT = st.one_of(st.sampled_from(["local", "processes:2", "processes:1", "ray", "processes:0", "processes:",
                                           "processes:-1", "processes:2x", "ray:2", "local:1", " ray ", "", "RAY"]),
                          st.text(max_size=12))
DEVICES_TEXT = st.one_of(st.none(), st.sampled_from(["cpu", "cuda", "cuda:0,cuda:1", "cpu:0", "cuda:x", ",", "gpu"]),
                         st.text(max_size=10))


@fuzz(200)
@given(text=EXECUTOR_TEXT, devices=DEVICES_TEXT, address=st.one_of(st.none(), st.text(max_size=8)),
       shared=st.booleans(), attempts=st.one_of(st.integers(-2, 5), st.booleans()))
def test_fuzzed_executor_arguments_are_a_spec_or_refused(text, devices, address, shared, attempts):
    from taskgroup.train.executors import parse_executor

    try:
        spec = parse_executor(text, devices=devices, ray_address=address, shared_storage=shared, max_attempts=attempts)
    except TaskgroupError:
        event("refused")
        return
    event("accepted")
    assert spec.kind in ("local", "processes", "ray") and spec.workers >= 1 and spec.max_attempts >= 1
    assert all(d == "cpu" or d.startswith("cuda") for d in spec.devices)
    assert not (spec.kind == "local" and (shared or address is not None))


@fuzz(200)
@given(text=st.one_of(st.text(alphabet="0123456789,- x", max_size=12), st.sampled_from(["0-4", "3-1", "1,1", "-1"])))
def test_fuzzed_seed_lists_are_distinct_non_negative_seeds_or_refused(text):
    from taskgroup.train.run import parse_seeds

    try:
        seeds = parse_seeds(text)
    except TaskgroupError:
        event("refused")
        return
    event("accepted")
    assert seeds and len(set(seeds)) == len(seeds) and all(isinstance(s, int) and s >= 0 for s in seeds)


@fuzz(200)
@given(text=st.one_of(st.sampled_from(["sum", "alternating", "alternating:shuffled", "alternating-independent",
                                       "random-groups:2", "random-groups:2:epoch", "random-groups:0",
                                       "random-groups:x", "sum:1", "alternating:epoch"]),
                      st.text(alphabet="sumaltering-:0123456789dpochf", max_size=24), ODD_VALUES))
def test_fuzzed_strategies_parse_or_are_refused(text):
    from taskgroup.train.strategies import parse_strategy

    try:
        spec = parse_strategy(text, "[train] strategy")
    except TaskgroupError as exc:
        event("refused")
        assert "[train] strategy" in str(exc)
        return
    event("accepted")
    assert spec is not None


# -- select: top-k and budgets -------------------------------------------------------------------

@pytest.fixture(scope="module")
def table(tmp_path_factory):
    from taskgroup.losstable import LossTable, NetworkResult

    tasks = ("depth_zbuffer", "normal", "edge_texture")
    nets = [NetworkResult((t,), w, "final", {"val": {t: 1.0 / w}, "test": {t: 1.0 / w}})
            for t in tasks for w in (1.0, 0.5)]
    nets.append(NetworkResult(tasks, 1.0, "final", {"val": {t: 1.2 for t in tasks}, "test": {t: 1.2 for t in tasks}}))
    path = tmp_path_factory.mktemp("fuzz-table") / "losses.json"
    LossTable(tasks, nets).save(path)
    return path


@fuzz(80)
@given(k=st.one_of(st.integers(-3, 60), st.sampled_from(["x", "1.5", "", "1e3"])),
       budget=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["1e308", "-0", "abc"])))
def test_fuzzed_top_k_and_budgets_select_or_exit_2_without_output(table, tmp_path_factory, k, budget):
    from taskgroup.cli import main

    out = tmp_path_factory.mktemp("sel") / "best.json"
    try:
        main(["select", "--losses", str(table), "--budget", str(budget), "--top-k", str(k), "--out", str(out)])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    assert code in (0, 2), code
    if code == 2:
        event("refused")
        assert not out.exists()
        return
    event("selected")
    doc = json.loads(out.read_text())  # strict JSON: finite numbers only
    assert 1 <= int(k) <= 50
    assert len(doc.get("top_k", [None])) <= int(k) or int(k) == 1
