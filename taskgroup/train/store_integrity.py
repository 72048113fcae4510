"""The integrity of a run's committed results: each row's own check, and each checkpoint's recorded sha256.

Every committed row of `results`, `task_stops`, `affinity` and `loss_weights` carries
`row_sha256`, the sha256 of its own values taken when it was committed (`insert_sealed`), as
every checkpoint carries its sha256: a row or checkpoint changed afterwards (a flipped bit on disk,
an edit) is found here. The store drops what is damaged on `--resume` (taskgroup.train.store
`verify_checkpoints`), every other reader refuses it; export checks a grouping's checkpoints
against what the run recorded (`verified_checkpoint_sha256`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from taskgroup_runtime.integrity import sha256_file
from taskgroup.errors import TaskgroupError
from taskgroup.train.store_file import STORE_FILENAME

if TYPE_CHECKING:
    from taskgroup.grouping import Grouping

Damage = dict[tuple[str, int], list[str]]  # (network, seed) -> its damaged stages, in the order found


# Every committed row carries its own integrity check, as every checkpoint carries its sha256: the
# sha256 of these columns' stored values. A row changed after its commit (a flipped bit on disk, an
# edit) no longer matches: `--resume` trains that network again, every other reader refuses it.
ROW_CHECKS: dict[str, tuple[str, ...]] = {
    "results": ("name", "seed", "stage", "fraction", "best_epoch", "steps", "wall_time_s", "losses", "checkpoint",
                "checkpoint_sha256"),
    "task_stops": ("name", "seed", "stage", "task", "epoch", "losses", "checkpoint", "checkpoint_sha256"),
    "affinity": ("name", "seed", "stage", "steps", "every", "seconds", "matrices"),
    "loss_weights": ("name", "seed", "stage", "weights"),
}


def row_digest(table: str, values: Sequence[Any]) -> str:
    """The integrity check of one row: sha256 over the table's name and the row's stored values."""
    return hashlib.sha256(json.dumps([table, *values], allow_nan=False).encode()).hexdigest()


def damaged_rows(conn: sqlite3.Connection, table: str, where: str = "", args: Sequence[Any] = ()) -> list[tuple]:
    """(name, seed, stage[, task]) of the rows of `table` whose check does not match their values."""
    columns = ROW_CHECKS[table]
    if "row_sha256" not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
        return []  # a table from before the checks: nothing to verify
    key = 4 if table == "task_stops" else 3
    query = f"SELECT {', '.join(columns)}, row_sha256 FROM {table} WHERE row_sha256 IS NOT NULL {where}"
    return [tuple(r[:key]) for r in conn.execute(query, tuple(args)) if row_digest(table, r[:-1]) != r[-1]]


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def insert_sealed(conn: sqlite3.Connection, table: str, values: Sequence[Any], replace: bool = False) -> None:
    """Insert a row and seal it with its integrity check, computed from the values as stored (inside
    the caller's transaction; a table from before the checks gains the column)."""
    columns = ROW_CHECKS[table]
    if "row_sha256" not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN row_sha256 TEXT")
    cursor = conn.execute(f"INSERT {'OR REPLACE ' if replace else ''}INTO {table} ({', '.join(columns)}) "
                          f"VALUES ({', '.join('?' * len(columns))})", tuple(values))
    stored = conn.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE rowid = ?", (cursor.lastrowid,)).fetchone()
    conn.execute(f"UPDATE {table} SET row_sha256 = ? WHERE rowid = ?", (row_digest(table, stored), cursor.lastrowid))


def damaged_stages(conn: sqlite3.Connection) -> dict[tuple[str, int], set[str]]:
    """(network, seed) -> the stages with a committed row (result, per-task stop, affinity or loss
    weights) that no longer matches its integrity check."""
    out: dict[tuple[str, int], set[str]] = {}
    for table in ROW_CHECKS:
        if table == "results" or has_table(conn, table):
            for name, seed, stage, *_ in damaged_rows(conn, table):
                out.setdefault((name, seed), set()).add(stage)
    return out


def damaged_checkpoints(conn: sqlite3.Connection, run_dir: Path, store: Path) -> tuple[Damage, list[str]]:
    """The committed stages whose checkpoint (or a per-task stop's: a stage's per-task checkpoints belong
    to it) is missing or does not match its recorded sha256, and a note on each."""
    damaged: Damage = {}
    notes = []
    query = "SELECT name, seed, stage, checkpoint, checkpoint_sha256 FROM results"
    if has_table(conn, "task_stops"):
        query += " UNION ALL SELECT name, seed, stage, checkpoint, checkpoint_sha256 FROM task_stops"
    for name, seed, stage, rel, sha in conn.execute(query).fetchall():
        if stage in damaged.get((name, seed), ()):
            continue
        path = run_dir / rel
        if not path.is_file():
            why = "is missing"
        elif sha256_file(path) != sha:
            why = f"does not match the sha256 recorded in {store.name}"
        else:
            continue
        damaged.setdefault((name, seed), []).append(stage)
        notes.append(f"{path}: checkpoint of finished network {name} (seed {seed}, {stage}) {why}; "
                     "it will be trained again")
    return damaged, notes


def recorded_checkpoint_sha256(checkpoint: str | Path) -> tuple[Path, str | None] | None:
    """The sha256 a run's store recorded for one of its checkpoints, to verify it outside the run (export).

    The run is the nearest folder above the checkpoint holding a store. Returns None when there
    is none, (store path, None) when the store has no committed result (or per-task stop) with this
    checkpoint (its training never committed, or the result was dropped as damaged), else (store
    path, sha256).
    The store is opened read-only.
    """
    checkpoint = Path(checkpoint).resolve()
    run_dir = next((p for p in checkpoint.parents if (p / STORE_FILENAME).is_file()), None)
    if run_dir is None:
        return None
    store = run_dir / STORE_FILENAME
    rel = checkpoint.relative_to(run_dir).as_posix()
    try:
        conn = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
        try:
            table = "results"
            row = conn.execute("SELECT checkpoint_sha256 FROM results WHERE checkpoint = ?", (rel,)).fetchone()
            if row is None and conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                            "name = 'task_stops'").fetchone():  # a per-task stop's own checkpoint
                table = "task_stops"
                row = conn.execute("SELECT checkpoint_sha256 FROM task_stops WHERE checkpoint = ?", (rel,)).fetchone()
            damaged = row is not None and damaged_rows(conn, table, "AND checkpoint = ?", (rel,))
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise TaskgroupError(f"{store}: not a readable taskgroup results store ({exc})") from exc
    if damaged:
        name, seed, stage = damaged[0][:3]
        raise TaskgroupError(f"{store}: the committed result of network {name} (seed {seed}, {stage}) with checkpoint "
                             f"{rel} does not match its integrity check (changed after it was committed), so neither "
                             f"its losses nor its checkpoint's recorded sha256 can be trusted; train it again: "
                             f"taskgroup train --out {run_dir} --resume")
    return store, (row[0] if row else None)


def verified_checkpoint_sha256(grouping: "Grouping", index: int) -> str:
    """A grouping's checkpoint sha256, checked against every digest recorded for it (the run's store,
    the grouping); raises unless one is. Export's `verify_checkpoint` for groupings of a run.

    A checkpoint changed after training (one flipped byte moves a weight) would pass the
    PyTorch-vs-ONNX check, since both sides load the same damaged weights: only the digest the
    run's store recorded when training finished (or one the grouping records) can tell.
    """
    net = grouping.networks[index]
    checkpoint, label = grouping.checkpoint_path(net), net.label
    found = recorded_checkpoint_sha256(checkpoint)
    run_dir = found[0].parent if found else None
    retrain = (f"retrain it (taskgroup train --out {run_dir} --resume --networks '{label}'), then export again"
               if run_dir else "retrain it and select again")
    records = [(f"the sha256 recorded in {found[0]}", found[1])] if found and found[1] else []
    if net.checkpoint_sha256:
        records.append((f"networks[{index}].checkpoint_sha256 of {grouping.path}", net.checkpoint_sha256))
    if not records:
        if found:
            raise TaskgroupError(f"{checkpoint}: network {index} ({label}) has no committed result in {found[0]} "
                                 f"(its training never finished committing, or the result was dropped as damaged), so "
                                 f"its weights cannot be verified; {retrain}")
        raise TaskgroupError(f"{checkpoint}: no sha256 is recorded for this checkpoint (it is not inside a taskgroup "
                             f"run directory with a runs.sqlite, and {grouping.path} gives no networks[{index}]."
                             "checkpoint_sha256), so its weights cannot be verified; export networks of a training run, "
                             "or record the checkpoint's sha256 in the grouping if you vouch for the file")
    actual = sha256_file(checkpoint)
    for where, expected in records:
        if actual != expected:
            raise TaskgroupError(f"{checkpoint}: does not match {where} (expected {expected[:12]}..., found "
                                 f"{actual[:12]}...): damaged or modified after training; {retrain}")
    return actual
