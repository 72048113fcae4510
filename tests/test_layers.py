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




def test_no_module_imports_itself_through_others():
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (the test extra)")
    graph = grimp.build_graph("taskgroup", "taskgroup_exporters", "taskgroup_runtime",
                              exclude_type_checking_imports=True)
    edges = {m: graph.find_modules_directly_imported_by(m) & graph.modules for m in graph.modules}
    circles = []
    for module in sorted(graph.modules):  # modules on a circle: those reachable from themselves
        seen, todo = set(), list(edges[module])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(edges[m])
        if module in seen:
            circles.append(module)
    assert not circles, f"modules on an import circle: {sorted(circles)}"
