"""Atomic writes: all or nothing, normal permissions, clear errors for impossible targets."""

import os
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
