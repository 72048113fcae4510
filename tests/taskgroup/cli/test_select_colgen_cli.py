"""`taskgroup select` / `frontier --estimate hoa` on pairs tables large enough for column generation: the
optimality gap is printed and recorded, and the answer is the one listing every network gives."""

import itertools
import json

import numpy as np
import pytest

from taskgroup.cli import main


def run(args, capsys):
    code = 0
    try:
        main(list(map(str, args)))
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def pairs_table(path, n, seed):
    """The paper's tab-separated format: the half-width singles, the full singles, every pair."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 0.5, n)
    rows = [[round(float(b * rng.uniform(1.02, 1.1)), 6) for b in base]]
    for t in range(n):
        rows.append([round(float(base[t]), 6) if u == t else None for u in range(n)])
    for t, u in itertools.combinations(range(n), 2):
        row = [None] * n
        for a in (t, u):
            row[a] = round(float(base[a] * rng.uniform(0.8, 1.2)), 6)
        rows.append(row)
    path.write_text("".join("\t".join("" if v is None else f"{v}" for v in r) + "\n" for r in rows))
    return path


def test_select_at_twelve_tasks_prints_and_records_the_gap(tmp_path, capsys):
    table = pairs_table(tmp_path / "pairs12.txt", 12, 3)
    out, listed = tmp_path / "best.json", tmp_path / "listed.json"
    code, stdout, err = run(["select", "--losses", table, "--estimate", "hoa", "--budget", 3, "--out", out], capsys)
    assert code == 0, err
    assert "optimality gap 0 (proven optimal; column generation:" in " ".join(stdout.split())
    doc = json.loads(out.read_text())
    assert doc["solver"] == "colgen"
    opt = doc["optimality"]
    assert opt["proven_optimal"] is True and opt["gap"] == 0.0
    assert opt["lower_bound"] == pytest.approx(doc["objective"])
    assert opt["search"]["rounds"] >= 1 and opt["search"]["columns_generated"] >= 1
    assert opt["search"]["lp_bound"] <= doc["objective"] + 1e-9
    # Today's exact enumeration (every network listed, the subset programme) chooses the same.
    code, _, err = run(["select", "--losses", table, "--estimate", "hoa", "--budget", 3, "--solver", "dp",
                        "--out", listed], capsys)
    assert code == 0, err
    want = json.loads(listed.read_text())
    assert doc["objective"] == pytest.approx(want["objective"], rel=1e-9)
    assert doc["cost"] == pytest.approx(want["cost"], rel=1e-9)
    assert sum(n["estimated"] for n in doc["networks"]) == sum(n["estimated"] for n in want["networks"])
    assert want["optimality"] == {"proven_optimal": True, "lower_bound": want["objective"], "gap": 0.0,
                                  "relative_gap": 0.0}


def test_frontier_by_column_generation_records_every_points_gap(tmp_path, capsys):
    table = pairs_table(tmp_path / "pairs8.txt", 8, 5)
    out, listed = tmp_path / "frontier.json", tmp_path / "listed.json"
    code, stdout, err = run(["frontier", "--losses", table, "--estimate", "hoa", "--solver", "colgen",
                             "--out", out], capsys)
    assert code == 0, err
    assert "optimality gap 0 at every budget (proven optimal, column generation)" in " ".join(stdout.split())
    doc = json.loads(out.read_text())
    assert doc["proven_optimal"] is True and doc["max_relative_gap"] == 0.0
    assert all(p["optimality"]["gap"] == 0.0 and "search" in p["optimality"] for p in doc["points"])
    code, _, err = run(["frontier", "--losses", table, "--estimate", "hoa", "--solver", "dp", "--out", listed],
                       capsys)
    assert code == 0, err
    want = json.loads(listed.read_text())
    assert [p["objective"] for p in doc["points"]] == pytest.approx([p["objective"] for p in want["points"]])
    assert [p["budget_from"] for p in doc["points"]] == pytest.approx([p["budget_from"] for p in want["points"]])
