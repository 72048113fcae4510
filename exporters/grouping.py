"""Read a grouping file (best.json, written by `taskgroup select`) defensively.

Field names follow the writer (taskgroup.search.select): per network `tasks` (trained) and
`served`; the spellings `tasks_trained` / `tasks_served` are accepted as well. Checkpoint
paths are relative to the grouping file's folder.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.fileio import read_json, require
from taskgroup.tasks import get_task

GROUPING_KIND = "grouping"


@dataclass(frozen=True)
class GroupingNetwork:
    index: int  # position in the grouping's network list
    tasks_trained: tuple[str, ...]  # heads the checkpoint has
    tasks_served: tuple[str, ...]  # heads kept at deployment
    width: float  # width multiplier
    stage: str  # "final" or "early"
    checkpoint: Path | None  # absolute path, or None for a network that was only estimated
    cost: float | None  # its cost in the budget's unit (ms on a profile, or SNT); positive
    checkpoint_sha256: str | None = None  # the checkpoint's digest, if the grouping records it (export also asks the run's store)


@dataclass(frozen=True)
class Grouping:
    path: Path  # the file read
    tasks: tuple[str, ...]  # every task the grouping serves
    budget: dict[str, Any]  # {"value", "unit", "profile"?}
    networks: tuple[GroupingNetwork, ...]
    served_by: dict[str, int]  # task -> network index
    objective: float | None  # predicted total loss
    raw: dict[str, Any]  # the whole document

    @property
    def unit(self) -> str:
        return str(self.budget.get("unit", "snt"))

    @property
    def options(self) -> dict[str, Any]:
        """How it was selected (loss table, split, stage, ...; preset and resolution of the training run)."""
        opts = self.raw.get("options")
        return opts if isinstance(opts, dict) else {}

    @property
    def profile(self) -> str | None:
        p = self.budget.get("profile") or self.raw.get("profile") or self.options.get("profile")
        return str(p) if p else None


def _task_list(doc: dict, names: tuple[str, ...], where: str, path: Path) -> tuple[str, ...]:
    for n in names:
        if n in doc:
            value = doc[n]
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise SchemaError(path, where + n, "expected a list of task names")
            if len(set(value)) != len(value):
                raise SchemaError(path, where + n, f"lists a task twice: {value}")
            for t in value:
                try:
                    get_task(t)
                except TaskgroupError as exc:
                    raise SchemaError(path, where + n, str(exc)) from None
            return tuple(value)
    raise SchemaError(path, where + names[0], "missing")


def read_grouping(path: str | os.PathLike) -> Grouping:
    path = Path(path)
    doc = read_json(path, GROUPING_KIND, (1,))
    if doc.get("declared_tasks"):  # tasks declared in the training config ([tasks.NAME])
        from taskgroup.task_tables import declare_from_json

        declare_from_json(doc["declared_tasks"], f"{path}: declared_tasks")
    tasks = _task_list(doc, ("tasks",), "", path)
    budget = require(doc, "budget", dict, path)
    unit = budget.get("unit")
    if unit not in ("snt", "ms"):
        raise SchemaError(path, "budget.unit", f"expected 'snt' or 'ms', found {unit!r}")
    try:  # parts of it are copied into the bundle manifest, which never holds NaN or infinity
        json.dumps(budget, allow_nan=False)
    except ValueError:
        raise SchemaError(path, "budget", "contains NaN or infinity") from None
    value = budget.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                              or value <= 0):
        raise SchemaError(path, "budget.value", f"expected a positive finite number or null, found {value!r}")
    nets = []
    for i, net in enumerate(require(doc, "networks", list, path)):
        where = f"networks[{i}]."
        if not isinstance(net, dict):
            raise SchemaError(path, f"networks[{i}]", "expected an object")
        trained = _task_list(net, ("tasks", "tasks_trained"), where, path)
        served = _task_list(net, ("served", "tasks_served"), where, path)
        if not served:
            raise SchemaError(path, where + "served", "a chosen network serves no task")
        if not set(served) <= set(trained):
            raise SchemaError(path, where + "served", f"serves {sorted(set(served) - set(trained))} it was not trained on")
        width = net.get("width", 1.0)
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
            raise SchemaError(path, where + "width", f"expected a number in (0, 4], found {width!r}")
        ckpt = net.get("checkpoint")
        if ckpt is not None and not isinstance(ckpt, str):
            raise SchemaError(path, where + "checkpoint", f"expected a path string or null, found {type(ckpt).__name__}")
        cost = net.get("cost")
        # A network's cost is a latency (or a fraction of one network): zero or less would record a
        # negative predicted latency in the bundle and make every comparison with it meaningless.
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost)
                                 or cost <= 0):
            raise SchemaError(path, where + "cost", f"expected a positive finite number or null, found {cost!r}")
        digest = net.get("checkpoint_sha256")
        if digest is not None and not (isinstance(digest, str) and len(digest) == 64
                                       and all(c in "0123456789abcdef" for c in digest)):
            raise SchemaError(path, where + "checkpoint_sha256", f"expected 64 lowercase hex digits or null, found {digest!r}")
        nets.append(GroupingNetwork(i, trained, served, float(width), str(net.get("stage", "final")),
                                    (path.parent / ckpt).resolve() if ckpt else None,
                                    float(cost) if cost is not None else None, digest))
    if not nets:
        raise SchemaError(path, "networks", "the grouping has no networks")
    served_by = require(doc, "served_by", dict, path)
    for t in tasks:
        idx = served_by.get(t)
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < len(nets):
            raise SchemaError(path, f"served_by.{t}", f"expected a network index in 0..{len(nets) - 1}, found {idx!r}")
        if t not in nets[idx].tasks_served:
            raise SchemaError(path, f"served_by.{t}", f"network {idx} does not list '{t}' among the tasks it serves")
    # Each task is served by exactly one network: overlapping or extra served tasks would make the
    # bundle's task -> network mapping depend on file order.
    seen: dict[str, int] = {}
    for net in nets:
        for t in net.tasks_served:
            if t not in tasks:
                raise SchemaError(path, f"networks[{net.index}].served", f"serves '{t}', which is not in 'tasks'")
            if t in seen:
                raise SchemaError(path, f"networks[{net.index}].served",
                                  f"'{t}' is also served by network {seen[t]}; each task is served by one network")
            seen[t] = net.index
    factor = doc.get("corun_factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 <= factor < math.inf:
        raise SchemaError(path, "corun_factor", f"expected a finite number >= 1, found {factor!r}")
    costs = [n.cost for n in nets if n.cost is not None]
    if not math.isfinite(sum(costs) * factor):
        raise SchemaError(path, "networks", "the networks' costs add up to infinity")
    objective = doc.get("objective")
    if objective is not None and (isinstance(objective, bool) or not isinstance(objective, (int, float))
                                  or not math.isfinite(objective)):
        raise SchemaError(path, "objective", f"expected a finite number or null, found {objective!r}")
    return Grouping(path, tasks, budget, tuple(nets), {t: served_by[t] for t in tasks},
                    float(objective) if objective is not None else None, doc)
