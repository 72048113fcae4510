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
committed before the check existed have none and are read as they are
(taskgroup.train.store_integrity; the table definitions: taskgroup.train.store_schema).

Rows go in and come out typed (taskgroup.resultrows): training commits one `ResultRow` per stage
(`commit_results`), `results` and `task_stops` read them back, and the loss table is built from
them next to the loss table (`loss_table_from_rows`: seeds aggregated), so this module is storage.

The networks and seeds a run was asked to train (`requested` in meta) are what `train --resume`
continues.

Seeds are an axis of a run, like its networks: the same network trained with several seeds
has one row per seed, and the loss table reports their mean, standard deviation and count.
The stored config is the run's recipe with the seed it was created with; runs differing only
in the seed are the same run.

A candidate's checkpoints are renamed into place first; then one transaction inserts its
result rows and marks it done. A crash at any point leaves either a committed candidate or a
`running` row (retrained from scratch on `--resume`), never half a result; a store file deleted or
replaced during training is saved, not lost (taskgroup.train.store_file). Only the standard
library is used here, so `taskgroup results` runs without torch.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from taskgroup_runtime.integrity import sha256_file
from taskgroup.affinity import ALL_KINDS, AffinityRun, AffinityTable
from taskgroup.data.standardize import transforms_from_json, transforms_to_json
from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LOSS_TABLE_FILENAME, SPLITS, LossTable
from taskgroup.resultrows import CommittedResult, CommittedStop, ResultRow, TaskStopRow, loss_table_from_rows
from taskgroup.train.candidates import CandidateSpec
from taskgroup.train.losses import TRIVIAL_PREDICTOR
from taskgroup.train.store_file import STORE_FILENAME, StoreFile, create_store_file, open_store_file
from taskgroup.train.store_integrity import (damaged_checkpoints, damaged_stages, has_table, insert_sealed)
from taskgroup.train.store_schema import AFFINITY_SCHEMA, LOSS_WEIGHTS_SCHEMA, SCHEMA, TASK_STOPS_SCHEMA

LOSS_UNITS = ("dataset units: L1 is the mean absolute error of outputs mapped back to the dataset's values "
              "(meta.targets gives each task's units), L2 the mean squared error in those units squared; "
              "cross-entropy in nats per pixel, bce in nats per label and pixel")
KIND = "taskgroup_run"
SCHEMA_VERSION = 2  # 2: seeds as an axis, networks trained on standardised targets (`targets` in meta); 1: neither


class RunStore:
    """One run directory's SQLite store. Open with `create` (new run) or `open` (existing)."""

    def __init__(self, run_dir: Path, conn: sqlite3.Connection):
        self.run_dir = run_dir
        self._file = StoreFile(run_dir, run_dir / STORE_FILENAME, conn)  # every write checks the file is still there

    @property
    def path(self) -> Path:
        """The store file (the saved copy, once the original was deleted or replaced during training)."""
        return self._file.path

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._file.conn

    def _transaction(self):
        return self._file.transaction()

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def create(cls, run_dir: str | Path, config: dict[str, Any], tasks: Sequence[str]) -> "RunStore":
        """Start a new run; refuses a run directory that already holds anything."""
        run_dir = Path(run_dir)
        create_store_file(run_dir, SCHEMA, [("kind", KIND), ("schema_version", str(SCHEMA_VERSION)),
                                            ("config", json.dumps(config, sort_keys=True)),
                                            ("tasks", json.dumps(list(tasks))), ("created_at", str(time.time()))])
        return cls.open(run_dir)

    @classmethod
    def open(cls, run_dir: str | Path) -> "RunStore":
        """Open an existing run's store read-write, checking it is one (never creating or repairing it)."""
        run_dir = Path(run_dir)
        path = run_dir / STORE_FILENAME
        conn, meta = open_store_file(run_dir, ("candidates", "results", "reference"))
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

    def commit_results(self, spec: CandidateSpec, seed: int, rows: Sequence[ResultRow], replace: bool = False) -> None:
        """One transaction: the job's result rows (checkpoints already in place), with their affinity,
        loss weights and per-task stops, each checkpoint's sha256, and status done. `replace=True`
        first drops committed rows of the same stages (a job retrained to add its affinity:
        training is deterministic, so only the affinity is new)."""
        with self._transaction():
            if any(r.affinity for r in rows):
                self._conn.execute(AFFINITY_SCHEMA)
            if any(r.loss_weights for r in rows):
                self._conn.execute(LOSS_WEIGHTS_SCHEMA)
            if any(r.task_stops for r in rows):
                self._conn.execute(TASK_STOPS_SCHEMA)
            for r in rows:
                if replace:
                    self._conn.execute("DELETE FROM results WHERE name = ? AND seed = ? AND stage = ?",
                                       (spec.name, seed, r.stage))
                    self._delete_extras(spec.name, seed, (r.stage,))
                if r.loss_weights:
                    insert_sealed(self._conn, "loss_weights", (spec.name, seed, r.stage,
                                                                json.dumps(r.loss_weights.to_json(), allow_nan=False)))
                for stop in r.task_stops:
                    insert_sealed(self._conn, "task_stops", (spec.name, seed, r.stage, stop.task, stop.epoch,
                                                json.dumps(stop.losses, allow_nan=False), stop.checkpoint,
                                                sha256_file(self.run_dir / stop.checkpoint)))
                if r.affinity:
                    a = r.affinity
                    if (a.seed, a.stage) != (seed, r.stage):
                        raise ValueError(f"affinity of seed {a.seed} ({a.stage}) committed with seed {seed} ({r.stage})")
                    matrices = {k: a.matrices[k] for k in ALL_KINDS if k in a.matrices}
                    insert_sealed(self._conn, "affinity", (spec.name, seed, r.stage, a.steps, a.every, a.seconds,
                                              json.dumps(matrices, allow_nan=False)), replace=True)
                insert_sealed(self._conn, "results", (spec.name, seed, r.stage, r.fraction, r.best_epoch, r.steps, r.wall_time_s,
                                         json.dumps(r.losses, allow_nan=False), r.checkpoint,
                                         sha256_file(self.run_dir / r.checkpoint)))
            self._conn.execute("UPDATE candidates SET status = 'done', finished_at = ? WHERE name = ? AND seed = ?",
                               (time.time(), spec.name, seed))

    def damaged_rows(self) -> dict[tuple[str, int], set[str]]:
        """(network, seed) -> the stages with a committed row that no longer matches its integrity check."""
        return damaged_stages(self._conn)

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
        damaged, notes = damaged_checkpoints(self._conn, self.run_dir, self.path)
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
            if has_table(self._conn, table):
                self._conn.executemany(f"DELETE FROM {table} WHERE name = ? AND seed = ? AND stage = ?",
                                       [(name, seed, st) for st in stages])

    def loss_weights(self) -> dict[str, dict[str, dict[str, Any]]]:
        """network name -> str(seed) -> stage -> the weights it was trained with (empty: plain sum)."""
        if not has_table(self._conn, "loss_weights"):
            return {}
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for name, seed, stage, weights in self._conn.execute(
                "SELECT name, seed, stage, weights FROM loss_weights ORDER BY name, seed, stage"):
            out.setdefault(name, {}).setdefault(str(seed), {})[stage] = json.loads(weights)
        return out

    def results(self) -> list[CommittedResult]:
        """Every committed result row, typed: networks in the order first started, `final` before `early`,
        then by seed (the order of the loss table's entries). Affinity and per-task stops have their
        own readers (`affinity_table`, `task_stops`), loss weights theirs (`loss_weights`)."""
        query = ("SELECT r.name, c.tasks, c.width, r.seed, r.stage, r.fraction, r.best_epoch, r.steps, r.wall_time_s, "
                 "r.losses, r.checkpoint, r.checkpoint_sha256 FROM results r JOIN candidates c ON c.name = r.name AND "
                 "c.seed = r.seed ORDER BY (SELECT MIN(rowid) FROM candidates c2 WHERE c2.name = r.name), "
                 "r.stage DESC, r.seed")
        out = []
        for name, tasks, width, seed, stage, fraction, best, steps, wall, losses, ckpt, sha in self._conn.execute(query):
            where = ("results", name, seed, stage)
            out.append(CommittedResult(name, self._tasks_column(tasks, name), width, seed, ResultRow(
                stage, fraction, best, steps, wall, self._losses_column(losses, *where), ckpt, sha)))
        return out

    def task_stops(self) -> list[CommittedStop]:
        """Every per-task stop, typed, in the order of `results`."""
        if not has_table(self._conn, "task_stops"):
            return []
        query = ("SELECT s.name, c.tasks, c.width, s.seed, s.stage, s.task, s.epoch, s.losses, s.checkpoint, "
                 "s.checkpoint_sha256 FROM task_stops s JOIN candidates c ON c.name = s.name AND c.seed = s.seed "
                 "ORDER BY (SELECT MIN(rowid) FROM candidates c2 WHERE c2.name = s.name), s.stage DESC, s.seed")
        return [CommittedStop(name, self._tasks_column(tasks, name), width, seed, stage, TaskStopRow(
                    task, epoch, self._losses_column(losses, "task_stops", name, seed, stage), ckpt, sha))
                for name, tasks, width, seed, stage, task, epoch, losses, ckpt, sha in self._conn.execute(query)]

    def _tasks_column(self, value: str, name: str) -> tuple[str, ...]:
        where = f"candidates row of network {name}: column 'tasks'"
        tasks = self._json_column(value, where, name)
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise self._bad_row(where, "expected a list of task names", name)
        return tuple(tasks)

    def _losses_column(self, value: str, table: str, name: str, seed: int, stage: str) -> dict[str, dict[str, float]]:
        """A row's `losses` (split -> task -> loss), checked: a row from before the integrity check has no
        row_sha256 to catch an edit, so its values are checked here."""
        where = f"{table} row of network {name} (seed {seed}, {stage}): column 'losses'"
        losses = self._json_column(value, where, name)
        if not isinstance(losses, dict) or not all(
                split in SPLITS and isinstance(per_task, dict) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in per_task.values())
                for split, per_task in losses.items()):
            raise self._bad_row(where, f"expected split ({', '.join(SPLITS)}) -> task -> loss", name)
        return losses

    def _json_column(self, value: str, where: str, name: str) -> Any:
        try:
            return json.loads(value)
        except (TypeError, json.JSONDecodeError) as exc:
            raise self._bad_row(where, f"not valid JSON ({exc})", name) from None

    def _bad_row(self, where: str, why: str, name: str) -> TaskgroupError:
        return TaskgroupError(f"{self.path}: {where}: {why}; the run's results cannot be read: restore "
                              f"{STORE_FILENAME} from a backup, or train network {name} in a new run "
                              f"(taskgroup train --out NEW_RUN --networks '{name}')")

    def has_affinity(self, spec: CandidateSpec, seed: int, stages: Iterable[str]) -> bool:
        """Whether every one of `stages` of this job has its affinity recorded, with every kind
        (a measurement made before a kind was added is retrained to add it; the losses do not change)."""
        if not has_table(self._conn, "affinity"):
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
        if not has_table(self._conn, "affinity"):
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

    def counts(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT status, COUNT(*) FROM candidates GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    # -- the loss table ----------------------------------------------------------------

    def loss_table(self) -> LossTable:
        """The committed results as the loss table (taskgroup.resultrows: one entry per network and stage,
        aggregated over its seeds), with the run's data in `meta`."""
        self.check_rows()
        meta = {"run_config": self.config(), "trivial_predictor": TRIVIAL_PREDICTOR, "status": self.counts(),
                "loss_units": LOSS_UNITS, "targets": transforms_to_json(self.target_transforms()),
                "labelled_samples": self.labelled_samples()}
        seeds = self.seeds()
        if len(seeds) > 1:
            meta["seeds"] = seeds
        weights = self.loss_weights()
        if weights:
            meta["loss_weights"] = weights  # network -> seed -> stage -> the weights it was trained with
        return loss_table_from_rows(self.tasks(), self.results(), self.task_stops(), self.reference_losses(), meta,
                                    self.affinity_table())

    def export(self) -> LossTable:
        """Write RUN_DIR/losses.json (atomically) from the committed rows."""
        table = self.loss_table()
        table.save(self.run_dir / LOSS_TABLE_FILENAME)
        return table

    # -- helpers -----------------------------------------------------------------------
