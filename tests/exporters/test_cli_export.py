import json

import pytest

from bundle_fixtures import make_grouping

try:
    from taskgroup.cli import main
except ImportError as exc:  # another verb's module is registered but not in the tree yet
    pytest.skip(f"taskgroup.cli does not import yet: {exc}", allow_module_level=True)


def run(argv: list[str]) -> int:
    """Exit code of the CLI (typer exits with SystemExit also on success)."""
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_export_then_bench_from_the_command_line(tmp_path, capsys):
    grouping = make_grouping(tmp_path)
    assert run(["export", "--grouping", str(grouping), "--out", str(tmp_path / "deploy"), "--preset", "tiny",
                "--synthetic-frames", "--frames", "6"]) == 0
    manifest = json.loads((tmp_path / "deploy" / "manifest.json").read_text())
    assert manifest["verification"]["frames"] == 6 and manifest["verification"]["source"].startswith("synthetic")
    assert run(["bench", str(tmp_path / "deploy"), "--runs", "20", "--json", str(tmp_path / "bench.json")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "whole bundle" in out and "predicted by profile" in out
    # One fused graph: "alone" is that graph, said as such, never as if each network had been timed.
    assert "fused graph alone (one session; 2 networks inside)" in out and "bundle / sum" not in out
    assert "cannot be timed one by one (export with --no-fuse for that)" in out
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["whole"]["runs"] >= 20  # at least --runs, and 0.3 s of timed work
    assert [s["network"] for s in doc["standalone"]] == ["fused"]  # export fuses by default: one graph


def test_cli_errors_exit_2_without_writing(tmp_path, capsys):
    grouping = make_grouping(tmp_path)
    code = run(["export", "--grouping", str(grouping), "--out", str(tmp_path / "deploy"), "--format", "tensorrt",
                "--preset", "tiny", "--synthetic-frames"])
    assert code == 2 and "tensorrt" in capsys.readouterr().err
    assert not (tmp_path / "deploy").exists()
    code = run(["bench", str(tmp_path / "nothing")])
    assert code == 2 and "not a bundle directory" in capsys.readouterr().err
    for runs in ("20001", "9"):  # the timing's cap and a p99's floor, refused before the bundle is even read
        code = run(["bench", str(tmp_path / "nothing"), "--runs", runs])
        assert code == 2 and f"--runs must be an integer from 10 (for a p99) to 20000, got {runs}" in \
            capsys.readouterr().err


def test_export_refuses_a_preset_other_than_the_profiled_one(tmp_path, capsys):
    grouping = make_grouping(tmp_path)
    doc = json.loads(grouping.read_text())
    doc["budget"].update(preset="tiny", input_shape=[1, 3, 16, 16])
    grouping.write_text(json.dumps(doc))
    code = run(["export", "--grouping", str(grouping), "--out", str(tmp_path / "deploy"), "--preset", "default",
                "--synthetic-frames"])
    assert code == 2 and "pass --preset tiny" in capsys.readouterr().err
    assert not (tmp_path / "deploy").exists()


def test_export_defaults_to_the_preset_the_grouping_records_and_refuses_another_size(tmp_path, capsys):
    grouping = make_grouping(tmp_path)  # tiny networks (16x16), selected without a profile
    doc = json.loads(grouping.read_text())
    doc["options"] = {"preset": "tiny", "resolution": 16}  # as select records from the training run
    grouping.write_text(json.dumps(doc))
    code = run(["export", "--grouping", str(grouping), "--out", str(tmp_path / "bad"), "--preset", "default",
                "--synthetic-frames"])
    assert code == 2 and "trained at 16x16" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert run(["export", "--grouping", str(grouping), "--out", str(tmp_path / "deploy"), "--synthetic-frames",
                "--frames", "2"]) == 0
    manifest = json.loads((tmp_path / "deploy" / "manifest.json").read_text())
    assert manifest["input"]["shape"] == ["N", 16, 16, 3]  # the fused graph's uint8 frame


def test_bench_runs_sessions_with_the_profiled_thread_count(tmp_path, capsys):
    grouping = make_grouping(tmp_path)
    doc = json.loads(grouping.read_text())
    doc["budget"]["backend_settings"] = {"intra_op_num_threads": 1}
    grouping.write_text(json.dumps(doc))
    assert run(["export", "--grouping", str(grouping), "--out", str(tmp_path / "deploy"), "--preset", "tiny",
                "--synthetic-frames", "--frames", "2", "--no-fuse"]) == 0
    capsys.readouterr()
    assert run(["bench", str(tmp_path / "deploy"), "--runs", "10", "--execution", "sequential",
                "--json", str(tmp_path / "bench.json")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "net0 alone" in out and "bundle / sum" in out  # separate networks are timed one by one
    runtime = json.loads((tmp_path / "bench.json").read_text())["runtime"]
    assert runtime["load_report"]["threads_per_session"] == [1, 1]


def test_help_texts_name_the_extra_to_install_and_the_run_s_own_settings(capsys):
    assert run(["export", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "pip install 'taskgrouping[tensorrt]'" in text  # rich markup must not eat the extra's name
    assert "A run's networks are exported with the run's own architecture, resolution and data" in text
    assert run(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "a cosine decay to zero in the default preset" in text and "LR halving on a validation plateau" not in text
