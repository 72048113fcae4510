"""The layers of pyproject.toml's [tool.importlinter] hold: no module imports from a layer above
its own, and the robot's runtime imports nothing of the toolkit or its heavy libraries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept(capsys):
    importlinter = pytest.importorskip("importlinter.cli", reason="import-linter is in the test extra")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = importlinter.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert code == 0, out[out.find("Broken contracts"):] or out
