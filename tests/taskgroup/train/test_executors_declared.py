"""A user's own tasks on every executor: a folder dataset of photographs with two declared tasks
trains under processes:2 and Ray exactly as in-process. Workers get the run's recipe, declared
tasks included, from the run's store, not from the registry of the process that starts them."""

import importlib.util
import sqlite3

import pytest

from generated_data import PHOTO_TASKS_TOML, photo_dataset
from taskgroup import tasks as registry
from taskgroup.cli import main

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install 'taskgrouping[ray]'; CI installs it)")
NETWORKS = "brightness+sobel_edges@1,sobel_edges@0.5"


@pytest.fixture(autouse=True)
def own_registry():
    saved = dict(registry._DECLARED)
    yield
    registry._DECLARED.clear()
    registry._DECLARED.update(saved)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    photo_dataset(root / "data")
    config = root / "photos.toml"
    config.write_text(f'[data]\nsource = "folder"\nfolder_root = "{root / "data"}"\ncache_dir = "{root / "cache"}"\n'
                      f"[train]\nepochs = 2\n{PHOTO_TASKS_TOML}")
    return config


def train(config, out, executor, *extra):
    registry._DECLARED.clear()  # each command starts as a fresh process would
    try:
        main(["train", "--config", str(config), "--preset", "tiny", "--tasks", "brightness,sobel_edges",
              "--networks", NETWORKS, "--out", str(out), "--executor", executor, *extra])
    except SystemExit as exc:
        assert not exc.code, f"train --executor {executor} exited {exc.code}"


def rows(run):
    con = sqlite3.connect(f"file:{run / 'runs.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute("SELECT name, seed, stage, best_epoch, steps, losses, checkpoint, checkpoint_sha256 "
                           "FROM results ORDER BY name, seed, stage").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def local(photos, tmp_path_factory):
    run = tmp_path_factory.mktemp("local") / "run"
    saved = dict(registry._DECLARED)
    train(photos, run, "local")
    registry._DECLARED.clear()
    registry._DECLARED.update(saved)
    got = rows(run)
    assert len(got) == 2 and all('"brightness"' in r[5] or '"sobel_edges"' in r[5] for r in got)
    return got


def test_processes_train_declared_tasks_bit_for_bit_as_local(photos, local, tmp_path):
    train(photos, tmp_path / "run", "processes:2")
    assert rows(tmp_path / "run") == local  # losses, steps, epochs and checkpoint bytes


@needs_ray
def test_ray_trains_declared_tasks_bit_for_bit_as_local(photos, local, tmp_path):
    train(photos, tmp_path / "run", "ray")
    assert rows(tmp_path / "run") == local


def test_a_resumed_run_s_workers_get_the_declarations_from_the_store_alone(photos, local, tmp_path):
    """`--resume` without --config: nothing declares the tasks but the run's store."""
    import shutil

    run = tmp_path / "run"
    train(photos, run, "local")
    con = sqlite3.connect(run / "runs.sqlite")
    with con:  # forget one network, as if the run had been killed before committing it
        con.execute("DELETE FROM results WHERE name = 'sobel_edges@0.5'")
        con.execute("UPDATE candidates SET status = 'running' WHERE name = 'sobel_edges@0.5'")
    con.close()
    (run / "checkpoints" / "sobel_edges_w0.5_final.pt").unlink(missing_ok=True)
    registry._DECLARED.clear()
    try:
        main(["train", "--out", str(run), "--resume", "--executor", "processes:2"])
    except SystemExit as exc:
        assert not exc.code
    assert rows(run) == local
    shutil.rmtree(run)
