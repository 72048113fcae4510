"""The loss table: what training produces and what selection reads.

One entry per trained network: its task set, its width (1.0 = the standard network,
0.5 = the paper's half-size network), the training stage (`final`, or `early` for the
Early Stopping Approximation) and its per-task losses on each split (`val`, `test`).
Also, per task, the loss of a trivial predictor (training mean or majority class) as a
reference scale. Stored as JSON (`losses.json` in a run directory); the paper's
tab-separated tables are read by `taskgroup.search.paper_tables`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.fileio import read_json, require, require_finite, write_json_atomic

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
class NetworkResult:
    tasks: tuple[str, ...]  # tasks the network was trained on (its heads)
    width: float  # width multiplier; 1.0 = standard network (1 SNT), 0.5 = half size
    stage: Stage  # "final" = full schedule; "early" = stopped early (ESA)
    losses: dict[str, dict[str, float]]  # split -> task -> loss, for every task in `tasks`
    checkpoint: str | None = None  # path of the weights, relative to the table's directory
    steps: int | None = None  # optimiser steps taken
    wall_time_s: float | None = None  # training wall time
    fraction: float = 1.0  # fraction of the full schedule trained (ESA stage < 1.0)

    @property
    def key(self) -> tuple[frozenset[str], float, str]:
        """Identity of a network inside one table: task set, width and stage."""
        return (frozenset(self.tasks), self.width, self.stage)

    @property
    def name(self) -> str:
        return "+".join(self.tasks) + f"@{self.width:g}" + ("" if self.stage == "final" else f"/{self.stage}")


@dataclass
class LossTable:
    tasks: tuple[str, ...]
    networks: list[NetworkResult]
    reference_losses: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> split -> trivial loss
    meta: dict[str, Any] = field(default_factory=dict)  # provenance: preset, seed, data source, ...

    def __post_init__(self) -> None:
        self.validate("<loss table>")

    def validate(self, where: object) -> None:
        if len(set(self.tasks)) != len(self.tasks):
            raise SchemaError(where, "tasks", "duplicate task names")
        seen: dict[tuple, int] = {}
        for i, net in enumerate(self.networks):
            f = f"networks[{i}]"
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
                raise SchemaError(where, f, f"duplicate network {net.name} (same as networks[{seen[net.key]}])")
            seen[net.key] = i

    def with_stage(self, stage: Stage) -> "LossTable":
        """The sub-table of one training stage (e.g. `early` for ESA selection)."""
        nets = [n for n in self.networks if n.stage == stage]
        return LossTable(self.tasks, nets, self.reference_losses, dict(self.meta, stage=stage))

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": KIND,
            "tasks": list(self.tasks),
            "reference_losses": self.reference_losses,
            "meta": self.meta,
            "networks": [
                {
                    "tasks": list(n.tasks),
                    "width": n.width,
                    "stage": n.stage,
                    "fraction": n.fraction,
                    "losses": n.losses,
                    "checkpoint": n.checkpoint,
                    "steps": n.steps,
                    "wall_time_s": n.wall_time_s,
                }
                for n in self.networks
            ],
        }

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "LossTable":
        """Read a loss-table JSON file, or the table of a training run or pipeline run directory."""
        path = resolve_table_path(path)
        doc = read_json(path, KIND, (SCHEMA_VERSION,))
        return cls.from_json(doc, path)

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: object) -> "LossTable":
        tasks = require(doc, "tasks", list, where)
        if not all(isinstance(t, str) for t in tasks):
            raise SchemaError(where, "tasks", "expected a list of task names")
        networks = []
        for i, raw in enumerate(require(doc, "networks", list, where)):
            f = f"networks[{i}]"
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
            networks.append(NetworkResult(
                tasks=tuple(net_tasks),
                width=require_finite(require(raw, "width", (int, float), f"{where}: {f}"), f + ".width", where),
                stage=require(raw, "stage", str, f"{where}: {f}"),
                losses={s: dict(v) for s, v in losses.items()},
                checkpoint=checkpoint,
                steps=steps,
                wall_time_s=None if wall is None else require_finite(wall, f + ".wall_time_s", where, minimum=0.0),
                fraction=fraction,
            ))
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
        table.reference_losses = reference
        meta = doc.get("meta") or {}
        if not isinstance(meta, dict):
            raise SchemaError(where, "meta", f"expected an object, found {type(meta).__name__}")
        status = meta.get("status")
        if status is not None and not isinstance(status, dict):
            raise SchemaError(where, "meta.status", f"expected an object, found {type(status).__name__}")
        table.meta = meta
        table.validate(where)
        run = meta.get("run_config")
        if isinstance(run, dict) and run.get("declared_tasks"):  # tasks of the run's own [tasks.NAME] tables
            from taskgroup.task_tables import declare_from_json

            declare_from_json(run["declared_tasks"], f"{where}: meta.run_config.declared_tasks")
        return table
