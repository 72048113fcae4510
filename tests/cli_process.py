"""Running the `taskgroup` command in a child process, as a user would, for the end-to-end CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_taskgroup(*args, timeout: float = 900, cache: Path | None = None, cwd: Path | None = None,
                  columns: int = 200) -> subprocess.CompletedProcess:
    """`python -m taskgroup ARGS` from this checkout; `cache` sets TASKGROUP_CACHE (rendered scenes) so a
    test module renders its data once; a wide terminal keeps rich from wrapping the lines tests read."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS=str(columns))
    if cache is not None:
        env["TASKGROUP_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "taskgroup", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)
