"""The file of a run's results store (`RUN_DIR/runs.sqlite`): created atomically, opened with the reason
it may be missing, and, once open, noticed deleted or replaced.

A new store is built beside its final name and renamed in, so a crash leaves no half store; a run
directory holding anything but what an interrupted create leaves is refused. SQLite refuses to write to a database whose file was unlinked ("attempt to write a readonly
database"), yet the process still holds its whole content. Every write of the store goes through
`StoreFile.transaction`, which checks first that the file opened is still the one at its path; if
not, the content is saved (to the path again if the name is free, else beside it as
`runs.sqlite.recovered`, never over another file), the connection moves to the saved copy so the
write under way (the results of the network just trained) is kept, and the transaction raises a
TaskgroupError saying how to resume.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Sequence

from taskgroup.errors import TaskgroupError

STORE_FILENAME = "runs.sqlite"
RECOVERED_SUFFIX = ".recovered"  # the store saved beside another file that replaced it during training
CHECKPOINT_DIR = "checkpoints"


def check_creatable(run_dir: str | Path) -> None:
    """Raise unless a new run may start in `run_dir` (absent, empty, or left by an interrupted create)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise TaskgroupError(f"{run_dir}: exists and is not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not _only_create_leftovers(run_dir):
        hint = " (it holds a run: add --resume to continue it)" if (run_dir / STORE_FILENAME).exists() else ""
        raise TaskgroupError(f"{run_dir}: run directory is not empty{hint}; refusing to overwrite it")


def create_store_file(run_dir: Path, schema: str, meta: Sequence[tuple[str, str]]) -> None:
    """RUN_DIR/runs.sqlite with `schema` and `meta` rows, and the checkpoint folder (see check_creatable)."""
    check_creatable(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
    # Build the database beside its final name and rename it in, so a crash here leaves no half store.
    tmp = run_dir / f".{STORE_FILENAME}.tmp"
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    with conn:
        conn.executescript(schema)
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta)
    conn.close()
    tmp.rename(run_dir / STORE_FILENAME)


def open_store_file(run_dir: Path, tables: Sequence[str]) -> tuple[sqlite3.Connection, dict[str, str]]:
    """A read-write connection to RUN_DIR/runs.sqlite and its meta rows, after reading one row of each of
    `tables`; a missing store is refused with what happened to it, an unreadable one left untouched."""
    path = run_dir / STORE_FILENAME
    if not path.is_file():
        recovered = path.with_name(path.name + RECOVERED_SUFFIX)
        if recovered.is_file():
            raise TaskgroupError(f"{run_dir}: no results store ({STORE_FILENAME}), but {recovered} holds the one saved "
                                 f"when it disappeared during training: rename it to {STORE_FILENAME}, then resume")
        if any((run_dir / CHECKPOINT_DIR).glob("*.pt")):
            raise TaskgroupError(f"{run_dir}: no results store ({STORE_FILENAME}) although {run_dir / CHECKPOINT_DIR} "
                                 "holds checkpoints: the store (the run's config and every network's losses) was "
                                 "deleted, and losses cannot be recovered from checkpoints alone. Restore "
                                 f"{STORE_FILENAME} from a backup to resume, or train again with a new --out")
        raise TaskgroupError(f"{run_dir}: no results store ({STORE_FILENAME}); nothing to resume — start a run without --resume")
    try:
        conn = connect_rw(path)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        for table in tables:
            conn.execute(f"SELECT * FROM {table} LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        raise TaskgroupError(f"{path}: not a readable taskgroup results store ({exc}); the file was left untouched") from exc
    return conn, meta


def connect_rw(path: Path) -> sqlite3.Connection:
    """A read-write connection to an existing store file (never creating one), foreign keys on."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class StoreFile:
    """A run's store connection and the file it was opened from (`path` moves to the saved copy)."""

    def __init__(self, run_dir: Path, path: Path, conn: sqlite3.Connection):
        self.run_dir = run_dir
        self.path = path
        self.conn = conn
        self._identity = file_identity(path)  # the file opened; checked before every write
        self._lost: str | None = None  # set once the file was found deleted or replaced (see check)

    def transaction(self) -> "_Transaction":
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), after checking the store file is still there."""
        return _Transaction(self)

    def check(self) -> None:
        """Stop cleanly if the store file was deleted or replaced since it was opened (see the module doc)."""
        if self._lost is not None or file_identity(self.path) == self._identity:
            return
        replaced = os.path.lexists(self.path)
        target = self.path.with_name(self.path.name + RECOVERED_SUFFIX) if replaced else self.path
        tmp = target.with_name(f".{target.name}.saving.tmp")
        tmp.unlink(missing_ok=True)
        copy = sqlite3.connect(tmp)
        try:
            self.conn.backup(copy)
        finally:
            copy.close()
        os.replace(tmp, target)
        self.conn.close()
        self.conn = connect_rw(target)
        self._identity = file_identity(target)
        resume = f"taskgroup train --out {self.run_dir} --resume"
        if replaced:
            self._lost = (f"{self.path} was replaced by another file during training; training stopped and that file "
                          f"was left as it is. The run's store, with every network finished so far, was saved as "
                          f"{target}: to continue, move {self.path} away, rename {target.name} to {self.path.name}, "
                          f"then run `{resume}`")
        else:
            self._lost = (f"{self.path} disappeared during training (deleted?); training stopped. It was written back "
                          "from the copy this process still had open, with every network finished so far: continue "
                          f"with `{resume}`")
        self.path = target


class _Transaction:
    def __init__(self, file: StoreFile):
        self.file = file

    def __enter__(self) -> None:
        self.file.check()
        self.file.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> bool:
        file = self.file
        try:
            file.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        except sqlite3.OperationalError as err:  # deleted between the check and the write
            if file.conn.in_transaction:
                file.conn.execute("ROLLBACK")
            file.check()
            if file._lost is None:
                raise
            raise TaskgroupError(file._lost) from err
        if exc_type is not None and issubclass(exc_type, sqlite3.OperationalError):
            file.check()
            if file._lost is not None:
                raise TaskgroupError(file._lost) from exc
        if exc_type is None and file._lost is not None:
            raise TaskgroupError(file._lost)  # the write went to the saved copy; stop the run here
        return False


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a file, None if absent: tells the file a connection opened from a new one."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _only_create_leftovers(run_dir: Path) -> bool:
    """True if the directory holds nothing but what an interrupted `create` leaves (an empty
    checkpoint folder, the temporary store): starting afresh there loses nothing."""
    for entry in run_dir.iterdir():
        if entry.name in (f".{STORE_FILENAME}.tmp", ".lock") and entry.is_file():
            continue
        if entry.name == CHECKPOINT_DIR and entry.is_dir() and not any(entry.iterdir()):
            continue
        return False
    return True
