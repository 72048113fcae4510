"""Candidates from a training run's loss table: the measured networks, plus an estimator's.

Where measured losses meet the estimators (taskgroup.search.registry): the estimators are
looked up by name here, so the modules that define them depend on the candidates, never the
other way round.
"""

from __future__ import annotations

import dataclasses
from typing import Union

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import SPLITS, STAGES, LossTable
from taskgroup.search.candidates import Candidate, CostFn, Estimator, make_candidate, snt_cost
from taskgroup.search.pool import validate_candidates
from taskgroup.search.registry import get_estimator


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
