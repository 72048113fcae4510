"""A new user's path with their own data: photographs in folders, two declared tasks (a brightness
regression in .npy, a Sobel edge magnitude in 16-bit PNG with a quarter of its training labels
missing), `[arch] resolution = 32` in the config. Train, read the table, select, export with no
flags, run the bundle on a 640x480 camera frame; and the command a refusal suggests runs as printed."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from generated_data import PHOTO_TASKS_TOML, photo_dataset

REPO = Path(__file__).resolve().parents[3]
PROFILE = REPO / "profiles" / "cpu-intel-r-xeon-r-processor-default.json"


def cli(*args, cwd=None, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="250")
    return subprocess.run([sys.executable, "-m", "taskgroup", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey")
    photo_dataset(root / "photos")
    config = root / "photos.toml"
    config.write_text(f'[arch]\nresolution = 32\n[data]\nsource = "folder"\nfolder_root = "{root / "photos"}"\n'
                      f'cache_dir = "{root / "cache"}"\n[train]\nepochs = 3\n{PHOTO_TASKS_TOML}')
    out = cli("train", "--config", config, "--preset", "tiny", "--tasks", "brightness,sobel_edges",
              "--candidates", "pairs", "--out", root / "run")
    assert out.returncode == 0, out.stderr[-3000:]
    return root


def test_results_show_the_training_split_s_missing_labels_the_recipe_and_squared_units(run):
    out = cli("results", run / "run")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "labelled train samples" in text and "36 of 48" in text  # a quarter of 48 sobel_edges labels missing
    assert "strategy sum, weighting none" in text
    assert "l2: mean squared error in the data's units squared" in text


def test_export_takes_architecture_resolution_and_data_from_the_run(run, tmp_path):
    best = tmp_path / "best.json"
    out = cli("select", "--losses", run / "run", "--budget", "2", "--out", best)
    assert out.returncode == 0, out.stderr
    out = cli("export", "--grouping", best, "--out", tmp_path / "deploy")  # no --preset, --config or frames flag
    assert out.returncode == 0, out.stderr[-3000:]
    manifest = json.loads((tmp_path / "deploy" / "manifest.json").read_text())
    assert manifest["input"]["shape"] == ["N", 32, 32, 3]  # [arch] resolution = 32, not the tiny preset's 16
    source = manifest["verification"]["source"]
    assert source.startswith("val split (folder") and "32px" in source  # the run's own validation photographs
    assert set(manifest["tasks"]) == {"brightness", "sobel_edges"}
    # --synthetic-frames works without --preset too; a --preset that disagrees with the run is refused.
    out = cli("export", "--grouping", best, "--out", tmp_path / "synthetic", "--synthetic-frames", "--frames", "4")
    assert out.returncode == 0, out.stderr[-3000:]
    out = cli("export", "--grouping", best, "--out", tmp_path / "other", "--preset", "tiny")
    assert out.returncode == 2 and "leave --preset out" in out.stderr and not (tmp_path / "other").exists()
    # The robot's camera frame: 640x480, BGR from OpenCV.
    code = ("import sys, numpy as np\nfrom taskgroup_runtime import load_bundle\n"
            "frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)\n"
            "with load_bundle(sys.argv[1]) as b:\n    out = b.run(frame, color_order='BGR')\n"
            "print({t: list(v.shape) for t, v in sorted(out.items())})\n"
            "assert 'torch' not in sys.modules\n")
    ran = subprocess.run([sys.executable, "-c", code, str(tmp_path / "deploy")], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "{'brightness': [1, 1, 32, 32], 'sobel_edges': [1, 1, 32, 32]}"


@pytest.mark.slow
def test_the_profile_command_a_refusal_suggests_runs_as_printed_and_then_selection_works(run, tmp_path):
    out = cli("select", "--losses", run / "run", "--profile", PROFILE, "--budget-snt", "2", "--out",
              tmp_path / "best.json")
    assert out.returncode == 2
    text = " ".join(out.stderr.split())
    suggested = text.split("`")[1]
    assert suggested.startswith("taskgroup profile --run ")
    args = shlex.split(suggested)[1:]
    ran = cli(*args, cwd=tmp_path)  # exactly as printed, in the user's folder
    assert ran.returncode == 0, ran.stderr[-3000:]
    profile = tmp_path / "profiles" / "NAME.json"
    doc = json.loads(profile.read_text())
    assert doc["input_shape"][2:] == [32, 32] and {"brightness", "sobel_edges"} <= set(doc["tasks"])
    out = cli("select", "--losses", run / "run", "--profile", profile, "--budget-snt", "2", "--out",
              tmp_path / "best.json")
    assert out.returncode == 0, out.stderr
