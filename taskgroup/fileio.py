"""Atomic writes and schema-checked JSON reads, shared by every file the toolkit writes.

Every JSON document carries `schema_version` and `kind`; a reader names the file and the
field when something is wrong. Writes go to a temporary file in the same directory and are
renamed into place, so an interrupted write never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from taskgroup.errors import SchemaError, TaskgroupError


def default_file_mode() -> int:
    """The mode a plain open() would give a new file under the current umask (e.g. 0644)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The file is flushed to disk before the rename (a result recorded elsewhere as finished,
    e.g. a checkpoint committed in the results store, must survive a power cut), and gets the
    permissions a normally created file would have rather than the temporary file's 0600.
    """
    path = Path(path)
    if path.is_dir():
        raise TaskgroupError(f"{path} is a directory; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        tmp_path.chmod(default_file_mode())
        os.replace(tmp_path, path)
        fsync_directory(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (where the platform allows opening directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class DirectoryLock:
    """An exclusive advisory lock on a run directory, held while one process works in it.

    Two processes training into one run would retrain each other's networks and collide on
    commit; the second is refused instead, naming the holder. The lock is released when the
    process ends, however it ends (flock), so a killed run never leaves a stale lock.
    """

    NAME = ".lock"

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / self.NAME
        self._file = None

    def acquire(self) -> "DirectoryLock":
        try:
            import fcntl
        except ImportError:  # not POSIX: no advisory locks; runs are not protected from each other
            return self
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise TaskgroupError(f"{self.path.parent} is in use by {holder}; wait for it to finish (or stop it)")
        f.seek(0)
        f.truncate()
        f.write(f"taskgroup process {os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike, doc: dict[str, Any]) -> None:
    """Write `doc` as pretty JSON atomically. Refuses NaN/inf, which JSON cannot represent."""
    try:
        text = json.dumps(doc, indent=2, sort_keys=False, allow_nan=False)
    except ValueError as exc:
        raise TaskgroupError(f"refusing to write {path}: {exc} (NaN or infinity in the data)") from exc
    write_bytes_atomic(path, (text + "\n").encode())


def read_json(path: str | os.PathLike, kind: str, supported_versions: tuple[int, ...] = (1,)) -> dict[str, Any]:
    """Read a toolkit JSON file, checking that it parses, its `kind` and its `schema_version`."""
    path = Path(path)
    if not path.is_file():
        raise TaskgroupError(f"{path}: no such file")
    try:
        doc = json.loads(path.read_text())
    except UnicodeDecodeError as exc:
        raise TaskgroupError(f"{path}: not a text file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise TaskgroupError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if not isinstance(doc, dict):
        raise SchemaError(path, "<top level>", "expected a JSON object")
    if doc.get("kind") != kind:
        raise SchemaError(path, "kind", f"expected '{kind}', found {doc.get('kind')!r}")
    version = doc.get("schema_version")
    if version not in supported_versions:
        raise SchemaError(path, "schema_version", f"unsupported version {version!r}; supported: {list(supported_versions)}")
    return doc


def require(doc: dict[str, Any], field: str, types: type | tuple[type, ...], path: object) -> Any:
    """Return doc[field] if present and of the given type(s), else raise SchemaError naming it."""
    if field not in doc:
        raise SchemaError(path, field, "missing")
    value = doc[field]
    # bool is an int in Python; a schema that wants a number never wants a bool.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise SchemaError(path, field, f"expected {_type_names(types)}, found a boolean")
    if not isinstance(value, types):
        raise SchemaError(path, field, f"expected {_type_names(types)}, found {type(value).__name__}")
    return value


def require_finite(value: Any, field: str, path: object, minimum: float | None = None) -> float:
    """Check a number is finite (and >= minimum); JSON numbers can still be huge or negative."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(path, field, f"expected a number, found {type(value).__name__}")
    if not math.isfinite(value):
        raise SchemaError(path, field, f"expected a finite number, found {value}")
    if minimum is not None and value < minimum:
        raise SchemaError(path, field, f"expected a number >= {minimum}, found {value}")
    return float(value)


def require_number(doc: dict[str, Any], field: str, path: object, *, prefix: str = "", minimum: float | None = None,
                   positive: bool = False, integer: bool = False, optional: bool = False) -> Any:
    """doc[field] as a finite number (an int with `integer`), >= minimum, > 0 with `positive`; None if
    absent or null and `optional`. The one number check of the file contracts; `prefix` names the
    enclosing object in the message (e.g. 'whole.')."""
    name = prefix + field
    value = doc.get(field) if isinstance(doc, dict) else None
    if value is None:
        if optional:
            return None
        raise SchemaError(path, name, "missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise SchemaError(path, name, f"expected {'an integer' if integer else 'a number'}, found {value!r}")
    if not math.isfinite(value):
        raise SchemaError(path, name, f"expected a finite number, found {value}")
    if (minimum is not None and value < minimum) or (positive and value <= 0):
        bound = "> 0" if positive else f">= {minimum}"
        raise SchemaError(path, name, f"expected a number {bound}, found {value}")
    return value if integer else float(value)


def _type_names(types: type | tuple[type, ...]) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


def differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every leaf where two JSON documents differ.

    Resuming refuses a changed configuration; this names what changed.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += differences(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if old == new else [(prefix, old, new)]
