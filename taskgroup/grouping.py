"""The grouping (best.json): which networks to ship, what each serves, and what it was chosen under.

`taskgroup select` and the pipeline write it (`Selection.to_grouping` builds one); export, the
pipeline and the report read it. One dataclass, one reader, one writer: the network fields
are `tasks` (trained: the checkpoint's heads) and `served` (kept at deployment) everywhere;
the spellings `tasks_trained` / `tasks_served` of hand-written files are read as well.
Checkpoint paths are relative to the grouping file's folder.

The budget (`Budget`, with the profile's `BackendSettings`) and how the grouping was selected
(`SelectionOptions`) are typed records; each keeps the fields it does not know in its own `extra`,
so a newer writer's additions survive a round trip. What selection records beyond the contract
(the solver and its proof, robustness to latency noise, the within-noise rule, top-k re-ranking,
the stakes, warnings) are typed records too (`taskgroup.grouping_records`); only top-level fields
no reader knows are kept verbatim in `Grouping.extra`. Those fields keep the order they were read
in, so a grouping read and written again is the same file, byte for byte.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from taskgroup_runtime.provenance import BackendSettings
from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.fileio import read_json, require, require_number, write_json_atomic
from taskgroup.grouping_records import (RECORD_KEYS, EstimateError, ExcludedByNoise, ParsimonyRecord, RobustnessRecord,
                                        SolveRecord, StakesRecord, TopK, records_from_json)
from taskgroup.tasks import get_task
from taskgroup.task_tables import declare_from_json

KIND = "grouping"
SCHEMA_VERSION = 1
UNITS = ("snt", "ms")
_TYPED = ("schema_version", "kind", "tasks", "budget", "networks", "served_by", "objective", "total_loss", "cost",
          "corun_factor", "options", "evaluated_on", "evaluated_losses", "evaluated_total",
          "evaluated_total_best_served", "declared_tasks")


def _present(record: Any, keys: Iterable[str]) -> dict[str, Any]:
    """The record's fields among `keys` that are set, as JSON (absent fields are not written as null)."""
    doc = {}
    for key in keys:
        value = getattr(record, key)
        if value is not None:
            doc[key] = list(value) if isinstance(value, tuple) else value.to_json() if hasattr(value, "to_json") else value
    return doc


def _optional(doc: Mapping[str, Any], key: str, types: type | tuple[type, ...], prefix: str, where: object) -> Any:
    value = doc.get(key)
    if value is not None and (isinstance(value, bool) is not (types is bool) or not isinstance(value, types)):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise SchemaError(where, prefix + key, f"expected {names} or null, found {value!r}")
    return value


@dataclass(frozen=True)
class Budget:
    """What the grouping had to fit: the limit, its unit and, for milliseconds, the profile that costed it."""

    value: float | None = None  # the limit (positive), None: unlimited
    unit: str = "snt"  # snt (standard-network times) or ms (on `profile`)
    profile: str | None = None  # the profile file, relative to the grouping's folder
    profile_name: str | None = None  # its short name
    statistic: str | None = None  # the latency statistic costs were read at (p50, p90, p99)
    device: dict[str, Any] | None = None  # the profile's device record (descriptive: CPU model, GPU, driver)
    backend: str | None = None  # onnxruntime | torch | tensorrt
    execution_provider: str | None = None  # what really ran
    backend_settings: BackendSettings | None = None  # how the profile ran its sessions (export and bench repeat it)
    preset: str | None = None  # the architecture preset the profile measured
    input_shape: tuple[int, ...] | None = None  # (N, 3, H, W) the profile timed
    standard_network_ms: float | None = None  # the SNT reference on the profile
    snt: float | None = None  # the budget as asked in SNT (value = snt x standard_network_ms)
    extra: dict[str, Any] = field(default_factory=dict)  # other fields, as written

    _KEYS = ("value", "unit", "profile", "profile_name", "statistic", "device", "backend", "execution_provider",
             "backend_settings", "preset", "input_shape", "standard_network_ms", "snt")

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, **_present(self, self._KEYS[2:]), **self.extra}

    @classmethod
    def from_json(cls, doc: Any, where: object = "grouping") -> "Budget":
        if not isinstance(doc, dict):
            raise SchemaError(where, "budget", f"expected an object, found {type(doc).__name__}")
        if doc.get("unit") not in UNITS:
            raise SchemaError(where, "budget.unit", f"expected 'snt' or 'ms', found {doc.get('unit')!r}")
        try:  # parts of it are copied into the bundle manifest, which never holds NaN or infinity
            json.dumps(doc, allow_nan=False)
        except ValueError:
            raise SchemaError(where, "budget", "contains NaN or infinity") from None
        p = "budget."
        strings = {k: _optional(doc, k, str, p, where)
                   for k in ("profile", "profile_name", "statistic", "backend", "execution_provider", "preset")}
        shape = _optional(doc, "input_shape", list, p, where)
        if shape is not None and not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
            raise SchemaError(where, p + "input_shape", f"expected positive integers (N, C, H, W), found {shape!r}")
        settings = doc.get("backend_settings")
        return cls(require_number(doc, "value", where, prefix=p, positive=True, optional=True), doc["unit"],
                   device=_optional(doc, "device", dict, p, where),
                   backend_settings=None if settings is None else BackendSettings.parse(
                       settings, p + "backend_settings", lambda f, problem: SchemaError(where, f, problem)),
                   input_shape=None if shape is None else tuple(shape),
                   standard_network_ms=require_number(doc, "standard_network_ms", where, prefix=p, positive=True,
                                                      optional=True),
                   snt=require_number(doc, "snt", where, prefix=p, positive=True, optional=True),
                   extra={k: v for k, v in doc.items() if k not in cls._KEYS}, **strings)


@dataclass(frozen=True)
class SelectionOptions:
    """How the grouping was selected: the table, split and estimator, and what the networks were trained at."""

    losses: str | None = None  # the loss table (or training run) selection read
    split: str | None = None  # the split whose losses chose it (val)
    stage: str | None = None  # final or early (ESA)
    estimate: str | None = None  # the estimator of untrained networks (hoa, ...), None: measured only
    normalize: str | None = None  # none | reference | single: how task losses were made comparable
    weights: dict[str, float] | None = None  # per-task weights of the objective
    scales: dict[str, float] | None = None  # per-task divisors of the objective
    statistic: str | None = None  # the profile's latency statistic
    preset: str | None = None  # the training run's preset (export defaults to it)
    resolution: int | None = None  # the training run's input side (export refuses another)
    max_networks: int | None = None  # the limit on networks per frame
    solver: str | None = None  # auto | milp | dp | reference
    extra: dict[str, Any] = field(default_factory=dict)  # other options, as written

    _KEYS = ("losses", "split", "stage", "estimate", "normalize", "weights", "scales", "statistic", "preset",
             "resolution", "max_networks", "solver")

    def to_json(self) -> dict[str, Any]:
        return {**_present(self, self._KEYS), **self.extra}

    @classmethod
    def from_json(cls, doc: Any, where: object = "grouping") -> "SelectionOptions":
        if not isinstance(doc, dict):  # absent, or not an object: read as absent, as before options were typed
            return cls()
        p = "options."
        typed: dict[str, Any] = {k: _optional(doc, k, str, p, where)
                                 for k in ("losses", "split", "stage", "estimate", "normalize", "statistic", "preset",
                                           "solver")}
        for k in ("weights", "scales"):
            value = _optional(doc, k, dict, p, where)
            typed[k] = None if value is None else {t: require_number(value, t, where, prefix=f"{p}{k}.") for t in value}
        for k in ("resolution", "max_networks"):
            value = doc.get(k)
            typed[k] = None if value is None else require_number(doc, k, where, prefix=p, integer=True, minimum=1)
        return cls(**typed, extra={k: v for k, v in doc.items() if k not in cls._KEYS})


@dataclass(frozen=True)
class GroupingNetwork:
    tasks: tuple[str, ...]  # tasks it was trained on (the checkpoint's heads)
    served: tuple[str, ...]  # tasks it serves (heads kept at deployment)
    width: float = 1.0  # width multiplier
    stage: str = "final"  # training stage whose losses chose it ("final" or "early")
    checkpoint: str | None = None  # fully trained weights, relative to the grouping's folder (None: estimated only)
    estimated: bool = False  # its losses were estimated (HOA), not measured
    cost: float | None = None  # its cost in the budget's unit; positive
    fixed_cost: float | None = None  # the part of the cost it pays whatever it serves (its trunk)
    head_costs: dict[str, float] | None = None  # served task -> its head's cost
    losses: dict[str, float] | None = None  # served task -> loss on the selection table
    checkpoint_sha256: str | None = None  # the checkpoint's digest, if recorded (export also asks the run's store)
    stopped_for: str | None = None  # a per-task stop: the network at the epoch where this task's val loss was best

    def to_json(self) -> dict[str, Any]:
        doc = {"tasks": list(self.tasks), "served": list(self.served), "width": self.width, "stage": self.stage,
               "checkpoint": self.checkpoint, "estimated": self.estimated, "cost": self.cost,
               "fixed_cost": self.fixed_cost, "head_costs": self.head_costs, "losses": self.losses}
        if self.checkpoint_sha256 is not None:
            doc["checkpoint_sha256"] = self.checkpoint_sha256
        if self.stopped_for is not None:
            doc["stopped_for"] = self.stopped_for
        return doc

    @property
    def label(self) -> str:
        return f"{'+'.join(self.tasks)}@{self.width:g}"


def same_networks(a: Iterable[GroupingNetwork], b: Iterable[GroupingNetwork]) -> bool:
    """True if two groupings deploy the same networks: each one's trained tasks, served tasks and width."""
    def key(networks: Iterable[GroupingNetwork]) -> set:
        return {(tuple(n.tasks), tuple(n.served), float(n.width)) for n in networks}
    return key(a) == key(b)


@dataclass(frozen=True)
class GroupingEvaluation:
    split: str  # what the chosen networks were scored on (e.g. "test")
    losses: dict[str, float]  # task -> loss of the network serving it
    total: float  # sum of `losses`
    total_best_served: float | None = None  # each task served by the best chosen network on that table


@dataclass(frozen=True)
class Grouping:
    tasks: tuple[str, ...]  # every task the grouping serves
    budget: Budget  # the limit, its unit and the profile it was costed on
    networks: tuple[GroupingNetwork, ...]
    served_by: dict[str, int]  # task -> index into networks
    objective: float | None = None  # the optimised (weighted, normalised) total loss
    total_loss: float | None = None  # plain sum of the serving losses on the selection table
    cost: float | None = None  # predicted cost: the networks' costs summed x corun_factor
    corun_factor: float = 1.0  # the profile's measured factor for this many networks per frame
    options: SelectionOptions = field(default_factory=SelectionOptions)  # how it was selected
    evaluation: GroupingEvaluation | None = None  # the same networks scored on another table
    declared_tasks: list[Any] | None = None  # tasks the training config declared ([tasks.NAME]), for export
    extra: dict[str, Any] = field(default_factory=dict)  # top-level fields no reader knows, verbatim
    # ----- how it was selected (taskgroup.grouping_records; None: not recorded) -----
    solve: SolveRecord | None = None  # the solver, candidate counts, search time and the optimality proof
    robustness: RobustnessRecord | None = None  # how the choice stands against latency noise (profiles)
    parsimony: ParsimonyRecord | None = None  # the within-noise rule's decision, when it was on
    within_noise_off: str | None = None  # why the within-noise rule was off
    top_k: TopK | None = None  # the k best groupings and the estimated networks they need trained
    excluded_by_noise: ExcludedByNoise | None = None  # the better grouping the latency-noise rule left out
    stakes: StakesRecord | None = None  # how much grouping matters at this budget
    warnings: tuple[str, ...] | None = None  # served tasks not learnt
    estimate_errors: tuple[EstimateError, ...] | None = None  # the pipeline's estimates against the trained losses
    path: Path | None = field(default=None, compare=False)  # the file it was read from
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)  # top-level fields after the core, as read

    # ----- what readers ask ---------------------------------------------------------------
    def __post_init__(self) -> None:
        # Builders that still hold plain dicts (selection's options, a hand-made budget) are read through
        # the same validation as the file, so a Grouping in memory is always the typed one.
        if isinstance(self.budget, Mapping):
            object.__setattr__(self, "budget", Budget.from_json(dict(self.budget)))
        if isinstance(self.options, Mapping):
            object.__setattr__(self, "options", SelectionOptions.from_json(dict(self.options)))
        if any(k in RECORD_KEYS for k in self.extra):  # a record handed in as a plain field of `extra`: typed
            for name, value in records_from_json(self.extra, "grouping").items():
                if value is not None:
                    object.__setattr__(self, name, value)
            object.__setattr__(self, "extra", {k: v for k, v in self.extra.items() if k not in RECORD_KEYS})

    @property
    def unit(self) -> str:
        return self.budget.unit

    @property
    def profile(self) -> str | None:
        """The profile the costs come from (relative to the grouping's folder), if any."""
        p = self.budget.profile or self.extra.get("profile") or self.options.extra.get("profile")
        return str(p) if p else None

    def checkpoint_path(self, net: GroupingNetwork) -> Path | None:
        """A network's checkpoint as an absolute path (None if it was only estimated)."""
        if net.checkpoint is None:
            return None
        base = self.path.parent if self.path is not None else Path(".")
        return (base / net.checkpoint).resolve()

    def with_budget(self, **fields: Any) -> "Grouping":
        """The same grouping with budget fields added or changed (by their file names), validated."""
        return replace(self, budget=Budget.from_json({**self.budget.to_json(), **fields}, self.path or "grouping"))

    def records_json(self) -> dict[str, Any]:
        """The selection records as the file's top-level fields, in the order selection writes them."""
        doc: dict[str, Any] = {}
        if self.estimate_errors is not None:
            doc["estimate_errors"] = [e.to_json() for e in self.estimate_errors]
        if self.solve is not None:
            doc.update(self.solve.to_json())
        for name in ("robustness", "parsimony"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name).to_json()
        if self.within_noise_off is not None:
            doc["within_noise_off"] = self.within_noise_off
        if self.top_k is not None:
            doc.update(self.top_k.to_json())
        for name in ("excluded_by_noise", "stakes"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name).to_json()
        if self.warnings is not None:
            doc["warnings"] = list(self.warnings)
        return doc

    # ----- the file -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "kind": KIND, "tasks": list(self.tasks),
                               "budget": self.budget.to_json(), "networks": [n.to_json() for n in self.networks],
                               "served_by": dict(self.served_by), "objective": self.objective,
                               "total_loss": self.total_loss, "cost": self.cost, "corun_factor": self.corun_factor,
                               "options": self.options.to_json()}
        if self.declared_tasks:
            doc["declared_tasks"] = self.declared_tasks
        if self.evaluation is not None:
            e = self.evaluation
            doc.update(evaluated_on=e.split, evaluated_losses=dict(e.losses), evaluated_total=e.total,
                       evaluated_total_best_served=e.total_best_served)
        # The fields after the core: those read from a file in the file's order, then new ones as selection
        # writes them, then fields no reader knows (as a dict update would have placed them). A record field
        # an older file lacks is not written back as null.
        tail = {k: v for k, v in {**self.records_json(), **self.extra}.items()
                if v is not None or not self.order or k in self.order}
        doc.update({k: tail[k] for k in self.order if k in tail})
        doc.update({k: v for k, v in tail.items() if k not in doc})
        return doc

    def save(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Grouping":
        path = Path(path)
        return cls.from_json(read_json(path, KIND, (SCHEMA_VERSION,)), path)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], path: str | os.PathLike | None = None) -> "Grouping":
        """Validate a grouping document; every problem is a SchemaError naming the file and the field."""
        where = path if path is not None else "grouping"
        doc = dict(doc)
        if doc.get("kind") != KIND:
            raise SchemaError(where, "kind", f"expected '{KIND}', found {doc.get('kind')!r}")
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise SchemaError(where, "schema_version", f"unsupported version {doc.get('schema_version')!r}; "
                                                       f"supported: [{SCHEMA_VERSION}]")
        declared = doc.get("declared_tasks")
        if declared:  # tasks declared in the training config ([tasks.NAME]) must be known before names are checked

            declare_from_json(declared, f"{where}: declared_tasks")
        tasks = _task_list(doc, ("tasks",), "", where)
        budget = Budget.from_json(require(doc, "budget", dict, where), where)
        nets = [_network(n, i, where) for i, n in enumerate(require(doc, "networks", list, where))]
        if not nets:
            raise SchemaError(where, "networks", "the grouping has no networks")
        served_by = _served_by(require(doc, "served_by", dict, where), tasks, nets, where)
        factor = doc.get("corun_factor", 1.0)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 <= factor < math.inf:
            raise SchemaError(where, "corun_factor", f"expected a finite number >= 1, found {factor!r}")
        if not math.isfinite(sum(n.cost for n in nets if n.cost is not None) * factor):
            raise SchemaError(where, "networks", "the networks' costs add up to infinity")
        options = SelectionOptions.from_json(doc.get("options"), where)
        evaluation = None
        if doc.get("evaluated_on") is not None:
            losses = _losses(doc.get("evaluated_losses"), "evaluated_losses", where)
            evaluation = GroupingEvaluation(str(doc["evaluated_on"]), losses,
                                            require_number(doc, "evaluated_total", where),
                                            require_number(doc, "evaluated_total_best_served", where, optional=True))
        return cls(tasks, budget, tuple(nets), served_by,
                   objective=require_number(doc, "objective", where, optional=True),
                   total_loss=require_number(doc, "total_loss", where, optional=True),
                   cost=require_number(doc, "cost", where, positive=True, optional=True),
                   corun_factor=float(factor), options=options,
                   evaluation=evaluation, declared_tasks=declared or None,
                   extra={k: v for k, v in doc.items() if k not in _TYPED and k not in RECORD_KEYS},
                   **records_from_json(doc, where), path=Path(path) if path else None,
                   order=tuple(k for k in doc if k not in _TYPED))


def _task_list(doc: dict, names: tuple[str, ...], prefix: str, where: object) -> tuple[str, ...]:

    for n in names:
        if n in doc:
            value = doc[n]
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise SchemaError(where, prefix + n, "expected a list of task names")
            if len(set(value)) != len(value):
                raise SchemaError(where, prefix + n, f"lists a task twice: {value}")
            for t in value:
                try:
                    get_task(t)
                except TaskgroupError as exc:
                    raise SchemaError(where, prefix + n, str(exc)) from None
            return tuple(value)
    raise SchemaError(where, prefix + names[0], "missing")


def _losses(doc: Any, name: str, where: object) -> dict[str, float]:
    if not isinstance(doc, dict):
        raise SchemaError(where, name, "expected an object task -> loss")
    return {t: require_number(doc, t, where, prefix=f"{name}.") for t in doc}


def _network(net: Any, i: int, where: object) -> GroupingNetwork:
    f = f"networks[{i}]."
    if not isinstance(net, dict):
        raise SchemaError(where, f"networks[{i}]", "expected an object")
    trained = _task_list(net, ("tasks", "tasks_trained"), f, where)
    served = _task_list(net, ("served", "tasks_served"), f, where)
    if not served:
        raise SchemaError(where, f + "served", "a chosen network serves no task")
    if not set(served) <= set(trained):
        raise SchemaError(where, f + "served", f"serves {sorted(set(served) - set(trained))} it was not trained on")
    width = require_number(net, "width", where, prefix=f, positive=True, optional=True)
    width = 1.0 if width is None else width
    if width > 4:
        raise SchemaError(where, f + "width", f"expected a number in (0, 4], found {width!r}")
    ckpt = net.get("checkpoint")
    if ckpt is not None and not isinstance(ckpt, str):
        raise SchemaError(where, f + "checkpoint", f"expected a path string or null, found {type(ckpt).__name__}")
    digest = net.get("checkpoint_sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64
                                   and all(c in "0123456789abcdef" for c in digest)):
        raise SchemaError(where, f + "checkpoint_sha256", f"expected 64 lowercase hex digits or null, found {digest!r}")
    # A network's cost is a latency (or a fraction of one network): zero or less would record a
    # negative predicted latency in the bundle and make every comparison with it meaningless.
    cost = require_number(net, "cost", where, prefix=f, positive=True, optional=True)
    head_costs, losses = net.get("head_costs"), net.get("losses")
    stopped_for = net.get("stopped_for")
    if stopped_for is not None and stopped_for not in trained:
        raise SchemaError(where, f + "stopped_for", f"expected one of the network's tasks {list(trained)} or null, "
                                                    f"found {stopped_for!r}")
    return GroupingNetwork(
        trained, served, float(width), str(net.get("stage", "final")), ckpt, bool(net.get("estimated", False)), cost,
        require_number(net, "fixed_cost", where, prefix=f, minimum=0.0, optional=True),
        None if head_costs is None else _losses(head_costs, f + "head_costs", where),
        None if losses is None else _losses(losses, f + "losses", where), digest, stopped_for)


def _served_by(served_by: dict, tasks: tuple[str, ...], nets: list[GroupingNetwork], where: object) -> dict[str, int]:
    for t in tasks:
        idx = served_by.get(t)
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < len(nets):
            raise SchemaError(where, f"served_by.{t}", f"expected a network index in 0..{len(nets) - 1}, found {idx!r}")
        if t not in nets[idx].served:
            raise SchemaError(where, f"served_by.{t}", f"network {idx} does not list '{t}' among the tasks it serves")
    # Each task is served by exactly one network: overlapping or extra served tasks would make the
    # bundle's task -> network mapping depend on file order.
    seen: dict[str, int] = {}
    for i, net in enumerate(nets):
        for t in net.served:
            if t not in tasks:
                raise SchemaError(where, f"networks[{i}].served", f"serves '{t}', which is not in 'tasks'")
            if t in seen:
                raise SchemaError(where, f"networks[{i}].served",
                                  f"'{t}' is also served by network {seen[t]}; each task is served by one network")
            seen[t] = i
    return {t: served_by[t] for t in tasks}
