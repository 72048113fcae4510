"""`taskgroup profile` on the command line: bad input exits 2 with a message; a real run writes a profile."""

import json

import pytest

pytest.importorskip("torch")

from taskgroup.cli import main  # noqa: E402


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr()


@pytest.mark.parametrize("argv, message", [
    (["profile", "--device", "tpu"], "unknown device 'tpu'; valid devices here: cpu"),
    (["profile", "--widths", "1.0,half"], "--widths: expected comma-separated numbers"),
    (["profile", "--tasks", "normal,sonar"], "unknown task 'sonar'"),
    (["profile", "--backend", "openvino"], "valid options: auto, torch, onnxruntime, onnxruntime-tensorrt, tensorrt"),
    (["profile", "--min-runs", "20001"], "--min-runs must be an integer from 1 to 20000, got 20001"),
    (["profile", "--min-runs", "0"], "--min-runs must be an integer from 1 to 20000, got 0"),
    (["profile", "--min-seconds", "nan"], "--min-seconds must be a number >= 0"),
])
def test_bad_arguments_exit_2(argv, message, capsys, tmp_path):
    code, out = run(argv + ["--out", str(tmp_path / "p.json")], capsys)
    assert code == 2 and message in out.err
    assert not (tmp_path / "p.json").exists()


def test_profile_run_writes_loadable_file(tmp_path, capsys):
    from taskgroup.profile import load_profile

    path = tmp_path / "p.json"
    try:
        main(["profile", "--preset", "tiny", "--tasks", "normal,depth_zbuffer", "--widths", "1,0.5",
              "--min-runs", "3", "--min-seconds", "0", "--validation-networks", "2", "--out", str(path)])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    assert "wrote" in capsys.readouterr().err
    p = load_profile(path)
    assert p.tasks == ("normal", "depth_zbuffer") and json.loads(path.read_text())["preset"] == "tiny"
