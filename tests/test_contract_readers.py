"""Files are parsed only by their contracts.

Every file the toolkit writes has one dataclass that reads it (grouping, device profile, bundle
manifest, frontier, bench result, loss table, ...). A JSON document parsed anywhere else is read
without that validation and drifts from the writer unnoticed (the report once read a frontier field
that the pipeline had stopped writing). This scans the source for JSON parsing calls (json.load,
json.loads, taskgroup.fileio.read_json) outside the contract modules; each remaining exception is
listed with its reason and the exact number of calls, so a new one fails here.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

REPO = Path(__file__).parents[1]
PACKAGES = ("taskgroup", "exporters", "runtime")

# Modules that own a file contract: parsing that file is their job.
CONTRACT_MODULES = {
    "taskgroup/fileio.py": "the schema-checked JSON reader every contract uses (kind, schema_version)",
    "taskgroup/grouping.py": "Grouping (best.json)",
    "taskgroup/profile/costmodel.py": "DeviceProfile (profiles/*.json)",
    "runtime/manifest.py": "Manifest (manifest.json)",
    "taskgroup/search/frontier.py": "Frontier (frontier.json)",
    "taskgroup/bench.py": "BenchResult (bench.json)",
    "taskgroup/losstable.py": "LossTable (losses.json)",
    "taskgroup/train/rounds.py": "adaptive rounds (rounds.json)",
    "taskgroup/data/cache.py": "the rendered-scenes cache index",
    "taskgroup/train/store.py": "the results store: JSON columns of its own SQLite rows, each checked by row_sha256",
    "taskgroup/seednoise.py": "SeedNoise (a preset's measured seed-noise record)",
    "taskgroup/estimatorquality.py": "EstimatorQuality (a preset's measured estimator-quality record)",
    "taskgroup/pipeline/state.py": "PipelineState (pipeline.json)",
}

# (module, enclosing function) -> (calls, why it is not (yet) a contract read).
EXCEPTIONS = {
    ("taskgroup/pipeline/run.py", "Pipeline.report_data"): (
        1, "baselines.json: no typed contract yet (written by the pipeline's baselines stage)"),
    ("exporters/publish.py", "check_replaceable"): (
        1, "an earlier bundle's kind and file list only, deliberately without the manifest's checks: "
           "`export --overwrite` must replace a damaged or edited bundle too"),
}

PARSERS = {("json", "load"), ("json", "loads"), (None, "read_json"), ("fileio", "read_json")}


def _is_round_trip(call: ast.Call) -> bool:
    """json.loads(json.dumps(x)): a plain-JSON copy of a value in memory, not a file parsed."""
    return (bool(call.args) and isinstance(call.args[0], ast.Call) and isinstance(call.args[0].func, ast.Attribute)
            and call.args[0].func.attr == "dumps")


def _parser(call: ast.Call) -> str | None:
    f = call.func
    key = ((f.value.id if isinstance(f.value, ast.Name) else None), f.attr) if isinstance(f, ast.Attribute) else \
        (None, f.id) if isinstance(f, ast.Name) else None
    return f"{key[0]}.{key[1]}" if key in PARSERS and not _is_round_trip(call) else None


def parse_calls(path: Path) -> Counter:
    """(enclosing function, qualified by its class) -> number of JSON parsing calls in it."""
    found: Counter = Counter()

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope + [child.name] if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                else scope
            if isinstance(child, ast.Call) and _parser(child):
                found[".".join(scope) or "<module>"] += 1
            visit(child, inner)

    visit(ast.parse(path.read_text()), [])
    return found


def outside_contracts() -> dict[tuple[str, str], int]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel in CONTRACT_MODULES:
                continue
            for scope, n in parse_calls(path).items():
                out[(rel, scope)] = n
    return out


def test_files_are_parsed_only_by_their_contracts():
    found = outside_contracts()
    unexpected = {k: n for k, n in found.items() if k not in EXCEPTIONS or EXCEPTIONS[k][0] != n}
    assert not unexpected, (
        f"JSON parsed outside the contract modules: {unexpected}; read the file through its contract "
        f"(Grouping.load, load_profile, read_manifest, Frontier.load, BenchResult.load, ...) or, if it has none, "
        f"list it in EXCEPTIONS with the reason")
    stale = [k for k in EXCEPTIONS if k not in found]
    assert not stale, f"exceptions that no longer occur (remove them): {stale}"


def test_the_scan_sees_a_raw_read(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import json\nfrom taskgroup.fileio import read_json\n\n"
                      "class Report:\n    def load(self, p):\n        return json.loads(open(p).read())\n\n"
                      "def copy(x):\n    return json.loads(json.dumps(x))\n\n"
                      "def frontier(p):\n    return read_json(p, 'frontier')['points']\n")
    assert parse_calls(module) == Counter({"Report.load": 1, "frontier": 1})  # the in-memory copy is not a read
