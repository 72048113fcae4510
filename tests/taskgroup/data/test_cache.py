"""The render cache: stale builds are cleaned up, and scripts without a main guard still render."""

import os
from pathlib import Path

import numpy as np


def test_a_build_killed_outright_is_cleaned_up_by_the_next_one(tmp_path):
    import subprocess
    import sys

    from taskgroup.data import cache

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".tmp-train-{int(dead.stdout)}-abc123"  # what a SIGKILLed builder leaves
    leftover.mkdir()
    (leftover / "images.npy").write_bytes(b"partial")
    mine = tmp_path / f".tmp-val-{os.getpid()}-def456"  # a build in progress in a live process
    mine.mkdir()

    def build(tmp):
        np.save(tmp / "images.npy", np.zeros((2, 3, 4, 4), np.float32))
        return {"tasks": {}}

    cache.build_atomically(tmp_path / "train", build)
    assert not leftover.exists() and mine.exists()
    assert (tmp_path / "train" / cache.MANIFEST).is_file()


def test_an_unguarded_script_renders_serially_instead_of_crashing(tmp_path):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    script = tmp_path / "snippet.py"  # the docs/data.md example saved as a script, without a main guard
    script.write_text("from taskgroup.data import DataConfig, open_split\n"
                      "cfg = DataConfig(resolution=16, n_train=40, n_val=8, n_test=8, views_per_layout=1)\n"
                      "print(len(open_split(cfg, 'train', ['depth_zbuffer'])))\n")
    env = dict(os.environ, PYTHONPATH=str(repo), TASKGROUP_CACHE=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "40", out.stderr
    assert "Traceback" not in out.stderr
