"""The results store of a run: `RUN_DIR/runs.sqlite`, plus the exported `RUN_DIR/losses.json`.

Tables:
- `meta`: kind, schema_version, the run config (JSON), the run's tasks and, once the data
  is loaded, each task's target transform (`targets`: units and standardisation) and the
  number of samples per split and of samples with a label per task and split (`labelled_samples`);
- `candidates`: one row per (network, seed) ever started: task set, width, seed, status
  (`running` while a training job is under way, `done` when its stages are committed), stages
  asked for;
- `results`: one row per finished (network, seed, stage): losses per split and task, steps,
  wall time, the checkpoint path (relative to RUN_DIR) and the checkpoint's sha256;
- `reference`: the trivial predictor's loss per task and split;
- `affinity` (runs that tracked inter-task affinity, taskgroup.affinity): one row per (network,
  seed, stage) with its TAG and cosine matrices, committed with that job's results. The table
  is created by the first such commit, so stores without it stay schema 2 as they were.
- `loss_weights` (runs with a `[train] weighting` other than none, taskgroup.train.weighting):
  one row per (network, seed, stage) with the weights it was trained with (learned ones at the
  kept epoch); created by the first such commit, like `affinity`.
- `task_stops` (runs with `[train] per_task_stopping`): one row per (multi-task network, seed,
  stage, task): the epoch where the task's validation loss was best, every task's losses at that
  epoch and the checkpoint of those weights (the stage's own checkpoint when it is the same
  epoch) with its sha256; created by the first such commit.

Every row of `results`, `task_stops`, `affinity` and `loss_weights` carries `row_sha256`, the
sha256 of its own values (taken when it was committed), as every checkpoint carries its sha256:
a row changed afterwards (a flipped bit on disk, an edit) is found when the store is read.
`--resume` drops it and trains that network again (as for a damaged checkpoint); writing the loss
table or verifying a checkpoint for export refuses it, naming the command that retrains it. Rows
committed before the check existed have none and are read as they are.

The networks and seeds a run was asked to train (`requested` in meta) are what `train --resume`
continues.

Seeds are an axis of a run, like its networks: the same network trained with several seeds
has one row per seed, and the loss table reports their mean, standard deviation and count.
The stored config is the run's recipe with the seed it was created with; runs differing only
in the seed are the same run.

A candidate's checkpoints are renamed into place first; then one transaction inserts its
result rows and marks it done. A crash at any point leaves either a committed candidate or a
`running` row (retrained from scratch on `--resume`), never half a result. Only the standard
library is used here, so `taskgroup results` runs without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from taskgroup_runtime.integrity import sha256_file
from taskgroup.affinity import ALL_KINDS, AffinityRun, AffinityTable
from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LOSS_TABLE_FILENAME, LossTable, NetworkResult
from taskgroup.train.candidates import CandidateSpec
from taskgroup.data.standardize import transforms_from_json
from taskgroup.data.standardize import transforms_to_json
from taskgroup.losstable import SeedResult, aggregate_seeds
from taskgroup.train.losses import TRIVIAL_PREDICTOR

if TYPE_CHECKING:
    from taskgroup.grouping import Grouping

LOSS_UNITS = ("dataset units: L1 is the mean absolute error of outputs mapped back to the dataset's values "
              "(meta.targets gives each task's units), L2 the mean squared error in those units squared; "
              "cross-entropy in nats per pixel, bce in nats per label and pixel")
STORE_FILENAME = "runs.sqlite"
RECOVERED_SUFFIX = ".recovered"  # the store saved beside another file that replaced it during training
CHECKPOINT_DIR = "checkpoints"
KIND = "taskgroup_run"
SCHEMA_VERSION = 2  # 2: seeds as an axis, networks trained on standardised targets (`targets` in meta); 1: neither

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE candidates (
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    tasks TEXT NOT NULL,            -- JSON list, in the run's task order
    width REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done')),
    stages TEXT NOT NULL,           -- JSON list of the stages the current/last job trains
    attempts INTEGER NOT NULL,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (name, seed)
);
CREATE TABLE results (
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('final', 'early')),
    fraction REAL NOT NULL,
    best_epoch REAL NOT NULL,
    steps INTEGER NOT NULL,
    wall_time_s REAL NOT NULL,
    losses TEXT NOT NULL,           -- JSON: split -> task -> loss
    checkpoint TEXT NOT NULL,       -- relative to the run directory
    checkpoint_sha256 TEXT NOT NULL,
    row_sha256 TEXT,                -- integrity check of the row (see _ROW_CHECKS); NULL in rows from before it
    PRIMARY KEY (name, seed, stage),
    FOREIGN KEY (name, seed) REFERENCES candidates(name, seed)
);
CREATE TABLE reference (task TEXT NOT NULL, split TEXT NOT NULL, loss REAL NOT NULL, PRIMARY KEY (task, split));
"""
_AFFINITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS affinity (
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('final', 'early')),
    steps INTEGER NOT NULL,         -- training steps at which affinity was measured
    every INTEGER NOT NULL,         -- measured every this many steps
    seconds REAL NOT NULL,          -- time spent measuring (part of the job's wall time)
    matrices TEXT NOT NULL,         -- JSON: kind ('tag', 'cosine') -> n x n, [source][target] in the network's task order
    row_sha256 TEXT,                -- integrity check of the row (see _ROW_CHECKS); NULL in rows from before it
    PRIMARY KEY (name, seed, stage),
    FOREIGN KEY (name, seed) REFERENCES candidates(name, seed)
)
"""


_LOSS_WEIGHTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS loss_weights (
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('final', 'early')),
    weights TEXT NOT NULL,          -- JSON: weighting, multipliers per task (+ log_variance, per_epoch if learned)
    row_sha256 TEXT,                -- integrity check of the row (see _ROW_CHECKS); NULL in rows from before it
    PRIMARY KEY (name, seed, stage),
    FOREIGN KEY (name, seed) REFERENCES candidates(name, seed)
)
"""
_TASK_STOPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS task_stops (
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('final', 'early')),
    task TEXT NOT NULL,             -- the task whose validation loss chose the epoch
    epoch REAL NOT NULL,
    losses TEXT NOT NULL,           -- JSON: split -> task -> loss of the weights of that epoch
    checkpoint TEXT NOT NULL,       -- relative to the run directory
    checkpoint_sha256 TEXT NOT NULL,
    row_sha256 TEXT,                -- integrity check of the row (see _ROW_CHECKS); NULL in rows from before it
    PRIMARY KEY (name, seed, stage, task),
    FOREIGN KEY (name, seed) REFERENCES candidates(name, seed)
)
"""


# Every committed row carries its own integrity check, as every checkpoint carries its sha256: the
# sha256 of these columns' stored values. A row changed after its commit (a flipped bit on disk, an
# edit) no longer matches: `--resume` trains that network again, every other reader refuses it.
_ROW_CHECKS: dict[str, tuple[str, ...]] = {
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
    columns = _ROW_CHECKS[table]
    if "row_sha256" not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
        return []  # a table from before the checks: nothing to verify
    key = 4 if table == "task_stops" else 3
    query = f"SELECT {', '.join(columns)}, row_sha256 FROM {table} WHERE row_sha256 IS NOT NULL {where}"
    return [tuple(r[:key]) for r in conn.execute(query, tuple(args)) if row_digest(table, r[:-1]) != r[-1]]


class RunStore:
    """One run directory's SQLite store. Open with `create` (new run) or `open` (existing)."""

    def __init__(self, run_dir: Path, conn: sqlite3.Connection):
        self.run_dir = run_dir
        self.path = run_dir / STORE_FILENAME
        self._conn = conn
        self._identity = _file_identity(self.path)  # the file opened; checked before every write
        self._lost: str | None = None  # set once the file was found deleted or replaced (see _check_file)

    # -- opening -----------------------------------------------------------------------

    @staticmethod
    def check_creatable(run_dir: str | Path) -> None:
        """Raise unless a new run may start in `run_dir` (absent, empty, or left by an interrupted create)."""
        run_dir = Path(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise TaskgroupError(f"{run_dir}: exists and is not a directory")
        if run_dir.is_dir() and any(run_dir.iterdir()) and not _only_create_leftovers(run_dir):
            hint = " (it holds a run: add --resume to continue it)" if (run_dir / STORE_FILENAME).exists() else ""
            raise TaskgroupError(f"{run_dir}: run directory is not empty{hint}; refusing to overwrite it")

    @classmethod
    def create(cls, run_dir: str | Path, config: dict[str, Any], tasks: Sequence[str]) -> "RunStore":
        """Start a new run; refuses a run directory that already holds anything."""
        run_dir = Path(run_dir)
        cls.check_creatable(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
        # Build the database beside its final name and rename it in, so a crash here leaves no half store.
        tmp = run_dir / f".{STORE_FILENAME}.tmp"
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp)
        with conn:
            conn.executescript(_SCHEMA)
            rows = [("kind", KIND), ("schema_version", str(SCHEMA_VERSION)),
                    ("config", json.dumps(config, sort_keys=True)), ("tasks", json.dumps(list(tasks))),
                    ("created_at", str(time.time()))]
            conn.executemany("INSERT INTO meta VALUES (?, ?)", rows)
        conn.close()
        tmp.rename(run_dir / STORE_FILENAME)
        return cls.open(run_dir)

    @classmethod
    def open(cls, run_dir: str | Path) -> "RunStore":
        """Open an existing run's store read-write, checking it is one (never creating or repairing it)."""
        run_dir = Path(run_dir)
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
            conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
            conn.execute("PRAGMA foreign_keys = ON")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            for table in ("candidates", "results", "reference"):
                conn.execute(f"SELECT * FROM {table} LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise TaskgroupError(f"{path}: not a readable taskgroup results store ({exc}); the file was left untouched") from exc
        if meta.get("kind") != KIND:
            raise TaskgroupError(f"{path}: meta 'kind' is {meta.get('kind')!r}, expected '{KIND}'")
        if meta.get("schema_version") == "1":
            raise TaskgroupError(f"{path}: schema_version 1: this run was trained before target standardisation "
                                 f"(this taskgroup writes version {SCHEMA_VERSION}) and cannot be continued; its "
                                 "losses.json and checkpoints still work with results, select and export; train "
                                 "further networks in a new run (a new --out)")
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise TaskgroupError(f"{path}: unsupported schema_version {meta.get('schema_version')!r}; supported: {SCHEMA_VERSION}")
        store = cls(run_dir, conn)
        store.config()  # parse now, so a damaged config is reported at open
        store.tasks()
        return store

    def close(self) -> None:
        self._conn.close()

    # -- run-level data ----------------------------------------------------------------

    def _meta(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise TaskgroupError(f"{self.path}: meta '{key}' is missing")
        try:
            return json.loads(row[0])
        except json.JSONDecodeError as exc:
            raise TaskgroupError(f"{self.path}: meta '{key}' is not valid JSON ({exc})") from exc

    def config(self) -> dict[str, Any]:
        cfg = self._meta("config")
        if not isinstance(cfg, dict):
            raise TaskgroupError(f"{self.path}: meta 'config' is not an object")
        return cfg

    def tasks(self) -> tuple[str, ...]:
        tasks = self._meta("tasks")
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise TaskgroupError(f"{self.path}: meta 'tasks' is not a list of task names")
        return tuple(tasks)

    def target_transforms(self) -> dict[str, Any]:
        """Each task's TargetTransform (empty until the run's data was first loaded)."""

        return transforms_from_json(self._optional_meta("targets", {}), self.path)

    def set_target_transforms(self, transforms: dict[str, Any]) -> None:

        self._set_meta("targets", transforms_to_json(transforms))

    def labelled_samples(self) -> dict[str, Any]:
        """{"samples": split -> size, "labelled": task -> split -> samples with a label} (empty until
        the run's data was first loaded)."""
        return self._optional_meta("labelled_samples", {})

    def set_labelled_samples(self, sizes: dict[str, int], counts: dict[str, dict[str, int]]) -> None:
        self._set_meta("labelled_samples", {"samples": sizes, "labelled": counts})

    def _optional_meta(self, key: str, default: Any) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else self._meta(key)

    def _set_meta(self, key: str, value: Any) -> None:
        with self._transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, allow_nan=False)))

    def reference_losses(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for task, split, loss in self._conn.execute("SELECT task, split, loss FROM reference ORDER BY task, split"):
            out.setdefault(task, {})[split] = loss
        return out

    def set_reference_losses(self, reference: dict[str, dict[str, float]]) -> None:
        rows = [(t, s, float(v)) for t, per in reference.items() for s, v in per.items()]
        with self._transaction():
            self._conn.executemany("INSERT OR REPLACE INTO reference VALUES (?, ?, ?)", rows)

    def base_seed(self) -> int:
        """The seed the run was created with (its checkpoints keep today's file names)."""
        seed = self.config().get("seed", 0)
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0

    def seeds(self) -> list[int]:
        """Every seed with at least one committed result, ascending."""
        return [r[0] for r in self._conn.execute("SELECT DISTINCT seed FROM results ORDER BY seed")]

    def requested(self) -> tuple[list[CandidateSpec], list[int]]:
        """The networks and seeds this run was asked to train (what `train --resume` continues).

        Recorded by every training call (`add_requested`); a store from before that record holds
        its candidates table instead (every network ever started) and its committed seeds."""
        doc = self._optional_meta("requested", None)
        if doc is None:
            rows = self._conn.execute("SELECT tasks, width FROM candidates GROUP BY name ORDER BY MIN(rowid)")
            return [CandidateSpec(tuple(json.loads(t)), w) for t, w in rows], self.seeds() or [self.base_seed()]
        try:
            specs = [CandidateSpec(tuple(n["tasks"]), float(n["width"])) for n in doc["networks"]]
            seeds = [int(s) for s in doc["seeds"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise TaskgroupError(f"{self.path}: meta 'requested' is malformed ({exc})") from exc
        return specs, seeds

    def add_requested(self, specs: Sequence[CandidateSpec], seeds: Sequence[int]) -> None:
        """Add networks and seeds to the run's requested set (kept in the order first asked for)."""
        have_specs, have_seeds = self.requested()  # a store from before the record: what it has started
        names = {s.name for s in have_specs}
        new_specs = have_specs + [s for s in specs if s.name not in names and not names.add(s.name)]
        new_seeds = have_seeds + [s for s in seeds if s not in have_seeds]
        self._set_meta("requested", {"networks": [{"tasks": list(s.tasks), "width": s.width} for s in new_specs],
                                     "seeds": new_seeds})

    # -- candidates --------------------------------------------------------------------

    def done_stages(self, spec: CandidateSpec, seed: int) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT stage FROM results WHERE name = ? AND seed = ?", (spec.name, seed))}

    def interrupted(self) -> list[tuple[CandidateSpec, int]]:
        """(candidate, seed) jobs that started but never committed (killed or crashed)."""
        rows = self._conn.execute("SELECT tasks, width, seed FROM candidates WHERE status = 'running' ORDER BY rowid")
        return [(CandidateSpec(tuple(json.loads(t)), w), seed) for t, w, seed in rows]

    def interrupted_stages(self, spec: CandidateSpec, seed: int) -> tuple[str, ...]:
        row = self._conn.execute("SELECT stages FROM candidates WHERE name = ? AND seed = ?", (spec.name, seed)).fetchone()
        return tuple(json.loads(row[0])) if row else ()

    def mark_running(self, spec: CandidateSpec, seed: int, stages: Iterable[str]) -> None:
        with self._transaction():
            self._conn.execute(
                "INSERT INTO candidates (name, seed, tasks, width, status, stages, attempts, started_at) "
                "VALUES (?, ?, ?, ?, 'running', ?, 1, ?) ON CONFLICT(name, seed) DO UPDATE SET status = 'running', "
                "stages = excluded.stages, attempts = attempts + 1, started_at = excluded.started_at, finished_at = NULL",
                (spec.name, seed, json.dumps(list(spec.tasks)), spec.width, json.dumps(sorted(stages)), time.time()))

    def commit_results(self, spec: CandidateSpec, seed: int, rows: Sequence[dict[str, Any]],
                       replace: bool = False) -> None:
        """One transaction: the job's result rows (checkpoints already in place), the affinity of
        rows that carry one (`r["affinity"]`, from taskgroup.train.affinity) and status done.
        `replace=True` first drops committed rows of the same stages (a job retrained to add its
        affinity: training is deterministic, so only the affinity is new)."""
        with self._transaction():
            if any(r.get("affinity") for r in rows):
                self._conn.execute(_AFFINITY_SCHEMA)
            if any(r.get("loss_weights") for r in rows):
                self._conn.execute(_LOSS_WEIGHTS_SCHEMA)
            if any(r.get("task_stops") for r in rows):
                self._conn.execute(_TASK_STOPS_SCHEMA)
            for r in rows:
                if replace:
                    self._conn.execute("DELETE FROM results WHERE name = ? AND seed = ? AND stage = ?",
                                       (spec.name, seed, r["stage"]))
                    self._delete_extras(spec.name, seed, (r["stage"],))
                if r.get("loss_weights"):
                    self._insert("loss_weights", (spec.name, seed, r["stage"],
                                                  json.dumps(r["loss_weights"], allow_nan=False)))
                for stop in r.get("task_stops") or ():
                    self._insert("task_stops", (spec.name, seed, r["stage"], stop["task"], stop["epoch"],
                                                json.dumps(stop["losses"], allow_nan=False), stop["checkpoint"],
                                                sha256_file(self.run_dir / stop["checkpoint"])))
                if r.get("affinity"):
                    a = r["affinity"]
                    matrices = {k: a[k] for k in ALL_KINDS if k in a}
                    self._insert("affinity", (spec.name, seed, r["stage"], a["steps"], a["every"], a["seconds"],
                                              json.dumps(matrices, allow_nan=False)), replace=True)
                ckpt = self.run_dir / r["checkpoint"]
                self._insert("results", (spec.name, seed, r["stage"], r["fraction"], r["best_epoch"], r["steps"],
                                         r["wall_time_s"], json.dumps(r["losses"], allow_nan=False), r["checkpoint"],
                                         sha256_file(ckpt)))
            self._conn.execute("UPDATE candidates SET status = 'done', finished_at = ? WHERE name = ? AND seed = ?",
                               (time.time(), spec.name, seed))

    def _insert(self, table: str, values: Sequence[Any], replace: bool = False) -> None:
        """Insert a row and seal it with its integrity check, computed from the values as stored (inside
        the caller's transaction; a table from before the checks gains the column)."""
        columns = _ROW_CHECKS[table]
        if "row_sha256" not in {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}:
            self._conn.execute(f"ALTER TABLE {table} ADD COLUMN row_sha256 TEXT")
        cursor = self._conn.execute(f"INSERT {'OR REPLACE ' if replace else ''}INTO {table} ({', '.join(columns)}) "
                                    f"VALUES ({', '.join('?' * len(columns))})", tuple(values))
        stored = self._conn.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE rowid = ?",
                                    (cursor.lastrowid,)).fetchone()
        self._conn.execute(f"UPDATE {table} SET row_sha256 = ? WHERE rowid = ?",
                           (row_digest(table, stored), cursor.lastrowid))

    def damaged_rows(self) -> dict[tuple[str, int], set[str]]:
        """(network, seed) -> the stages with a committed row (result, per-task stop, affinity or loss
        weights) that no longer matches its integrity check."""
        out: dict[tuple[str, int], set[str]] = {}
        for table in _ROW_CHECKS:
            if table == "results" or self._has_table(table):
                for name, seed, stage, *_ in damaged_rows(self._conn, table):
                    out.setdefault((name, seed), set()).add(stage)
        return out

    def check_rows(self) -> None:
        """Refuse a store with a row changed after its commit, naming the command that retrains it."""
        damaged = self.damaged_rows()
        if damaged:
            (name, seed), stages = next(iter(damaged.items()))
            raise TaskgroupError(
                f"{self.path}: the committed results of network {name} (seed {seed}, {', '.join(sorted(stages))}) do "
                f"not match their integrity check: changed after they were committed (a damaged disk, an edit), so its "
                f"losses cannot be trusted ({sum(len(v) for v in damaged.values())} damaged stage(s) in all); train it "
                f"again: taskgroup train --out {self.run_dir} --resume")

    def verify_checkpoints(self) -> list[str]:
        """Check every committed checkpoint against its recorded hash; forget the damaged ones.

        A missing or changed checkpoint (a damaged disk, a file edited by hand) has its result
        rows removed and its candidate marked interrupted for those stages, in one transaction,
        so `--resume` trains it again (training is deterministic given the seed) instead of
        refusing the whole run. Returns a description of each damaged checkpoint.
        """
        damaged: dict[tuple[str, int], list[str]] = {}
        notes = []
        query = "SELECT name, seed, stage, checkpoint, checkpoint_sha256 FROM results"
        if self._has_table("task_stops"):  # a stage's per-task checkpoints belong to it: damaged, it is retrained
            query += " UNION ALL SELECT name, seed, stage, checkpoint, checkpoint_sha256 FROM task_stops"
        for name, seed, stage, rel, sha in self._conn.execute(query).fetchall():
            if stage in damaged.get((name, seed), ()):
                continue
            path = self.run_dir / rel
            if not path.is_file():
                why = "is missing"
            elif sha256_file(path) != sha:
                why = f"does not match the sha256 recorded in {self.path.name}"
            else:
                continue
            damaged.setdefault((name, seed), []).append(stage)
            notes.append(f"{path}: checkpoint of finished network {name} (seed {seed}, {stage}) {why}; "
                         "it will be trained again")
        for (name, seed), stages in self.damaged_rows().items():
            for stage in sorted(stages):
                if stage not in damaged.get((name, seed), ()):
                    damaged.setdefault((name, seed), []).append(stage)
                    notes.append(f"{self.path}: the committed results of network {name} (seed {seed}, {stage}) do "
                                 "not match their integrity check (changed after they were committed); it will be "
                                 "trained again")
        if damaged:
            with self._transaction():
                for (name, seed), stages in damaged.items():
                    self._conn.executemany("DELETE FROM results WHERE name = ? AND seed = ? AND stage = ?",
                                           [(name, seed, st) for st in stages])
                    self._delete_extras(name, seed, stages)
                    self._conn.execute("UPDATE candidates SET status = 'running', stages = ? WHERE name = ? AND seed = ?",
                                       (json.dumps(sorted(stages)), name, seed))
        return notes

    def _delete_extras(self, name: str, seed: int, stages: Iterable[str]) -> None:
        """Drop a job's loss weights, per-task stops and affinity of `stages` (inside a transaction)."""
        for table in ("loss_weights", "task_stops", "affinity"):
            if self._has_table(table):
                self._conn.executemany(f"DELETE FROM {table} WHERE name = ? AND seed = ? AND stage = ?",
                                       [(name, seed, st) for st in stages])

    def loss_weights(self) -> dict[str, dict[str, dict[str, Any]]]:
        """network name -> str(seed) -> stage -> the weights it was trained with (empty: plain sum)."""
        if not self._has_table("loss_weights"):
            return {}
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for name, seed, stage, weights in self._conn.execute(
                "SELECT name, seed, stage, weights FROM loss_weights ORDER BY name, seed, stage"):
            out.setdefault(name, {}).setdefault(str(seed), {})[stage] = json.loads(weights)
        return out

    def task_stops(self) -> list[dict[str, Any]]:
        """Every per-task stop: name, tasks, width, seed, stage, task, epoch, losses, checkpoint, sha256."""
        if not self._has_table("task_stops"):
            return []
        query = ("SELECT s.name, c.tasks, c.width, s.seed, s.stage, s.task, s.epoch, s.losses, s.checkpoint, "
                 "s.checkpoint_sha256 FROM task_stops s JOIN candidates c ON c.name = s.name AND c.seed = s.seed "
                 "ORDER BY (SELECT MIN(rowid) FROM candidates c2 WHERE c2.name = s.name), s.stage DESC, s.seed")
        keys = ("name", "tasks", "width", "seed", "stage", "task", "epoch", "losses", "checkpoint", "checkpoint_sha256")
        rows = [dict(zip(keys, r)) for r in self._conn.execute(query)]
        for r in rows:
            r["tasks"], r["losses"] = tuple(json.loads(r["tasks"])), json.loads(r["losses"])
        return rows

    def has_affinity(self, spec: CandidateSpec, seed: int, stages: Iterable[str]) -> bool:
        """Whether every one of `stages` of this job has its affinity recorded, with every kind
        (a measurement made before a kind was added is retrained to add it; the losses do not change)."""
        if not self._has_table("affinity"):
            return False
        have = {stage for stage, m in self._conn.execute("SELECT stage, matrices FROM affinity WHERE name = ? AND "
                                                         "seed = ?", (spec.name, seed))
                if set(ALL_KINDS) <= set(json.loads(m))}
        return set(stages) <= have

    def affinity_network(self) -> str | None:
        """The network this run tracks affinity on (set by `set_affinity_network`), if any."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'affinity_network'").fetchone()
        return None if row is None else json.loads(row[0])

    def set_affinity_network(self, spec: CandidateSpec) -> None:
        """Record that `spec` is trained with affinity tracking in this run: later jobs of it (new
        seeds, a retrained interrupted job) track it too, with or without the flag that asked."""
        current = self.affinity_network()
        if current is not None and current != spec.name:
            raise TaskgroupError(f"{self.path}: this run tracks affinity on {current}, not {spec.name}")
        with self._transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('affinity_network', ?)", (json.dumps(spec.name),))

    def affinity_table(self) -> AffinityTable | None:
        """The committed affinity measurements (None if the run has none)."""
        if not self._has_table("affinity"):
            return None
        query = ("SELECT a.name, c.tasks, c.width, a.seed, a.stage, a.steps, a.every, a.seconds, a.matrices "
                 "FROM affinity a JOIN candidates c ON c.name = a.name AND c.seed = a.seed ORDER BY a.stage, a.seed")
        rows = self._conn.execute(query).fetchall()
        if not rows:
            return None
        names = {r[0] for r in rows}
        if len(names) > 1:
            raise TaskgroupError(f"{self.path}: affinity recorded for several networks ({', '.join(sorted(names))})")
        _, tasks, width = rows[0][:3]
        runs = [AffinityRun(seed, stage, steps, every, seconds, json.loads(m))
                for _, _, _, seed, stage, steps, every, seconds, m in rows]
        return AffinityTable(tuple(json.loads(tasks)), width, runs)

    def _has_table(self, name: str) -> bool:
        return self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() \
            is not None

    def counts(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT status, COUNT(*) FROM candidates GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    # -- the loss table ----------------------------------------------------------------

    def loss_table(self) -> LossTable:
        """The committed results, one entry per (network, stage), aggregated over its seeds."""

        self.check_rows()
        tasks = self.tasks()
        grouped: dict[tuple[str, str], dict[str, Any]] = {}
        query = ("SELECT r.name, c.tasks, c.width, r.seed, r.stage, r.fraction, r.losses, r.checkpoint, r.steps, "
                 "r.wall_time_s, r.checkpoint_sha256 FROM results r JOIN candidates c ON c.name = r.name AND "
                 "c.seed = r.seed ORDER BY (SELECT MIN(rowid) FROM candidates c2 WHERE c2.name = r.name), "
                 "r.stage DESC, r.seed")
        for name, net_tasks, width, seed, stage, fraction, losses, ckpt, steps, wall, sha in self._conn.execute(query):
            entry = grouped.setdefault((name, stage), {"tasks": tuple(json.loads(net_tasks)), "width": width,
                                                       "stage": stage, "fraction": fraction, "runs": {}})
            entry["runs"][seed] = SeedResult(json.loads(losses), ckpt, steps, wall, sha)
        networks = [aggregate_seeds(e["tasks"], e["width"], e["stage"], e["fraction"], e["runs"])
                    for e in grouped.values()]


        meta = {"run_config": self.config(), "trivial_predictor": TRIVIAL_PREDICTOR, "status": self.counts(),
                "loss_units": LOSS_UNITS, "targets": transforms_to_json(self.target_transforms()),
                "labelled_samples": self.labelled_samples()}
        seeds = self.seeds()
        if len(seeds) > 1:
            meta["seeds"] = seeds
        weights = self.loss_weights()
        if weights:
            meta["loss_weights"] = weights  # network -> seed -> stage -> the weights it was trained with
        return LossTable(tasks, networks, self.reference_losses(), meta, self.affinity_table(),
                         self._task_stop_networks(grouped))

    def _task_stop_networks(self, grouped: dict[tuple[str, str], dict[str, Any]]) -> list[NetworkResult]:
        """One table entry per (network, stage, task) stop, aggregated over seeds like the networks; a stop
        that is the stage's own weights in every seed is the network itself and is left out."""

        stops: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in self.task_stops():
            parent = grouped.get((r["name"], r["stage"]))
            if parent is None or r["seed"] not in parent["runs"]:
                continue  # the stage's result was dropped (damaged): so is its stop
            entry = stops.setdefault((r["name"], r["stage"], r["task"]), {**parent, "runs": {}, "own": False})
            entry["runs"][r["seed"]] = SeedResult(r["losses"], r["checkpoint"], parent["runs"][r["seed"]].steps, None,
                                                  r["checkpoint_sha256"])
            entry["own"] |= r["checkpoint"] != parent["runs"][r["seed"]].checkpoint
        return [aggregate_seeds(e["tasks"], e["width"], e["stage"], e["fraction"], e["runs"], stopped_for=task)
                for (_, _, task), e in stops.items() if e["own"]]

    def export(self) -> LossTable:
        """Write RUN_DIR/losses.json (atomically) from the committed rows."""
        table = self.loss_table()
        table.save(self.run_dir / LOSS_TABLE_FILENAME)
        return table

    # -- helpers -----------------------------------------------------------------------

    def _transaction(self):
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), after checking the store file is still there."""
        store = self

        class _Tx:
            def __enter__(self_inner):
                store._check_file()
                store._conn.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, exc, tb):
                try:
                    store._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
                except sqlite3.OperationalError as err:  # deleted between the check and the write
                    if store._conn.in_transaction:
                        store._conn.execute("ROLLBACK")
                    store._check_file()
                    if store._lost is None:
                        raise
                    raise TaskgroupError(store._lost) from err
                if exc_type is not None and issubclass(exc_type, sqlite3.OperationalError):
                    store._check_file()
                    if store._lost is not None:
                        raise TaskgroupError(store._lost) from exc
                if exc_type is None and store._lost is not None:
                    raise TaskgroupError(store._lost)  # the write went to the saved copy; stop the run here
                return False

        return _Tx()

    def _check_file(self) -> None:
        """Stop cleanly if the store file was deleted or replaced since it was opened.

        SQLite refuses to write to a database whose file was unlinked ("attempt to write a readonly
        database"), yet this process still holds its whole content. That content is saved (to
        RUN_DIR/runs.sqlite again if the name is free, else beside it as runs.sqlite.recovered, never
        over another file) and the connection moves to the saved copy, so the write under way (e.g.
        the results of the network just trained) is kept; the transaction then raises a
        TaskgroupError saying how to resume.
        """
        if self._lost is not None or _file_identity(self.path) == self._identity:
            return
        replaced = os.path.lexists(self.path)
        target = self.path.with_name(self.path.name + RECOVERED_SUFFIX) if replaced else self.path
        tmp = target.with_name(f".{target.name}.saving.tmp")
        tmp.unlink(missing_ok=True)
        copy = sqlite3.connect(tmp)
        try:
            self._conn.backup(copy)
        finally:
            copy.close()
        os.replace(tmp, target)
        self._conn.close()
        self._conn = sqlite3.connect(f"file:{target}?mode=rw", uri=True, isolation_level=None)
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._identity = _file_identity(target)
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


def _file_identity(path: Path) -> tuple[int, int] | None:
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
