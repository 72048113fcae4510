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
    code, _, err = run(["select", "--losses", run_dir, "--budget", 2, "--evaluate-split", "test", "--out", out,
                        "--normalize", "none"], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    # Budget 2: a from single a (1.0) and b from the pair (1.9) = 2.9 beats the two singles (3.0).
    assert doc["objective"] == pytest.approx(2.9)
    assert doc["evaluated_total"] == pytest.approx(1.1 + 1.7)
    ckpts = sorted(n["checkpoint"] for n in doc["networks"])
    assert ckpts == ["../run/nets/a.pt", "../run/nets/ab.pt"]
    # ESA: select on the early stage, evaluate the same networks' final losses.
    code, _, err = run(["select", "--losses", run_dir / "losses.json", "--budget", 1, "--stage", "early",
                        "--evaluate-split", "test", "--out", out, "--normalize", "none"], capsys)
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


def test_the_frontier_plot_puts_a_normalised_objective_and_plain_test_totals_on_two_labelled_axes(
        tmp_path, capsys, monkeypatch):
    import matplotlib.axes

    labels = []
    original = matplotlib.axes.Axes.set_ylabel
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel",
                        lambda self, label, *a, **kw: (labels.append(label), original(self, label, *a, **kw))[1])
    table = write_real_table(tmp_path)  # a training run's table: normalised by the trivial predictors'
    doc = json.loads((table / "losses.json").read_text())
    doc["reference_losses"] = {t: {"val": 2.0, "test": 2.0} for t in doc["tasks"]}
    (table / "losses.json").write_text(json.dumps(doc))
    code, _, err = run(["frontier", "--losses", table, "--evaluate-split", "test", "--out", tmp_path / "f.json",
                        "--plot", tmp_path / "f.png"], capsys)
    assert code == 0, err
    assert labels == ["total loss on test (plain sum of task losses)",
                      "objective: sum of each task's loss / its trivial predictor's (selection table)"]


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
    (["--budget", 0.9999999], "use --budget 1 or more"),
    (["--budget", 2, "--stage", "foo"], "--stage must be one of final, early"),
    (["--budget", 2, "--split", "train"], "--split must be one of val, test"),
    (["--budget", 2, "--statistic", "p99"], "--statistic p99 reads latencies from a device profile"),
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
    doc = json.loads((run_dir / "losses.json").read_text())
    doc["meta"] = ["not", "an", "object"]
    bad.write_text(json.dumps(doc))
    code, _, err = run(["select", "--losses", bad, "--budget", 2, "--out", out], capsys)
    assert code == 2 and "meta" in err and not out.exists()


def test_output_paths_that_are_directories_exit_2_and_leave_nothing(tmp_path, capsys):
    run_dir = write_table(tmp_path)
    target = tmp_path / "existing_dir"
    target.mkdir()
    code, _, err = run(["select", "--losses", run_dir, "--budget", 2, "--out", target], capsys)
    assert code == 2 and "is a directory" in err
    code, _, err = run(["frontier", "--losses", run_dir, "--out", target, "--plot", tmp_path / "f.png"], capsys)
    assert code == 2 and "is a directory" in err
    assert not (tmp_path / "f.png").exists() and list(target.iterdir()) == []


def test_frontier_plot_that_cannot_be_written_leaves_no_json(tmp_path, capsys):
    import os

    run_dir = write_table(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        code, _, err = run(["frontier", "--losses", run_dir, "--out", tmp_path / "f.json", "--plot",
                            locked / "f.png"], capsys)
    finally:
        locked.chmod(0o700)
    assert code == 2 and "Permission denied" in err and err.count("\n") == 1
    assert not (tmp_path / "f.json").exists() and list(locked.iterdir()) == []


def test_frontier_plot_and_out_on_the_same_file_is_refused(tmp_path, capsys):
    run_dir = write_table(tmp_path)
    out = tmp_path / "f.json"
    code, _, err = run(["frontier", "--losses", run_dir, "--out", out, "--plot", tmp_path / "." / "f.json"], capsys)
    assert code == 2 and "--plot and --out are the same file" in err and not out.exists()


def test_frontier_plot_written_to_a_failing_device_leaves_no_json(tmp_path, capsys, monkeypatch):
    """Whatever stops the plot (here a full disk), the JSON is not left behind."""
    from taskgroup.search.frontier import Frontier

    def full_disk(self, path, title=None, beyond_noise=None):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(Frontier, "plot", full_disk)
    run_dir = write_table(tmp_path)
    code, _, err = run(["frontier", "--losses", run_dir, "--out", tmp_path / "f.json", "--plot", tmp_path / "f.png"],
                       capsys)
    assert code == 2 and "No space left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_huge_budget_prints_a_finite_headroom(tmp_path, capsys):
    code, stdout, err = run(["select", "--losses", write_table(tmp_path), "--budget", "1e308",
                             "--out", tmp_path / "b.json"], capsys)
    assert code == 0, err
    assert "100.0% under" in stdout and "inf" not in stdout


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


# ----- costs from a device profile (--profile with --budget-ms / --budget-snt) -------------------------------------
PROFILE = ROOT / "profiles" / "cpu-intel-r-xeon-r-processor-default.json"
N, D, E = "normal", "depth_zbuffer", "edge_texture"


def lat(p50):
    return {"p50": p50, "p90": p50 * 1.5, "p99": p50 * 2, "mean": p50, "runs": 100}


def part(p50):
    return {"params": 10, "macs": 1000, "latency_ms": lat(p50)}


def profile_doc():
    """Binary-exact costs: each head's measured time includes a 0.25 ms per-call overhead the cost model removes.

    Costs (ms) at width 1: trunk 2, heads normal 1, depth 0.5, edge 0.25 (standard network of the three: 3.75);
    at width 0.5: trunk 1, heads 0.5, 0.25, 0.125. 'rgb' is profiled too (head 4 ms) but not in the loss table.
    """
    def width(w, trunk, heads):
        return {"width": w, "trunk": part(trunk), "session_overhead": lat(0.25),
                "heads": {t: part(ms + 0.25) for t, ms in heads.items()}}
    return {
        "kind": "device_profile", "schema_version": 1, "preset": "default", "model": "xception", "model_config": {},
        "input_shape": [1, 3, 32, 32], "tasks": [N, D, E, "rgb"], "backend": "onnxruntime",
        "execution_provider": "CPUExecutionProvider", "device": {"kind": "cpu", "cpu_model": "Test CPU", "cpu_cores": 2},
        "widths": [width(1.0, 2.0, {N: 1.0, D: 0.5, E: 0.25, "rgb": 4.0}),
                   width(0.5, 1.0, {N: 0.5, D: 0.25, E: 0.125, "rgb": 2.0})],
    }


def write_profile(path: Path, doc=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc if doc is not None else profile_doc()))
    return path


def write_real_table(tmp_path: Path, meta=None) -> Path:
    """Loss table over three real tasks, trained (per its meta) on the default preset at 32x32.

    Feasible groupings (cost in ms on profile_doc(), total loss):
      all three in the triple network                        3.75   3.6
      pair n+d serving both + half-size single e            4.625  3.4
      pair n+d serving both + full single e                  5.75   2.9
      pair n+d serving n only (its d head dropped) + singles d, e  3+2.5+2.25 = 7.75  2.8
    """
    def net(tasks, width, val, ckpt=None):
        return NetworkResult(tuple(tasks), width, "final", {"val": val, "test": val}, checkpoint=ckpt)
    nets = [net([t], 1.0, {t: 1.0}) for t in (N, D, E)] + [net([t], 0.5, {t: 1.5}) for t in (N, D, E)] + [
        net([N, D], 1.0, {N: 0.8, D: 1.1}, "nets/nd.pt"),
        net([N, D, E], 1.0, {N: 1.2, D: 1.2, E: 1.2}),
    ]
    if meta is None:
        meta = {"run_config": {"preset": "default", "arch": {"model": "xception", "model_config": {}, "resolution": 32}}}
    run_dir = tmp_path / "run"
    LossTable((N, D, E), nets, meta=meta).save(run_dir / "losses.json")
    return run_dir


def served_map(doc):
    return sorted((n["width"], tuple(n["tasks"]), tuple(n["served"])) for n in doc["networks"])


def test_select_budget_ms_known_answer_and_served_heads_only(tmp_path, capsys):
    run_dir = write_real_table(tmp_path)
    prof = write_profile(tmp_path / "profiles" / "test-cpu.json")
    out = tmp_path / "sel" / "best.json"
    code, stdout, err = run(["select", "--losses", run_dir, "--profile", prof, "--budget-ms", 6, "--out", out], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["objective"] == pytest.approx(2.9)
    assert served_map(doc) == [(1.0, (E,), (E,)), (1.0, (N, D), (N, D))]
    assert doc["cost"] == pytest.approx(5.75) and doc["headroom"] == pytest.approx(0.25)
    b = doc["budget"]
    assert b["value"] == 6 and b["unit"] == "ms" and "snt" not in b
    assert b["profile"] == "../profiles/test-cpu.json"  # relative to the grouping file, as export reads it
    assert b["device"]["cpu_model"] == "Test CPU" and b["backend"] == "onnxruntime" and b["statistic"] == "p50"
    assert b["standard_network_ms"] == pytest.approx(3.75)  # the table's three tasks, not the profiled rgb head
    assert doc["options"]["preset"] == "default" and doc["options"]["resolution"] == 32  # from the training run
    text = " ".join(stdout.split())
    assert "predicted 5.75 ms of 6 ms budget (0.25 ms, 4.2% under)" in text and "Test CPU" in text
    # With more budget the pair network serves only 'normal': its dropped depth head costs nothing (3 ms, not 3.5).
    code, stdout, err = run(["select", "--losses", run_dir, "--profile", prof, "--budget-ms", 8, "--out", out], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["objective"] == pytest.approx(2.8) and doc["cost"] == pytest.approx(7.75)
    pair = [n for n in doc["networks"] if n["tasks"] == [N, D]][0]
    assert pair["served"] == [N] and pair["cost"] == pytest.approx(3.0) and pair["checkpoint"] == "../run/nets/nd.pt"
    assert "(0.25 ms, 3.1% under)" in " ".join(stdout.split())


def test_budget_snt_is_a_multiple_of_the_profiled_standard_network(tmp_path, capsys):
    run_dir = write_real_table(tmp_path)
    prof = write_profile(tmp_path / "p.json")
    snt, ms = tmp_path / "snt.json", tmp_path / "ms.json"
    code, stdout, err = run(["select", "--losses", run_dir, "--profile", prof, "--budget-snt", 2.25, "--out", snt], capsys)
    assert code == 0, err
    assert "8.438 ms (2.25 SNT)" in stdout
    code, _, err = run(["select", "--losses", run_dir, "--profile", prof, "--budget-ms", 2.25 * 3.75, "--out", ms], capsys)
    assert code == 0, err
    a, b = json.loads(snt.read_text()), json.loads(ms.read_text())
    assert a["budget"]["value"] == b["budget"]["value"] == 8.4375 and a["budget"]["snt"] == 2.25
    assert served_map(a) == served_map(b) and a["objective"] == b["objective"] == pytest.approx(2.8)
    assert a["headroom"] == pytest.approx(8.4375 - 7.75)


def test_committed_profile_predicted_latency_is_the_co_run_scaled_sum_of_served_networks(tmp_path, capsys):
    from taskgroup.profile import load_profile

    p = load_profile(PROFILE)
    run_dir = write_real_table(tmp_path)
    for flag, value in (("--budget-snt", 1.3), ("--budget-ms", 0.2)):
        out = tmp_path / f"best{flag}.json"
        code, stdout, err = run(["select", "--losses", run_dir, "--profile", PROFILE, flag, value, "--out", out], capsys)
        assert code == 0, err
        doc = json.loads(out.read_text())
        budget = value if flag == "--budget-ms" else value * p.network_ms(1.0, (N, D, E))
        assert doc["budget"]["value"] == pytest.approx(budget)
        assert p.corun > 0  # measured: networks run back to back cost more than each alone
        factor = p.corun_factor(len(doc["networks"]))
        predicted = sum(p.network_ms(n["width"], n["served"]) for n in doc["networks"]) * factor
        assert doc["corun_factor"] == pytest.approx(factor)
        assert doc["cost"] == pytest.approx(predicted, rel=1e-12) and predicted <= budget
        assert doc["headroom"] == pytest.approx(budget - predicted)
        assert (out.parent / doc["budget"]["profile"]).resolve() == PROFILE.resolve()
        assert doc["budget"]["device"] == p.device.to_json()
        assert f"predicted {predicted:.4g} ms of {budget:.4g} ms budget" in " ".join(stdout.split())
    # What `taskgroup export` writes into the bundle manifest from this grouping.
    from taskgroup_exporters.bundle import _selection_block
    from taskgroup.grouping import Grouping

    block = _selection_block(Grouping.load(out)).to_json()
    assert block["predicted_latency"]["value"] == pytest.approx(doc["cost"]) and block["predicted_latency"]["unit"] == "ms"
    assert block["device"] == p.device.to_json() and block["budget"] == {"value": 0.2, "unit": "ms"}


def test_hoa_frontier_evaluates_the_trained_groupings_and_leaves_estimated_ones_null(tmp_path, capsys):
    run_dir = write_real_table(tmp_path)
    doc = json.loads((run_dir / "losses.json").read_text())
    doc["networks"] = [n for n in doc["networks"] if len(n["tasks"]) < 3]  # pairs only: the triple is estimated
    for pair in ([N, E], [D, E]):
        losses = {t: 1.3 for t in pair}
        doc["networks"].append({"tasks": pair, "width": 1.0, "stage": "final", "losses": {"val": losses, "test": losses}})
    (run_dir / "losses.json").write_text(json.dumps(doc))
    out = tmp_path / "f.json"
    code, stdout, err = run(["frontier", "--losses", run_dir, "--estimate", "hoa", "--evaluate-split", "test",
                             "--out", out, "--plot", tmp_path / "f.png"], capsys)
    assert code == 0, err
    points = json.loads(out.read_text())["points"]
    estimated = [p for p in points if any(n["estimated"] for n in p["networks"])]
    trained = [p for p in points if not any(n["estimated"] for n in p["networks"])]
    assert estimated and trained
    assert all(p["evaluated_total"] is None for p in estimated)
    assert all(isinstance(p["evaluated_total"], float) for p in trained)
    assert (tmp_path / "f.png").stat().st_size > 0


def test_frontier_with_profile_in_ms(tmp_path, capsys):
    run_dir = write_real_table(tmp_path)
    prof = write_profile(tmp_path / "p.json")
    out = tmp_path / "f" / "f.json"
    code, stdout, err = run(["frontier", "--losses", run_dir, "--profile", prof, "--out", out], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["unit"] == "ms"
    assert [p["budget_from"] for p in doc["points"]] == pytest.approx([3.75, 4.625, 5.75, 7.75])
    assert [p["objective"] for p in doc["points"]] == pytest.approx([3.6, 3.4, 2.9, 2.8])
    assert doc["profile"]["profile"] == "../p.json" and doc["profile"]["standard_network_ms"] == pytest.approx(3.75)
    assert "1.53" in stdout  # 5.75 ms in SNT
    code, _, err = run(["frontier", "--losses", run_dir, "--profile", prof, "--max-budget", 6, "--out", out], capsys)
    assert code == 0, err
    assert [p["budget_from"] for p in json.loads(out.read_text())["points"]] == pytest.approx([3.75, 4.625, 5.75])


def _without_task(doc, task):
    doc["tasks"].remove(task)
    for w in doc["widths"]:
        del w["heads"][task]
    return doc


def _only_full_width(doc):
    doc["widths"] = doc["widths"][:1]
    return doc


BAD_PROFILES = {
    # A training run's table: the suggested command profiles that run's own architecture and tasks, as printed.
    "missing_task": (lambda d: _without_task(d, E), None, ["no head for task(s) ['edge_texture']",
                                                          "`taskgroup profile --run RUN --widths 1,0.5 --out"]),
    "missing_width": (_only_full_width, None, ["width(s) 0.5", "--widths 1,0.5"]),
    "other_preset": (None, {"run_config": {"preset": "tiny", "arch": {"resolution": 16}}},
                     ["preset 'default'", "preset 'tiny'", "`taskgroup profile --run RUN --widths"]),
    "other_input_size": (None, {"run_config": {"preset": "default", "arch": {"resolution": 64}}},
                         ["timed at input 32x32", "trained at 64x64"]),
    "other_architecture": (None, {"run_config": {"preset": "default", "arch": {"model_config": {"stem_channels": 8}}}},
                           ["model_config"]),
    "wrong_kind": (lambda d: dict(d, kind="grouping"), None, ["field 'kind'"]),
    "negative_latency": (lambda d: (d["widths"][0]["trunk"]["latency_ms"].update(p50=-1), d)[1], None,
                         ["widths[0].trunk.latency_ms.p50"]),
}


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_profile_not_matching_the_table_exit_2_no_output(tmp_path, capsys, case):
    edit, meta, messages = BAD_PROFILES[case]
    prof = write_profile(tmp_path / "p.json", edit(profile_doc()) if edit else None)
    run_dir = write_real_table(tmp_path, meta)
    out = tmp_path / "best.json"
    code, _, err = run(["select", "--losses", run_dir, "--profile", prof, "--budget-ms", 6, "--out", out], capsys)
    err = " ".join(err.split())
    assert code == 2 and str(prof) in err, err
    for m in messages:
        assert m.replace("RUN", str(run_dir)) in err, err
    assert not out.exists()


def test_corrupt_or_missing_profile_and_abstract_task_names(tmp_path, capsys):
    run_dir = write_real_table(tmp_path)
    out = tmp_path / "best.json"
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(json.dumps(profile_doc())[:200])
    for prof, message in ((corrupt, "malformed JSON"), (tmp_path / "none.json", "no such file")):
        code, _, err = run(["select", "--losses", run_dir, "--profile", prof, "--budget-ms", 6, "--out", out], capsys)
        assert code == 2 and str(prof) in err and message in err, err
    # The paper's tables name columns t0..; a profile costs real tasks only.
    code, _, err = run(["select", "--losses", DATA / "results.txt", "--profile", PROFILE, "--budget-snt", 2,
                        "--out", out], capsys)
    err = " ".join(err.split())
    assert code == 2 and "['t0', 't1', 't2', 't3', 't4'] are not task names" in err and "--task-names" in err
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--budget-ms", 6], "--budget-ms needs --profile"),
    (["--budget-snt", 2], "--budget-snt needs --profile"),
    ([], "give a budget"),
    (["--profile", "P", "--budget", 2], "--budget is for selection without a profile"),
    (["--profile", "P", "--budget-ms", 6, "--budget-snt", 2], "not both"),
    (["--profile", "P"], "--budget-ms X or --budget-snt Y"),
    (["--profile", "P", "--budget-ms", -1], "--budget-ms must be a positive number"),
    (["--profile", "P", "--budget-ms", 3], "cheapest grouping serving all 3 tasks costs 3.75 ms"),
    (["--profile", "P", "--budget-snt", 0.5], "use --budget-ms 3.75 or more (--budget-snt 1)"),
])
def test_budget_flags_exit_2_no_output(tmp_path, capsys, args, message):
    run_dir = write_real_table(tmp_path)
    prof = write_profile(tmp_path / "p.json")
    out = tmp_path / "best.json"
    args = [prof if a == "P" else a for a in args]
    code, _, err = run(["select", "--losses", run_dir, *args, "--out", out], capsys)
    assert code == 2 and message in " ".join(err.split()), err
    assert not out.exists()


def test_select_with_profile_does_not_import_torch(tmp_path):
    run_dir = write_real_table(tmp_path)
    code = (
        "import sys\n"
        "from taskgroup.cli import main\n"
        f"args = ['select', '--losses', {str(run_dir)!r}, '--profile', {str(PROFILE)!r}, '--budget-snt', '1.5', "
        f"'--out', {str(tmp_path / 'b.json')!r}]\n"
        "try:\n    main(args)\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('HEAVY', [m for m in ('torch', 'fvcore', 'onnx') if m in sys.modules])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout and json.loads((tmp_path / "b.json").read_text())["budget"]["unit"] == "ms"


def test_normalize_auto_is_reference_for_training_runs_and_none_for_the_papers_tables(tmp_path, capsys):
    run_dir = write_table(tmp_path)
    out = tmp_path / "auto.json"
    assert run(["select", "--losses", run_dir, "--budget", 2, "--out", out], capsys)[0] == 0
    auto = json.loads(out.read_text())
    assert auto["options"]["normalize"] == "reference" and auto["options"]["scales"] == {"a": 2.0, "b": 4.0}
    assert run(["select", "--losses", run_dir, "--budget", 2, "--normalize", "reference", "--out", out], capsys)[0] == 0
    assert json.loads(out.read_text())["objective"] == pytest.approx(auto["objective"])
    assert run(["select", "--losses", DATA / "results_20.txt", "--budget", 2, "--out", out], capsys)[0] == 0
    assert json.loads(out.read_text())["options"]["normalize"] == "none"


def test_select_warns_about_served_tasks_that_are_not_learnt(tmp_path, capsys):
    """b's networks are worse than its trivial predictor on validation: the grouping says so."""
    table = LossTable(("a", "b"), [
        NetworkResult(("a",), 1.0, "final", {"val": {"a": 1.0}}, checkpoint="a.pt"),
        NetworkResult(("b",), 1.0, "final", {"val": {"b": 2.5}}, checkpoint="b.pt")],
        reference_losses={"a": {"val": 2.0}, "b": {"val": 2.4}})
    table.save(tmp_path / "run" / "losses.json")
    out = tmp_path / "best.json"
    code, _, err = run(["select", "--losses", tmp_path / "run", "--budget", 2, "--out", out], capsys)
    assert code == 0
    assert "b is not learnt by b@1" in " ".join(err.split())
    warnings = json.loads(out.read_text())["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("b is not learnt by b@1: validation loss 2.5")


def test_select_top_k_lists_the_groupings_and_the_networks_to_train(tmp_path, capsys):
    out = tmp_path / "top.json"
    code, stdout, err = run(["select", "--losses", DATA / "results.txt", "--task-names", "s,d,n,k,e", "--budget", 2,
                             "--estimate", "hoa", "--top-k", 3, "--out", out], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert len(doc["top_k"]) == 3 and doc["top_k"][0]["objective"] == pytest.approx(doc["objective"])
    objectives = [g["objective"] for g in doc["top_k"]]
    assert objectives == sorted(objectives)
    sets = [frozenset((tuple(n["tasks"]), n["width"]) for n in g["networks"]) for g in doc["top_k"]]
    assert len(set(sets)) == 3
    estimated = {(tuple(n["tasks"]), n["width"]) for g in doc["top_k"] for n in g["networks"] if n["estimated"]}
    assert {(tuple(n["tasks"]), n["width"]) for n in doc["to_train"]} == estimated
    assert len(doc["to_train"]) == len(estimated)  # each network once
    if estimated:
        assert "--resume --networks" in " ".join(stdout.split())


def noisy_profile_doc():
    """profile_doc() with five rounds per part, 1% apart: the noise rule adds 2 sigma to every cost."""
    doc = profile_doc()
    for w in doc["widths"]:
        for p in [w["trunk"], *w["heads"].values()]:
            ms = p["latency_ms"]["p50"]
            p["latency_ms"]["rounds_p50"] = [ms * (1 + d) for d in (-0.01, 0.01, 0.0, -0.01, 0.01)]
    return doc


def test_select_says_when_the_noise_rule_not_the_prediction_left_the_better_grouping_out(tmp_path, capsys):
    run_dir = write_real_table(tmp_path)
    prof = write_profile(tmp_path / "p.json", noisy_profile_doc())
    out = tmp_path / "best.json"
    # n+d with a full single e is predicted at 5.75 ms (total loss 2.9): within 5.76 ms, not with 2.33 sigma.
    code, _, err = run(["select", "--losses", run_dir, "--profile", prof, "--budget-ms", "5.76", "--normalize", "none",
                        "--out", out], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["objective"] == pytest.approx(3.4)  # the rule's choice: n+d + half-width e, 4.625 ms
    left_out = doc["excluded_by_noise"]
    assert left_out["objective"] == pytest.approx(2.9) and left_out["cost_ms"] == pytest.approx(5.75)
    from taskgroup.search.robustness import NOISE_SIGMAS

    assert left_out["fit_cost_ms"] > 5.76 and left_out["sigmas"] == pytest.approx(NOISE_SIGMAS)  # 2.33
    text = " ".join(err.split())
    assert "the noise rule, not the prediction, decided" in text and "--noise-sigmas 0" in text
    # With the rule off the prediction decides, and nothing is said.
    code, _, err = run(["select", "--losses", run_dir, "--profile", prof, "--budget-ms", "5.76", "--normalize", "none",
                        "--noise-sigmas", "0", "--out", out], capsys)
    assert code == 0 and json.loads(out.read_text())["objective"] == pytest.approx(2.9)
    assert "excluded_by_noise" not in json.loads(out.read_text()) and "noise rule" not in err


@pytest.mark.parametrize("noisy", [False, True])
def test_a_budget_of_1e308_snt_fits_everything_and_writes_finite_numbers(tmp_path, capsys, noisy):
    """1e308 SNT is beyond the largest float in ms: it is every grouping's budget, not an error."""
    doc = noisy_profile_doc() if noisy else profile_doc()
    run_dir = write_real_table(tmp_path)
    prof = write_profile(tmp_path / "p.json", doc)
    out = tmp_path / "best.json"
    code, stdout, err = run(["select", "--losses", run_dir, "--profile", prof, "--budget-snt", "1e308",
                             "--out", out], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())  # strict JSON: no inf
    assert doc["objective"] == pytest.approx(2.8) and doc["budget"]["snt"] == 1e308
    assert doc["budget"]["value"] == sys.float_info.max and "inf" not in stdout


@pytest.mark.parametrize("k", ["0", "-5", "51"])
def test_select_top_k_out_of_range_exit_2_before_any_work(tmp_path, capsys, k):
    out = tmp_path / "best.json"
    code, _, err = run(["select", "--losses", write_table(tmp_path), "--budget", "2", "--top-k", k, "--out", out],
                       capsys)
    assert code == 2 and f"--top-k must be an integer from 1 to 50, got {k}" in err
    assert not out.exists()
