"""`taskgroup select` / `frontier` through the CLI: outputs, bad input (exit 2, no file), no torch."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskgroup.cli import main
from taskgroup.losstable import LossTable, NetworkResult

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "taskgroup" / "data" / "standley2020"


def run(args, capsys):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(map(str, args)))
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def write_table(tmp_path: Path) -> Path:
    def net(tasks, width, stage, val, test, ckpt=None):
        return NetworkResult(tuple(tasks), width, stage, {"val": val, "test": test}, checkpoint=ckpt)
    nets = [
        net(["a"], 1.0, "final", {"a": 1.0}, {"a": 1.1}, "nets/a.pt"),
        net(["b"], 1.0, "final", {"b": 2.0}, {"b": 2.1}, "nets/b.pt"),
        net(["a", "b"], 1.0, "final", {"a": 1.2, "b": 1.9}, {"a": 1.3, "b": 1.7}, "nets/ab.pt"),
        net(["a"], 0.5, "final", {"a": 1.4}, {"a": 1.5}),
        net(["a", "b"], 1.0, "early", {"a": 3.0, "b": 1.0}, {"a": 3.0, "b": 1.0}),
        net(["a"], 1.0, "early", {"a": 1.0}, {"a": 1.0}),
        net(["b"], 1.0, "early", {"b": 5.0}, {"b": 5.0}),
    ]
    table = LossTable(("a", "b"), nets, reference_losses={"a": {"val": 2.0}, "b": {"val": 4.0}})
    run_dir = tmp_path / "run"
    table.save(run_dir / "losses.json")
    return run_dir


def test_select_paper_table_writes_grouping(tmp_path, capsys):
    out = tmp_path / "out" / "best.json"
    code, stdout, _ = run(["select", "--losses", DATA / "results_20.txt", "--budget", 2, "--task-names", "s,d,n,k,e",
                           "--evaluate", DATA / "results_test.txt", "--out", out], capsys)
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["kind"] == "grouping" and doc["schema_version"] == 1
    assert doc["budget"] == {"value": 2.0, "unit": "snt"}
    assert doc["objective"] == pytest.approx(0.9859)
    assert doc["evaluated_total_best_served"] == pytest.approx(0.46727)
    assert doc["evaluated_total"] == pytest.approx(0.46963)
    assert sorted(doc["served_by"]) == sorted("sdnke")
    assert all(n["checkpoint"] is None for n in doc["networks"])
    assert "objective" in stdout and "0.9859" in stdout


def test_select_loss_table_json_splits_stages_and_checkpoints(tmp_path, capsys):
    run_dir = write_table(tmp_path)
    out = tmp_path / "sel" / "best.json"
    code, _, err = run(["select", "--losses", run_dir, "--budget", 2, "--evaluate-split", "test", "--out", out], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    # Budget 2: a from single a (1.0) and b from the pair (1.9) = 2.9 beats the two singles (3.0).
    assert doc["objective"] == pytest.approx(2.9)
    assert doc["evaluated_total"] == pytest.approx(1.1 + 1.7)
    ckpts = sorted(n["checkpoint"] for n in doc["networks"])
    assert ckpts == ["../run/nets/a.pt", "../run/nets/ab.pt"]
    # ESA: select on the early stage, evaluate the same networks' final losses.
    code, _, err = run(["select", "--losses", run_dir / "losses.json", "--budget", 1, "--stage", "early",
                        "--evaluate-split", "test", "--out", out], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["objective"] == pytest.approx(4.0) and doc["evaluated_total"] == pytest.approx(1.3 + 1.7)
    # Normalised objective: a/2 + b/4 with reference losses.
    code, _, err = run(["select", "--losses", run_dir, "--budget", 2, "--normalize", "reference", "--out", out], capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["objective"] == pytest.approx(1.0 / 2 + 1.9 / 4)


def test_frontier_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "f.json", tmp_path / "f.png"
    code, stdout, err = run(["frontier", "--losses", DATA / "results.txt", "--evaluate", DATA / "results_test.txt",
                             "--out", out, "--plot", png], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["kind"] == "frontier"
    assert [p["budget_from"] for p in doc["points"]] == [1, 1.5, 2, 2.5, 3, 3.5, 4, 5]
    assert [round(p["evaluated_total"], 5) for p in doc["points"]] == \
        [0.50278, 0.46132, 0.45224, 0.44612, 0.44235, 0.43932, 0.43555, 0.43481]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hoa_cli_evaluates_on_trained_networks(tmp_path, capsys):
    out = tmp_path / "b.json"
    code, _, err = run(["select", "--losses", DATA / "results.txt", "--budget", 2, "--estimate", "hoa",
                        "--evaluate", DATA / "results_test.txt", "--out", out], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert any(n["estimated"] for n in doc["networks"])
    assert doc["evaluated_total"] == pytest.approx(0.45474)


BAD_TSV = {
    "ragged": ("0.1\t0.2\n0.3\t\t\n", "line 2: ragged row"),
    "nonnumeric": ("0.1\t0.2\n0.3\tabc\n", "line 2, column 2: not a number"),
    "negative": ("0.1\t0.2\n0.3\t-0.1\n", "line 2, column 2"),
    "nan": ("0.1\t0.2\nnan\t0.4\n", "line 2, column 1"),
    "duplicate": ("0.1\t0.2\n0.3\t0.4\n0.3\t0.5\n", "line 3: duplicate network"),
    "empty_row": ("0.1\t0.2\n\t\n", "line 2: a row with no losses"),
}


@pytest.mark.parametrize("case", sorted(BAD_TSV))
def test_bad_tsv_exit_2_no_output(tmp_path, capsys, case):
    text, message = BAD_TSV[case]
    src = tmp_path / "t.txt"
    src.write_text(text)
    out = tmp_path / "best.json"
    code, _, err = run(["select", "--losses", src, "--budget", 3, "--out", out], capsys)
    assert code == 2
    assert str(src) in err and message in err
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--budget", 0.7], "cheapest grouping serving all 5 tasks costs 1 snt"),
    (["--budget", 2, "--task-names", "s,d,n"], "5 task columns but 3 task names"),
    (["--budget", 2, "--weights", "zz=2"], "unknown task"),
    (["--budget", 2, "--weights", "t0"], "--weights: expected TASK=NUMBER"),
    (["--budget", 2, "--normalize", "reference"], "no positive reference loss"),
    (["--budget", 5, "--max-networks", 1, "--evaluate", "missing.txt"], "missing.txt: no such file"),
    (["--budget", 2, "--evaluate-split", "test"], "--evaluate-split needs a loss-table JSON"),
])
def test_bad_options_exit_2_no_output(tmp_path, capsys, args, message):
    out = tmp_path / "best.json"
    code, _, err = run(["select", "--losses", DATA / "results.txt", *args, "--out", out], capsys)
    assert code == 2 and message in err, err
    assert not out.exists()


def test_bad_json_tables(tmp_path, capsys):
    run_dir = write_table(tmp_path)
    doc = json.loads((run_dir / "losses.json").read_text())
    doc["networks"][0]["tasks"] = ["zz"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    out = tmp_path / "best.json"
    code, _, err = run(["select", "--losses", bad, "--budget", 2, "--out", out], capsys)
    assert code == 2 and "unknown task" in err and str(bad) in err and not out.exists()
    doc = json.loads((run_dir / "losses.json").read_text())
    doc["networks"][1]["losses"]["val"]["b"] = -1
    bad.write_text(json.dumps(doc))
    code, _, err = run(["select", "--losses", bad, "--budget", 2, "--out", out], capsys)
    assert code == 2 and "networks[1].losses.val.b" in err and not out.exists()
    code, _, err = run(["select", "--losses", tmp_path / "nowhere", "--budget", 2, "--out", out], capsys)
    assert code == 2 and "no such file" in err


def test_help_explains_units_hoa_and_serving(capsys):
    code, stdout, _ = run(["select", "--help"], capsys)
    assert code == 0
    text = " ".join(stdout.replace("│", " ").split())  # rich draws option help inside boxes
    for phrase in ("SNT", "Higher Order Approximation", "served", "half-size network 0.5"):
        assert phrase in text


def test_select_does_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        f"sys.argv = ['taskgroup', 'select', '--losses', {str(DATA / 'results.txt')!r}, '--budget', '2', "
        f"'--out', {str(tmp_path / 'b.json')!r}]\n"
        "from taskgroup.cli import main\n"
        "try:\n    main(sys.argv[1:])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "bad = [m for m in ('torch', 'fvcore', 'onnx') if m in sys.modules]\n"
        "print('HEAVY', bad)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout
    assert (tmp_path / "b.json").exists()
