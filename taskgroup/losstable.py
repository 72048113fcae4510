"""The loss table: what training produces and what selection reads.

One entry per trained network: its task set, its width (1.0 = the standard network,
0.5 = the paper's half-size network), the training stage (`final`, or `early` for the
Early Stopping Approximation) and its per-task losses on each split (`val`, `test`).
Also, per task, the loss of a trivial predictor (training mean or majority class) as a
reference scale. Optionally, the inter-task affinity measured while training one network of
all tasks (`affinity`, taskgroup.affinity), and, for runs trained with per-task stopping,
`task_stops`: per multi-task network and task, the whole network at the epoch where that
task's validation loss was best. A stop is a network of its own at deployment (its own trunk),
kept apart from `networks` so that a table's `networks` hold one entry per (tasks, width, stage);
selection adds them as candidates only when asked (`candidates_from_table(per_task_stopping=True)`). Stored as JSON (`losses.json` in a run directory);
the paper's tab-separated tables are read by `taskgroup.search.paper_tables`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.fileio import read_json, require, require_finite, write_json_atomic
from taskgroup.affinity import AffinityTable, check_tasks
from taskgroup.stats import sample_std
from taskgroup.task_tables import declare_from_json

KIND = "loss_table"
SCHEMA_VERSION = 1
SPLITS = ("val", "test")
STAGES = ("final", "early")
LOSS_TABLE_FILENAME = "losses.json"  # name of the table inside a run directory

Stage = Literal["final", "early"]

def resolve_table_path(path: str | Path) -> Path:
    """The loss-table file `path` names: itself, RUN/losses.json (a training run), or
    RUN/train/losses.json (a pipeline run). Checkpoint paths are relative to its folder."""
    path = Path(path)
    if not path.is_dir():
        return path
    for candidate in (path / LOSS_TABLE_FILENAME, path / "train" / LOSS_TABLE_FILENAME):
        if candidate.is_file():
            return candidate
    raise TaskgroupError(f"{path}: no {LOSS_TABLE_FILENAME} here or in {path / 'train'}; give a training run "
                         "(`taskgroup train --out RUN`), a pipeline run, or a loss-table file")


@dataclass(frozen=True)
class SeedResult:
    """One training of a network with one seed."""

    losses: dict[str, dict[str, float]]  # split -> task -> loss
    checkpoint: str | None = None  # path of the weights, relative to the table's directory
    steps: int | None = None  # optimiser steps taken
    wall_time_s: float | None = None  # training wall time
    checkpoint_sha256: str | None = None  # hash recorded when the checkpoint was committed

    def to_json(self) -> dict[str, Any]:
        doc = {"losses": self.losses, "checkpoint": self.checkpoint, "steps": self.steps,
               "wall_time_s": self.wall_time_s}
        if self.checkpoint_sha256 is not None:
            doc["checkpoint_sha256"] = self.checkpoint_sha256
        return doc


@dataclass(frozen=True)
class NetworkResult:
    tasks: tuple[str, ...]  # tasks the network was trained on (its heads)
    width: float  # width multiplier; 1.0 = standard network (1 SNT), 0.5 = half size
    stage: Stage  # "final" = full schedule; "early" = stopped early (ESA)
    losses: dict[str, dict[str, float]]  # split -> task -> loss (the mean over seeds), for every task in `tasks`
    checkpoint: str | None = None  # path of the weights, relative to the table's directory
    steps: int | None = None  # optimiser steps taken (per seed)
    wall_time_s: float | None = None  # training wall time (summed over seeds)
    fraction: float = 1.0  # fraction of the full schedule trained (ESA stage < 1.0)
    seeds: dict[int, SeedResult] = field(default_factory=dict)  # seed -> its run; empty when not recorded (old tables)
    checkpoint_sha256: str | None = None  # hash of `checkpoint` recorded by the store, when known
    stopped_for: str | None = None  # a per-task stop: the task whose best validation epoch these weights are

    @property
    def n_seeds(self) -> int:
        """How many seeds `losses` averages (1 when the table does not say)."""
        return max(1, len(self.seeds))

    def per_seed(self, split: str, task: str) -> dict[int, float]:
        """seed -> loss; a table without seeds gives its one value under seed -1."""
        if not self.seeds:
            return {-1: self.losses[split][task]}
        return {s: r.losses[split][task] for s, r in self.seeds.items() if task in r.losses.get(split, {})}

    def std(self, split: str, task: str) -> float | None:
        """Sample standard deviation over seeds (None with fewer than two)."""
        values = list(self.per_seed(split, task).values())
        return sample_std(values) if len(values) > 1 else None

    @property
    def key(self) -> tuple:
        """Identity of a network inside one table: task set, width and stage (and the task of a per-task stop)."""
        base = (frozenset(self.tasks), self.width, self.stage)
        return base if self.stopped_for is None else base + (self.stopped_for,)

    @property
    def name(self) -> str:
        return ("+".join(self.tasks) + f"@{self.width:g}" + ("" if self.stage == "final" else f"/{self.stage}")
                + ("" if self.stopped_for is None else f"/best-{self.stopped_for}"))


@dataclass
class LossTable:
    tasks: tuple[str, ...]
    networks: list[NetworkResult]
    reference_losses: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> split -> trivial loss
    meta: dict[str, Any] = field(default_factory=dict)  # provenance: preset, seed, data source, ...
    affinity: "AffinityTable | None" = None  # inter-task affinity of the run's all-task network, if measured
    task_stops: list[NetworkResult] = field(default_factory=list)  # per-task stops (each has `stopped_for`)

    def __post_init__(self) -> None:
        self.validate("<loss table>")

    def validate(self, where: object) -> None:
        if len(set(self.tasks)) != len(self.tasks):
            raise SchemaError(where, "tasks", "duplicate task names")
        if self.affinity is not None:

            check_tasks(self.tasks, self.affinity, where)
        self._validate_networks(self.networks, "networks", where)
        self._validate_networks(self.task_stops, "task_stops", where)
        for i, net in enumerate(self.networks):
            if net.stopped_for is not None:
                raise SchemaError(where, f"networks[{i}].stopped_for", "a per-task stop belongs in task_stops")
        for i, net in enumerate(self.task_stops):
            if net.stopped_for not in net.tasks:
                raise SchemaError(where, f"task_stops[{i}].stopped_for",
                                  f"expected one of the network's tasks {list(net.tasks)}, found {net.stopped_for!r}")

    def _validate_networks(self, networks: list[NetworkResult], field_name: str, where: object) -> None:
        seen: dict[tuple, int] = {}
        for i, net in enumerate(networks):
            f = f"{field_name}[{i}]"
            if not net.tasks:
                raise SchemaError(where, f + ".tasks", "empty task set")
            unknown = [t for t in net.tasks if t not in self.tasks]
            if unknown:
                raise SchemaError(where, f + ".tasks", f"unknown task(s) {unknown}; table tasks: {list(self.tasks)}")
            if len(set(net.tasks)) != len(net.tasks):
                raise SchemaError(where, f + ".tasks", "a task is listed twice")
            if not (net.width > 0 and math.isfinite(net.width)):
                raise SchemaError(where, f + ".width", f"expected a positive width, found {net.width}")
            if net.stage not in STAGES:
                raise SchemaError(where, f + ".stage", f"expected one of {STAGES}, found {net.stage!r}")
            for split, per_task in net.losses.items():
                if split not in SPLITS:
                    raise SchemaError(where, f + ".losses", f"unknown split {split!r}; expected {SPLITS}")
                for task, value in per_task.items():
                    if task not in net.tasks:
                        raise SchemaError(where, f"{f}.losses.{split}.{task}", "loss for a task the network does not have")
                    require_finite(value, f"{f}.losses.{split}.{task}", where, minimum=0.0)
            if net.key in seen:
                raise SchemaError(where, f, f"duplicate network {net.name} (same as {field_name}[{seen[net.key]}])")
            seen[net.key] = i

    def for_seed(self, seed: int) -> "LossTable":
        """The table as one seed saw it: each network's losses and checkpoint from that seed's run
        (networks not trained with that seed are left out)."""
        def one(nets: list[NetworkResult]) -> list[NetworkResult]:
            return [dataclasses.replace(n, losses=n.seeds[seed].losses, checkpoint=n.seeds[seed].checkpoint,
                                        steps=n.seeds[seed].steps, wall_time_s=n.seeds[seed].wall_time_s,
                                        checkpoint_sha256=n.seeds[seed].checkpoint_sha256, seeds={seed: n.seeds[seed]})
                    for n in nets if seed in n.seeds]

        affinity = None
        if self.affinity is not None and any(r.seed == seed for r in self.affinity.runs):
            affinity = dataclasses.replace(self.affinity, runs=[r for r in self.affinity.runs if r.seed == seed])
        return LossTable(self.tasks, one(self.networks), self.reference_losses, dict(self.meta, seed=seed), affinity,
                         one(self.task_stops))

    def with_stage(self, stage: Stage) -> "LossTable":
        """The sub-table of one training stage (e.g. `early` for ESA selection)."""
        nets = [n for n in self.networks if n.stage == stage]
        return LossTable(self.tasks, nets, self.reference_losses, dict(self.meta, stage=stage), self.affinity,
                         [n for n in self.task_stops if n.stage == stage])

    def to_json(self) -> dict[str, Any]:
        multi_seed = len(self.seed_values()) > 1
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": KIND,
            "tasks": list(self.tasks),
            "reference_losses": self.reference_losses,
            "meta": self.meta,
            "networks": [self._network_json(n, multi_seed) for n in self.networks],
        }
        if self.affinity is not None:  # tables without one keep the layout they always had
            doc["affinity"] = self.affinity.to_json()
        if self.task_stops:
            doc["task_stops"] = [self._network_json(n, multi_seed) for n in self.task_stops]
        return doc

    def seed_values(self) -> list[int]:
        """Every seed any network of the table was trained with, ascending (empty if not recorded)."""
        return sorted({s for n in self.networks for s in n.seeds})

    @staticmethod
    def _network_json(n: NetworkResult, multi_seed: bool) -> dict[str, Any]:
        doc = {"tasks": list(n.tasks), "width": n.width, "stage": n.stage, "fraction": n.fraction,
               "losses": n.losses, "checkpoint": n.checkpoint, "steps": n.steps, "wall_time_s": n.wall_time_s}
        if n.stopped_for is not None:
            doc["stopped_for"] = n.stopped_for
        if multi_seed:  # a one-seed table keeps the layout it always had
            doc["n_seeds"] = len(n.seeds)
            doc["loss_std"] = {split: {t: n.std(split, t) for t in per_task} for split, per_task in n.losses.items()}
            doc["checkpoint_sha256"] = n.checkpoint_sha256
            doc["seeds"] = {str(seed): r.to_json() for seed, r in n.seeds.items()}
        return doc

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "LossTable":
        """Read a loss-table JSON file, or the table of a training run or pipeline run directory."""
        path = resolve_table_path(path)
        doc = read_json(path, KIND, (SCHEMA_VERSION,))
        return cls.from_json(doc, path)

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: object = "loss table") -> "LossTable":
        """The table's one reader (`to_json` is its one writer): kind, schema version and every value checked."""
        if doc.get("kind") != KIND:
            raise SchemaError(where, "kind", f"expected '{KIND}', found {doc.get('kind')!r}")
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise SchemaError(where, "schema_version", f"unsupported version {doc.get('schema_version')!r}; "
                                                       f"supported: [{SCHEMA_VERSION}]")
        tasks = require(doc, "tasks", list, where)
        if not all(isinstance(t, str) for t in tasks):
            raise SchemaError(where, "tasks", "expected a list of task names")
        networks = cls._networks_from_json(require(doc, "networks", list, where), "networks", where)
        stops = doc.get("task_stops") or []
        if not isinstance(stops, list):
            raise SchemaError(where, "task_stops", f"expected a list, found {type(stops).__name__}")
        task_stops = cls._networks_from_json(stops, "task_stops", where)
        reference = doc.get("reference_losses") or {}
        if not isinstance(reference, dict):
            raise SchemaError(where, "reference_losses", "expected an object task -> split -> loss")
        for task, per_split in reference.items():
            if not isinstance(per_split, dict):
                raise SchemaError(where, f"reference_losses.{task}", "expected an object split -> loss")
            for split, value in per_split.items():
                require_finite(value, f"reference_losses.{task}.{split}", where, minimum=0.0)
        table = cls.__new__(cls)
        table.tasks = tuple(tasks)
        table.networks = networks
        table.task_stops = task_stops
        table.reference_losses = reference
        meta = doc.get("meta") or {}
        if not isinstance(meta, dict):
            raise SchemaError(where, "meta", f"expected an object, found {type(meta).__name__}")
        status = meta.get("status")
        if status is not None and not isinstance(status, dict):
            raise SchemaError(where, "meta.status", f"expected an object, found {type(status).__name__}")
        table.meta = meta
        table.affinity = None
        if doc.get("affinity") is not None:

            table.affinity = AffinityTable.from_json(doc["affinity"], where)
        table.validate(where)
        run = meta.get("run_config")
        if isinstance(run, dict) and run.get("declared_tasks"):  # tasks of the run's own [tasks.NAME] tables

            declare_from_json(run["declared_tasks"], f"{where}: meta.run_config.declared_tasks")
        return table

    @staticmethod
    def _networks_from_json(raws: list, field_name: str, where: object) -> list[NetworkResult]:
        networks = []
        for i, raw in enumerate(raws):
            f = f"{field_name}[{i}]"
            if not isinstance(raw, dict):
                raise SchemaError(where, f, "expected an object")
            net_tasks = require(raw, "tasks", list, f"{where}: {f}")
            losses = require(raw, "losses", dict, f"{where}: {f}")
            for split, per_task in losses.items():
                if not isinstance(per_task, dict):
                    raise SchemaError(where, f"{f}.losses.{split}", "expected an object task -> loss")
            checkpoint = raw.get("checkpoint")
            if checkpoint is not None and not isinstance(checkpoint, str):
                raise SchemaError(where, f + ".checkpoint", f"expected a path or null, found {type(checkpoint).__name__}")
            steps = raw.get("steps")
            if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
                raise SchemaError(where, f + ".steps", f"expected a non-negative integer or null, found {steps!r}")
            wall = raw.get("wall_time_s")
            fraction = require_finite(raw.get("fraction", 1.0), f + ".fraction", where, minimum=0.0)
            if not 0 < fraction <= 1:
                raise SchemaError(where, f + ".fraction", f"expected a fraction of the schedule in (0, 1], found {fraction}")
            seeds = _parse_seeds(raw.get("seeds"), f, where)
            stopped_for = raw.get("stopped_for")
            if stopped_for is not None and not isinstance(stopped_for, str):
                raise SchemaError(where, f + ".stopped_for", f"expected a task name, found {type(stopped_for).__name__}")
            sha = raw.get("checkpoint_sha256")
            if sha is not None and not isinstance(sha, str):
                raise SchemaError(where, f + ".checkpoint_sha256", f"expected a hex string or null, found {type(sha).__name__}")
            networks.append(NetworkResult(
                seeds=seeds, checkpoint_sha256=sha,
                tasks=tuple(net_tasks),
                width=require_finite(require(raw, "width", (int, float), f"{where}: {f}"), f + ".width", where),
                stage=require(raw, "stage", str, f"{where}: {f}"),
                losses={s: dict(v) for s, v in losses.items()},
                checkpoint=checkpoint,
                steps=steps,
                wall_time_s=None if wall is None else require_finite(wall, f + ".wall_time_s", where, minimum=0.0),
                fraction=fraction, stopped_for=stopped_for,
            ))
        return networks


def _parse_seeds(raw: Any, f: str, where: object) -> dict[int, SeedResult]:
    """The per-seed runs of one network entry (absent in one-seed tables)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SchemaError(where, f + ".seeds", f"expected an object seed -> run, found {type(raw).__name__}")
    out: dict[int, SeedResult] = {}
    for key, run in raw.items():
        g = f"{f}.seeds.{key}"
        try:
            seed = int(key)
        except ValueError:
            raise SchemaError(where, g, "a seed must be an integer") from None
        if not isinstance(run, dict):
            raise SchemaError(where, g, "expected an object")
        losses = require(run, "losses", dict, f"{where}: {g}")
        for split, per_task in losses.items():
            if split not in SPLITS or not isinstance(per_task, dict):
                raise SchemaError(where, f"{g}.losses.{split}", f"expected a split in {SPLITS} -> task -> loss")
            for task, value in per_task.items():
                require_finite(value, f"{g}.losses.{split}.{task}", where, minimum=0.0)
        ckpt, steps, wall = run.get("checkpoint"), run.get("steps"), run.get("wall_time_s")
        if ckpt is not None and not isinstance(ckpt, str):
            raise SchemaError(where, g + ".checkpoint", "expected a path or null")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
            raise SchemaError(where, g + ".steps", f"expected a non-negative integer or null, found {steps!r}")
        sha = run.get("checkpoint_sha256")
        out[seed] = SeedResult({s: dict(v) for s, v in losses.items()}, ckpt, steps,
                               None if wall is None else require_finite(wall, g + ".wall_time_s", where, minimum=0.0),
                               sha if isinstance(sha, str) else None)
    return dict(sorted(out.items()))
