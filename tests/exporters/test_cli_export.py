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
    out = capsys.readouterr().out
    assert "whole bundle" in out and "bundle / sum" in out and "predicted by profile" in out
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["whole"]["runs"] == 20 and len(doc["standalone"]) == 2


def test_cli_errors_exit_2_without_writing(tmp_path, capsys):
    grouping = make_grouping(tmp_path)
    code = run(["export", "--grouping", str(grouping), "--out", str(tmp_path / "deploy"), "--format", "tensorrt",
                "--preset", "tiny", "--synthetic-frames"])
    assert code == 2 and "tensorrt" in capsys.readouterr().err
    assert not (tmp_path / "deploy").exists()
    code = run(["bench", str(tmp_path / "nothing")])
    assert code == 2 and "not a bundle directory" in capsys.readouterr().err
