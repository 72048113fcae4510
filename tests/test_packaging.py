"""Packaging: every package is installed under the project's own names, and a runtime-only
install gets a clear message from the `taskgroup` command instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_installed_under_the_projects_names():
    setuptools = PYPROJECT["tool"]["setuptools"]
    listed, mapped = set(setuptools["packages"]), setuptools["package-dir"]
    assert mapped == {"taskgroup_runtime": "runtime", "taskgroup_exporters": "exporters"}
    found = set()
    for folder in ("taskgroup", "runtime", "exporters"):
        for d in [ROOT / folder, *(p for p in (ROOT / folder).rglob("*") if p.is_dir())]:
            if "__pycache__" in d.parts or not any(d.glob("*.py")) and not any(d.glob("*.json")) \
                    and not any(d.glob("*.txt")):
                continue
            rel = d.relative_to(ROOT).parts
            top = {"runtime": "taskgroup_runtime", "exporters": "taskgroup_exporters"}.get(rel[0], rel[0])
            found.add(".".join((top, *rel[1:])))
    assert found == listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}; " \
                            f"remove: {sorted(listed - found)}"


def test_the_robot_install_needs_no_toolkit_library():
    assert PYPROJECT["project"]["dependencies"] == ["numpy>=1.26"]
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert extras["ort"] == ["onnxruntime>=1.18"] and extras["ort-gpu"] == ["onnxruntime-gpu>=1.18"]
    for extra in ("train", "train-gpu", "test"):
        assert "typer>=0.12" in _requirements(extras, extra)


def _requirements(extras: dict, extra: str) -> set[str]:
    """What an extra installs, its extras of this distribution expanded."""
    out = set()
    for req in extras[extra]:
        if req.startswith("taskgrouping["):
            for inner in req[len("taskgrouping["):-1].split(","):
                out |= _requirements(extras, inner)
        else:
            out.add(req)
    return out


def test_no_extra_installs_both_onnx_runtime_builds():
    # onnxruntime and onnxruntime-gpu install into the same folder: installing one over the other
    # silently breaks the first, so every extra asks for exactly one of them, or none.
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra in extras:
        names = {r.split(">")[0].split("=")[0] for r in _requirements(extras, extra)}
        assert not {"onnxruntime", "onnxruntime-gpu"} <= names, extra
    assert "onnxruntime-gpu>=1.18" in _requirements(extras, "train-gpu")
    assert "onnxruntime>=1.18" in _requirements(extras, "train")


@pytest.mark.parametrize("gpu_build", [False, True], ids=["onnxruntime", "onnxruntime-gpu"])
def test_the_command_without_the_toolkit_says_which_extra_to_install(gpu_build):
    # A runtime-only install: typer (the CLI's first toolkit import) cannot be found. With onnxruntime-gpu
    # installed the hint keeps it (the CPU build's extra would install onnxruntime into the same folder).
    code = ("import sys\n"
            "class NoTyper:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('typer', 'rich', 'click'):\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, NoTyper())\n"
            "import taskgroup.launcher as launcher\n"
            f"launcher._installed = lambda dist: {gpu_build} and dist == 'onnxruntime-gpu'\n"
            "launcher.main()\n")
    done = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    toolkit, train = ("toolkit-gpu", "train-gpu") if gpu_build else ("toolkit", "train")
    assert f"pip install 'taskgrouping[{toolkit}]' (or '[{train}]' to train networks)" in done.stderr
