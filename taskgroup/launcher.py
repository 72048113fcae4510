"""The `taskgroup` console script: the CLI, or a clear message on a runtime-only install.

The base distribution is the robot runtime (numpy, and ONNX Runtime through an extra); the CLI needs the toolkit's
libraries, which a robot never installs. Without them, say which extra to install instead of
failing with a traceback.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

# Libraries of the `toolkit` extra that the CLI imports at start-up.
TOOLKIT_MODULES = ("typer", "rich", "click", "scipy", "matplotlib", "onnx")


def main() -> None:
    try:
        from taskgroup.cli import main as cli_main
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in TOOLKIT_MODULES:
            raise
        gpu = _installed("onnxruntime-gpu")  # the build this install has: the toolkit must not replace it
        toolkit, train = ("toolkit-gpu", "train-gpu") if gpu else ("toolkit", "train")
        print(f"error: the taskgroup command needs the toolkit ({error.name} is not installed); this is a "
              f"runtime-only install: pip install 'taskgrouping[{toolkit}]' (or '[{train}]' to train networks)",
              file=sys.stderr)
        sys.exit(2)
    cli_main()


def _installed(dist: str) -> bool:
    try:
        version(dist)
    except PackageNotFoundError:
        return False
    return True
