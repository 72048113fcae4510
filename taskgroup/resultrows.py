"""A training run's committed results as typed rows, and the loss table built from them.

Training commits one `ResultRow` per (network, seed, stage) to the run's store
(taskgroup.train.store, which serialises it); the store reads them back as `CommittedResult`s
(the row with its network and seed) and `CommittedStop`s (per-task stops). `loss_table_from_rows`
turns those into the loss table selection reads: one entry per (network, stage), its losses the
mean over seeds (`aggregate_seeds`), per-task stops likewise. This is the loss table's side of
the store, so the store holds storage only and these rules sit next to the table they build.
Standard library only (`taskgroup results` runs without torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from taskgroup.affinity import AffinityRun, AffinityTable
from taskgroup.losstable import SPLITS, LossTable, NetworkResult, SeedResult, Stage

Losses = dict[str, dict[str, float]]  # split -> task -> loss, in the dataset's units


@dataclass(frozen=True)
class TaskStopRow:
    """Per-task stopping: the network at the epoch where one task's validation loss was best."""

    task: str  # the task whose validation loss chose the epoch
    epoch: float  # that epoch
    losses: Losses  # every task's losses with those weights
    checkpoint: str  # relative to the run directory (the stage's own checkpoint when it is the same epoch)
    checkpoint_sha256: str | None = None  # computed by the store at commit; set on rows read back


@dataclass(frozen=True)
class LossWeights:
    """The loss weights a network was trained with, at its kept weights (taskgroup.train.weighting)."""

    weighting: str  # the `[train] weighting` (never "none": the plain sum records nothing)
    multipliers: dict[str, float]  # what each task's loss was multiplied by
    log_variance: dict[str, float] | None = None  # learned weightings: each task's log-variance
    per_epoch: list[dict[str, float]] | None = None  # learned weightings: the multipliers at the end of each epoch

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any] | None) -> "LossWeights | None":
        """The record of a weighting's snapshot (`LossWeighting.snapshot`, as training returns it)."""
        if not snapshot:
            return None
        return cls(snapshot["weighting"], dict(snapshot["multipliers"]), snapshot.get("log_variance"),
                   snapshot.get("per_epoch"))

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"weighting": self.weighting, "multipliers": self.multipliers}
        if self.log_variance is not None:
            doc["log_variance"] = self.log_variance
        if self.per_epoch is not None:
            doc["per_epoch"] = self.per_epoch
        return doc


@dataclass(frozen=True)
class ResultRow:
    """What training commits for one stage of one network and seed (the store adds which ones)."""

    stage: Stage  # "final" or "early" (ESA)
    fraction: float  # fraction of the full schedule trained
    best_epoch: float  # epoch of the kept (best-on-validation) weights
    steps: int  # optimiser steps taken
    wall_time_s: float  # training wall time up to this stage
    losses: Losses  # losses of the kept weights
    checkpoint: str  # the kept weights, relative to the run directory
    checkpoint_sha256: str | None = None  # computed by the store at commit; set on rows read back
    affinity: AffinityRun | None = None  # inter-task affinity measured up to this stage (the affinity network)
    loss_weights: LossWeights | None = None  # the loss weights at the kept weights; None: the plain sum
    task_stops: tuple[TaskStopRow, ...] = ()  # per-task stopping (final stage of a multi-task network)


@dataclass(frozen=True)
class CommittedResult:
    """A committed result row as read back, with the network and seed it belongs to."""

    name: str  # the network's name (CandidateSpec.name)
    tasks: tuple[str, ...]  # the network's tasks, in the run's order
    width: float
    seed: int
    row: ResultRow


@dataclass(frozen=True)
class CommittedStop:
    """A committed per-task stop as read back, with its network, seed and stage."""

    name: str
    tasks: tuple[str, ...]
    width: float
    seed: int
    stage: Stage
    stop: TaskStopRow


def aggregate_seeds(tasks: tuple[str, ...], width: float, stage: Stage, fraction: float,
                    runs: dict[int, SeedResult], stopped_for: str | None = None) -> NetworkResult:
    """One table entry from a network's runs with several seeds: losses are the mean over seeds
    (per split and task, over the seeds that have it), wall time the sum, and the checkpoint the
    one of the seed with the lowest validation total (the weights a deployment would pick)."""
    if not runs:
        raise ValueError("aggregate_seeds needs at least one run")
    losses: dict[str, dict[str, float]] = {}
    for split in SPLITS:
        for task in tasks:
            values = [r.losses[split][task] for r in runs.values() if task in r.losses.get(split, {})]
            if values:
                losses.setdefault(split, {})[task] = math.fsum(values) / len(values)

    def val_total(seed: int) -> float:
        val = runs[seed].losses.get("val", {})
        return math.fsum(val.values()) if len(val) == len(tasks) else math.inf

    best = min(sorted(runs), key=val_total)
    walls = [r.wall_time_s for r in runs.values()]
    return NetworkResult(
        tasks=tuple(tasks), width=width, stage=stage, losses=losses, checkpoint=runs[best].checkpoint,
        steps=runs[best].steps, wall_time_s=None if any(w is None for w in walls) else math.fsum(walls),
        fraction=fraction, seeds=dict(sorted(runs.items())),
        checkpoint_sha256=runs[best].checkpoint_sha256, stopped_for=stopped_for)


@dataclass
class _Entry:
    """The runs of one (network, stage) gathered before they are aggregated."""

    tasks: tuple[str, ...]
    width: float
    stage: Stage
    fraction: float
    runs: dict[int, SeedResult]
    own: bool = False  # a per-task stop with a checkpoint of its own in some seed


def loss_table_from_rows(tasks: Sequence[str], results: Sequence[CommittedResult], stops: Sequence[CommittedStop],
                         reference: dict[str, dict[str, float]], meta: dict[str, Any],
                         affinity: AffinityTable | None) -> LossTable:
    """The loss table of a run: one entry per (network, stage) in the order of `results`, aggregated
    over its seeds; one per (network, stage, task) stop, aggregated the same way. A stop that is the
    stage's own weights in every seed is the network itself and is left out; a stop whose stage's
    result is not among `results` (dropped as damaged) is left out with it."""
    grouped: dict[tuple[str, str], _Entry] = {}
    for c in results:
        r = c.row
        entry = grouped.setdefault((c.name, r.stage), _Entry(c.tasks, c.width, r.stage, r.fraction, {}))
        entry.runs[c.seed] = SeedResult(r.losses, r.checkpoint, r.steps, r.wall_time_s, r.checkpoint_sha256)
    networks = [aggregate_seeds(e.tasks, e.width, e.stage, e.fraction, e.runs) for e in grouped.values()]

    by_stop: dict[tuple[str, str, str], _Entry] = {}
    for c in stops:
        parent = grouped.get((c.name, c.stage))
        if parent is None or c.seed not in parent.runs:
            continue  # the stage's result was dropped (damaged): so is its stop
        entry = by_stop.setdefault((c.name, c.stage, c.stop.task),
                                   _Entry(parent.tasks, parent.width, parent.stage, parent.fraction, {}))
        kept = parent.runs[c.seed]
        entry.runs[c.seed] = SeedResult(c.stop.losses, c.stop.checkpoint, kept.steps, None, c.stop.checkpoint_sha256)
        entry.own |= c.stop.checkpoint != kept.checkpoint
    task_stops = [aggregate_seeds(e.tasks, e.width, e.stage, e.fraction, e.runs, stopped_for=task)
                  for (_, _, task), e in by_stop.items() if e.own]
    return LossTable(tuple(tasks), networks, reference, meta, affinity, task_stops)
