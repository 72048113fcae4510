"""Candidate networks for the grouping search, and how they are built from a loss table.

A candidate is one network the search may choose: the tasks it was trained on, its width,
the loss it achieves on each task it can serve, and its inference cost. Cost is additive:
`fixed_cost` (the trunk) plus `head_costs[t]` for every task the network *serves* (the
heads of auxiliary tasks are dropped at deployment). In SNT units (standard network time)
the fixed cost is the width (full = 1, half = 0.5) and heads cost nothing; a device profile
supplies measured costs through a `CostFn`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence, Union

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import SPLITS, STAGES, LossTable

# cost_fn(width, tasks) -> (fixed_cost, {task: head_cost}); tasks are the network's trained tasks.
CostFn = Callable[[float, tuple[str, ...]], tuple[float, Mapping[str, float]]]


def snt_cost(width: float, tasks: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    """The paper's cost model: a network costs its width in standard-network times; heads are free."""
    return float(width), {t: 0.0 for t in tasks}


@dataclass(frozen=True)
class Candidate:
    tasks: tuple[str, ...]  # tasks the network is trained on (in table task order)
    width: float  # width multiplier: 1.0 = standard network, 0.5 = half size
    losses: Mapping[str, float]  # task -> loss on the selection split; only tasks it can serve
    fixed_cost: float  # cost of running the network at all (its trunk), in the budget's unit
    head_costs: Mapping[str, float] = field(default_factory=dict)  # task -> extra cost of serving it
    stage: str = "final"  # training stage the losses come from ("final", or "early" for ESA)
    checkpoint: str | None = None  # weights path relative to the loss table's directory; None if absent
    estimated: bool = False  # True if the losses were estimated (e.g. HOA), not measured
    stopped_for: str | None = None  # a per-task stop: the network at the epoch where this task's val loss was best

    @property
    def name(self) -> str:
        return ("+".join(self.tasks) + f"@{self.width:g}" + ("~est" if self.estimated else "")
                + ("" if self.stopped_for is None else f"/best-{self.stopped_for}"))

    @property
    def key(self) -> tuple:
        """Identity across tables (validation vs test, early vs final): task set and width (and the
        task of a per-task stop, which is another network than the one stopping point)."""
        base = (frozenset(self.tasks), self.width)
        return base if self.stopped_for is None else base + (self.stopped_for,)

    def head_cost(self, task: str) -> float:
        return float(self.head_costs.get(task, 0.0))

    def cost(self, served: Iterable[str]) -> float:
        """Inference cost when the network serves `served` (its other heads are dropped)."""
        return self.fixed_cost + sum(self.head_cost(t) for t in served)


def validate_candidates(candidates: Sequence[Candidate], tasks: Sequence[str]) -> None:
    """Check numbers and names before a search; a bad candidate is a user error, not a crash.

    Of a pool (taskgroup.search.pool), the listed candidates are checked one by one; its families'
    networks are means of listed pair losses and cost what the family's checked costs say."""
    from taskgroup.search.pool import families, listed

    if not tasks:
        raise TaskgroupError("no tasks to serve")
    known = set(tasks)
    for f in families(candidates):
        unknown = [t for t in f.tasks if t not in known]
        if unknown:
            raise TaskgroupError(f"estimated networks at width {f.width:g}: unknown task(s) {unknown}; "
                                 f"tasks: {list(tasks)}")
    candidates = listed(candidates)
    seen: dict[tuple, str] = {}
    for c in candidates:
        unknown = [t for t in c.tasks if t not in known]
        if unknown:
            raise TaskgroupError(f"candidate {c.name}: unknown task(s) {unknown}; tasks: {list(tasks)}")
        for t, v in c.losses.items():
            if t not in c.tasks:
                raise TaskgroupError(f"candidate {c.name}: loss for task '{t}' it is not trained on")
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise TaskgroupError(f"candidate {c.name}: loss of '{t}' must be a finite number >= 0, found {v}")
        for what, v in [("fixed cost", c.fixed_cost), *((f"head cost of '{t}'", h) for t, h in c.head_costs.items())]:
            if not (math.isfinite(v) and v >= 0):
                raise TaskgroupError(f"candidate {c.name}: {what} must be a finite number >= 0, found {v}")
        k = (frozenset(c.tasks), c.width, c.stage, c.stopped_for)
        if k in seen:
            raise TaskgroupError(f"duplicate candidate network {c.name}")
        seen[k] = c.name


def candidates_from_table(
    table: LossTable,
    split: str = "val",
    stage: str = "final",
    cost_fn: CostFn | None = None,
    estimate: Union[str, "Estimator", None] = None,
    per_task_stopping: bool = False,
) -> list[Candidate]:
    """Candidates of one training stage, with losses from one split and costs from `cost_fn`.

    `estimate` names an estimator (see `taskgroup.search.estimate.ESTIMATORS`, e.g. "hoa", or
    "tag"/"cosine" for a table with an affinity table) or is a callable; it replaces or adds
    candidates whose losses are estimated, not measured.
    `per_task_stopping` adds the table's per-task stops (a run trained with `[train]
    per_task_stopping`) after any estimation: each is the whole network at one task's best
    validation epoch, a candidate of its own with its own trunk cost, so serving two tasks of one
    network from two epochs costs two networks.
    A network without a loss for a task on `split` cannot serve that task.
    """
    from taskgroup.search.estimate import get_estimator

    if split not in SPLITS:
        raise TaskgroupError(f"unknown split '{split}'; expected one of {', '.join(SPLITS)}")
    if stage not in STAGES:
        raise TaskgroupError(f"unknown stage '{stage}'; expected one of {', '.join(STAGES)}")
    cost_fn = cost_fn or snt_cost
    order = {t: i for i, t in enumerate(table.tasks)}
    # What gets deployed is a fully trained network: an early (ESA) candidate points at the final
    # checkpoint of the same network when the table has one, and at none otherwise (export refuses it).
    final_checkpoints = {(frozenset(n.tasks), round(n.width, 9)): n.checkpoint
                         for n in table.networks if n.stage == "final"}
    out = []
    for net in table.networks:
        if net.stage != stage:
            continue
        tasks = tuple(sorted(net.tasks, key=order.__getitem__))
        losses = {t: float(v) for t, v in net.losses.get(split, {}).items()}
        if not losses:
            continue  # never evaluated on this split: nothing it can serve
        checkpoint = net.checkpoint if stage == "final" else final_checkpoints.get((frozenset(net.tasks), round(net.width, 9)))
        out.append(make_candidate(tasks, net.width, losses, cost_fn, stage=stage, checkpoint=checkpoint))
    if not out:
        raise TaskgroupError(f"the loss table has no '{stage}' networks with losses on split '{split}'")
    if estimate is not None:
        est = get_estimator(estimate)
        out = est(out, cost_fn, table=table, split=split) if getattr(est, "uses_table", False) else est(out, cost_fn)
    if per_task_stopping:
        recorded = ((table.meta.get("run_config") or {}).get("train") or {}).get("per_task_stopping")
        if not table.task_stops and not recorded:
            raise TaskgroupError("the loss table has no per-task stops: train with [train] per_task_stopping = true")
        stops = []
        for net in table.task_stops:
            losses = {t: float(v) for t, v in net.losses.get(split, {}).items()}
            if net.stage != stage or not losses:
                continue
            stops.append(dataclasses.replace(
                make_candidate(tuple(sorted(net.tasks, key=order.__getitem__)), net.width, losses, cost_fn,
                               stage=stage, checkpoint=net.checkpoint), stopped_for=net.stopped_for))
        out = out + stops  # a list, or an estimator's pool (taskgroup.search.pool) with the stops listed last
    validate_candidates(out, table.tasks)
    return out



def make_candidate(tasks: tuple[str, ...], width: float, losses: Mapping[str, float], cost_fn: CostFn,
                   stage: str = "final", checkpoint: str | None = None, estimated: bool = False) -> Candidate:
    """Build a candidate, asking `cost_fn` for its fixed and per-head costs."""
    fixed, heads = cost_fn(width, tasks)
    return Candidate(tasks=tasks, width=width, losses=dict(losses), fixed_cost=float(fixed),
                     head_costs={t: float(heads.get(t, 0.0)) for t in tasks}, stage=stage,
                     checkpoint=checkpoint, estimated=estimated)


# An estimator maps measured candidates to the candidate list to search (see estimate.py).
Estimator = Callable[[list[Candidate], CostFn], list[Candidate]]
