"""Atomic writes: all or nothing, normal permissions, clear errors for impossible targets."""

import os
from pathlib import Path
import stat

import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import atomic_path, write_json_atomic


def test_written_files_get_the_umask_permissions_not_the_temporary_files_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"kind": "x", "schema_version": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_directory_as_target_is_a_clear_error(tmp_path):
    with pytest.raises(TaskgroupError, match="is a directory"):
        write_json_atomic(tmp_path, {"kind": "x"})
    assert list(tmp_path.iterdir()) == []


def test_nan_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TaskgroupError, match="NaN"):
        write_json_atomic(tmp_path / "a.json", {"v": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_a_run_directory_is_locked_against_a_second_process(tmp_path):
    import subprocess
    import sys

    from taskgroup.fileio import DirectoryLock

    with DirectoryLock(tmp_path):
        code = ("import sys; from taskgroup.fileio import DirectoryLock\n"
                "from taskgroup.errors import TaskgroupError\n"
                "try:\n    DirectoryLock(sys.argv[1]).acquire()\nexcept TaskgroupError as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert f"in use by taskgroup process {os.getpid()}" in out.stdout, out.stderr
    with DirectoryLock(tmp_path):  # released: usable again
        pass
