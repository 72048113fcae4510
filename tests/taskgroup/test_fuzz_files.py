"""Fuzzing the files `taskgroup select` and `frontier` read: loss tables (JSON and the paper's
tab-separated format) and device profiles, damaged at random.

Through the command line (in process), every damaged input must give exit 0 with a consistent
result, or exit 2 with a one-line error and no output file; never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import event, given, strategies as st

from fuzzing import dumps, fuzz, mutated
from taskgroup.cli import main
from taskgroup.losstable import LossTable, NetworkResult

ROOT = Path(__file__).resolve().parents[2]
TASKS = ("segment_semantic", "depth_zbuffer", "normal")


def _cli(args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code or 0
    return code, out.getvalue(), err.getvalue()


def _check_outcome(code: int, err: str, out: Path, budget: float | None) -> None:
    event(f"exit {code}")  # `pytest --hypothesis-show-statistics` shows how often damage was accepted
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert not out.exists()
        return
    doc = json.loads(out.read_text())
    out.unlink()
    if doc["kind"] == "grouping":
        assert all(n["cost"] > 0 and math.isfinite(n["cost"]) for n in doc["networks"])
        assert math.isfinite(doc["objective"]) and (budget is None or doc["cost"] <= budget * (1 + 1e-9))
        served = sorted(t for n in doc["networks"] for t in n["served"])
        assert served == sorted(doc["tasks"])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-files")
    nets, k = [], 0
    for tasks in [(t,) for t in TASKS] + [(a, b) for i, a in enumerate(TASKS) for b in TASKS[i + 1:]]:
        for width in ((1.0, 0.5) if len(tasks) == 1 else (1.0,)):
            k += 1
            losses = {s: {t: round(0.1 + 0.07 * ((k * 7 + j * 3) % 11), 4) for j, t in enumerate(tasks)}
                      for s in ("val", "test")}
            nets.append(NetworkResult(tasks, width, "final", losses))
    table = LossTable(TASKS, nets, reference_losses={t: {"val": 2.0, "test": 2.0} for t in TASKS})
    table.save(root / "losses.json")
    profile = json.loads((ROOT / "profiles" / "cpu-intel-r-xeon-r-processor-default.json").read_text())
    for key in ("validation", "libraries", "onnx", "timing", "cost_model", "input", "model_config"):
        profile.pop(key, None)
    for w in profile["widths"]:  # fewer fields, so that the damage lands on ones that are read
        for comp in [w["trunk"], *w["heads"].values()]:
            comp.pop("macs_by_operator", None)
    (root / "profile.json").write_text(json.dumps(profile))
    return root


BUDGETS = st.one_of(st.sampled_from([0.5, 1, 1.5, 2.5, 4, 1e308]), st.floats(1e-6, 10))


@fuzz(120)
@given(data=st.data())
def test_fuzzed_loss_tables_select_or_exit_2(files, data):
    doc = data.draw(mutated(json.loads((files / "losses.json").read_text())))
    table, out = files / "fuzzed_losses.json", files / "out.json"
    table.write_text(dumps(doc))
    budget = data.draw(BUDGETS)
    verb = data.draw(st.sampled_from(["select", "frontier"]))
    args = [verb, "--losses", table, "--out", out] + (["--budget", budget] if verb == "select" else [])
    code, _, err = _cli(args + data.draw(st.sampled_from([[], ["--normalize", "reference"], ["--estimate", "hoa"]])))
    _check_outcome(code, err, out, budget if verb == "select" else None)


@fuzz(80)
@given(data=st.data())
def test_fuzzed_profiles_select_or_exit_2(files, data):
    doc = data.draw(mutated(json.loads((files / "profile.json").read_text())))
    profile, out = files / "fuzzed_profile.json", files / "out.json"
    profile.write_text(dumps(doc))
    code, _, err = _cli(["select", "--losses", files / "losses.json", "--profile", profile, "--budget-snt",
                         data.draw(BUDGETS), "--out", out])
    _check_outcome(code, err, out, None)


@st.composite
def damaged_tsv(draw, text: str) -> str:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        cells = lines[i].split("\t")
        op = draw(st.sampled_from(["cell", "cell", "drop-cell", "add-cell", "dup-line", "drop-line", "blank",
                                   "spaces", "garbage"]))
        if op == "cell":
            cells[draw(st.integers(0, len(cells) - 1))] = draw(st.one_of(
                st.sampled_from(["", "nan", "inf", "-0.1", "1e400", "0", "1e-320", "0x1p3", " 0.5 ", "1_0", "x"]),
                st.text(max_size=4)))
            lines[i] = "\t".join(cells)
        elif op == "drop-cell":
            lines[i] = "\t".join(cells[1:])
        elif op == "add-cell":
            lines[i] = lines[i] + "\t0.1"
        elif op == "dup-line":
            lines.insert(i, lines[i])
        elif op == "drop-line":
            del lines[i]
        elif op == "blank":
            lines.insert(i, "")
        elif op == "spaces":
            lines[i] = lines[i].replace("\t", "    ")
        else:
            lines[i] = draw(st.text(max_size=12))
        if not lines:
            break
    return "\n".join(lines) + "\n"


@fuzz(120)
@given(data=st.data())
def test_fuzzed_paper_tables_select_or_exit_2(files, data):
    text = (ROOT / "taskgroup" / "data" / "standley2020" / "results.txt").read_text()
    table, out = files / "fuzzed.txt", files / "out.json"
    table.write_text(data.draw(damaged_tsv(text)))
    budget = data.draw(BUDGETS)
    code, _, err = _cli(["select", "--losses", table, "--task-names", "s,d,n,k,e", "--budget", budget, "--out", out])
    event(f"exit {code}")
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert not out.exists()
    else:
        doc = json.loads(out.read_text())
        out.unlink()
        assert doc["cost"] <= budget * (1 + 1e-9) and math.isfinite(doc["objective"])
