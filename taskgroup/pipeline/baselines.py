"""Baselines at the same budget: what a practitioner would do without the search.

- one network for all tasks (the cheapest-to-deploy multi-task network);
- independent single-task networks: the best set of singles (full or half width) that fits;
- random groupings: random partitions of the tasks into networks, shrunk to half width
  until they fit.
Each is a list of `(tasks_trained, tasks_served, width)` networks; the pipeline trains the
missing ones with the same recipe and scores them on the same test split, and records them in
RUN/baselines.json (`BaselinesRecord`, the one reader and writer of that file).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.fileio import read_json, require, require_number, write_json_atomic
from taskgroup.grouping import GroupingNetwork
from taskgroup.profile.costmodel import corun_factor
from taskgroup.search import Candidate, select

NetworkCost = Callable[[float, Sequence[str]], float]  # (width, served tasks) -> cost


@dataclass(frozen=True)
class BaselineNetwork:
    tasks: tuple[str, ...]  # trained and served (baselines have no auxiliary tasks)
    width: float


@dataclass(frozen=True)
class Baseline:
    name: str
    networks: tuple[BaselineNetwork, ...]

    def cost(self, network_cost: NetworkCost, corun: float = 0.0) -> float:
        """Predicted cost per frame: the networks' costs summed, times the measured co-run factor."""
        return sum(network_cost(n.width, n.tasks) for n in self.networks) * corun_factor(corun, len(self.networks))


def one_network(tasks: Sequence[str], budget: float, network_cost: NetworkCost) -> Baseline:
    """All tasks in one network: full width if it fits, else half width (reported even if over)."""
    full = Baseline("one network", (BaselineNetwork(tuple(tasks), 1.0),))
    if full.cost(network_cost) <= budget:
        return full
    return Baseline("one network", (BaselineNetwork(tuple(tasks), 0.5),))


def independent_singles(single_candidates: Sequence[Candidate], tasks: Sequence[str], budget: float,
                        unit: str, scales: Mapping[str, float] | None = None, corun: float = 0.0) -> Baseline:
    """The exact best set of single-task networks within the budget, under the same objective
    (`scales`: the run's normalisation) as the chosen grouping; if none fits, the cheapest set
    (so the report can show what one network per task would cost)."""

    singles = [c for c in single_candidates if len(c.tasks) == 1]
    try:
        sel = select(singles, budget, tasks=tasks, unit=unit, scales=scales, corun=corun)
    except TaskgroupError:
        return Baseline("independent singles", _cheapest(singles, tasks))
    return Baseline("independent singles",
                    tuple(BaselineNetwork(n.candidate.tasks, n.candidate.width) for n in sel.networks))


def _cheapest(singles: Sequence[Candidate], tasks: Sequence[str]) -> tuple[BaselineNetwork, ...]:

    out = []
    for t in tasks:
        options = [c for c in singles if c.tasks == (t,)]
        if not options:
            raise TaskgroupError(f"no single-task network for '{t}' in the loss table: the independent-singles "
                                 "baseline needs the 'singles' (or larger) candidate set")
        best = min(options, key=lambda c: c.cost((t,)))
        out.append(BaselineNetwork(best.tasks, best.width))
    return tuple(out)


def random_groupings(tasks: Sequence[str], budget: float, network_cost: NetworkCost, draws: int,
                     seed: int, max_tries: int = 1000, exclude: Sequence[Baseline] = (),
                     corun: float = 0.0) -> list[Baseline]:
    """`draws` random partitions of the tasks that fit the budget (fewer if none can be found),
    distinct from each other and from the `exclude` baselines."""
    rng = random.Random(seed)
    out: list[Baseline] = []
    seen: set[frozenset] = {frozenset((n.tasks, n.width) for n in b.networks) for b in exclude}
    for _ in range(max_tries):
        if len(out) == draws:
            break
        nets = [BaselineNetwork(g, 1.0) for g in random_partition(tasks, rng)]
        # Shrink random networks to half width until the grouping fits (or cannot shrink further).
        for i in rng.sample(range(len(nets)), len(nets)):
            if Baseline("", tuple(nets)).cost(network_cost, corun) <= budget:
                break
            nets[i] = BaselineNetwork(nets[i].tasks, 0.5)
        candidate = Baseline(f"random #{len(out) + 1}", tuple(nets))
        key = frozenset((n.tasks, n.width) for n in nets)
        if candidate.cost(network_cost, corun) <= budget and key not in seen:
            seen.add(key)
            out.append(candidate)
    return out


def random_partition(tasks: Sequence[str], rng: random.Random) -> list[tuple[str, ...]]:
    """A random partition of the tasks into groups (a random number of groups, cut from a random order);
    each group keeps the tasks' given order."""
    order = list(tasks)
    rng.shuffle(order)
    k = rng.randint(1, len(order))
    cuts = sorted(rng.sample(range(1, len(order)), k - 1)) if k > 1 else []
    return [tuple(t for t in tasks if t in order[a:b]) for a, b in zip([0] + cuts, cuts + [len(order)])]


BASELINES_FILE = "baselines.json"
BASELINES_KIND = "baselines"
BASELINES_VERSION = 1
_FIX = "the pipeline's baselines stage writes this file: restore it, or run the pipeline again into a new --out"


@dataclass(frozen=True)
class ScoredBaseline:
    """One baseline as trained and scored on the test split: what the report sets beside the choice."""

    name: str  # "one network", "independent singles", "random #1", ...
    cost_ms: float  # predicted cost per frame on the run's profile, co-run factor included
    test_losses: dict[str, float]  # task -> test loss (mean over the run's seeds)
    total: float  # the plain sum of test_losses
    networks: tuple[GroupingNetwork, ...]  # each trains and serves the same tasks (no auxiliary tasks)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "cost_ms": self.cost_ms, "test_losses": dict(self.test_losses),
                "total": self.total,
                "networks": [{"tasks": list(n.tasks), "served": list(n.served), "width": n.width}
                             for n in self.networks]}

    @classmethod
    def from_json(cls, doc: Any, path: object, where: str) -> "ScoredBaseline":
        if not isinstance(doc, dict):
            raise SchemaError(path, where, f"expected an object, found {type(doc).__name__}")
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError(path, f"{where}.name", f"expected the baseline's name, found {name!r}")
        cost = require_number(doc, "cost_ms", path, prefix=f"{where}.", minimum=0)
        losses = doc.get("test_losses")
        if not isinstance(losses, dict):
            raise SchemaError(path, f"{where}.test_losses", f"expected an object of task -> loss, found {losses!r}")
        losses = {str(t): require_number(losses, t, path, prefix=f"{where}.test_losses.") for t in losses}
        total = require_number(doc, "total", path, prefix=f"{where}.")
        nets = doc.get("networks")
        if not isinstance(nets, list) or not nets:
            raise SchemaError(path, f"{where}.networks", f"expected a non-empty list of networks, found {nets!r}")
        return cls(name, cost, losses, total,
                   tuple(_network(n, path, f"{where}.networks[{i}]") for i, n in enumerate(nets)))


@dataclass(frozen=True)
class BaselinesRecord:
    """RUN/baselines.json: the baselines at the run's budget, trained and evaluated as the choice was."""

    budget_ms: float  # the run's budget, in ms on its profile
    baselines: tuple[ScoredBaseline, ...]

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": BASELINES_VERSION, "kind": BASELINES_KIND, "budget_ms": self.budget_ms,
                "baselines": [b.to_json() for b in self.baselines]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], path: object = BASELINES_FILE) -> "BaselinesRecord":
        """A document already checked for its kind and version (read_json); every bad field is a one-line
        SchemaError naming the file, the field and how to get a good file back."""
        try:
            budget = require_number(doc, "budget_ms", path, positive=True)
            items = require(doc, "baselines", list, path)
            return cls(budget, tuple(ScoredBaseline.from_json(b, path, f"baselines[{i}]") for i, b in enumerate(items)))
        except SchemaError as exc:
            exc.args = (f"{exc.args[0]}; {_FIX}",)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BaselinesRecord":
        return cls.from_json(read_json(path, BASELINES_KIND, (BASELINES_VERSION,)), Path(path))

    def save(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, self.to_json())


def measured_baselines(baselines: Sequence[Baseline], budget_ms: float, test: Mapping[tuple, Candidate],
                       network_cost: NetworkCost, corun: float) -> BaselinesRecord:
    """The baselines with their predicted cost and test losses (`test`: candidate key -> trained network)."""
    scored = []
    for b in baselines:
        losses = {t: test[(frozenset(n.tasks), n.width)].losses[t] for n in b.networks for t in n.tasks}
        scored.append(ScoredBaseline(b.name, b.cost(network_cost, corun), losses, math.fsum(losses.values()),
                                     tuple(GroupingNetwork(n.tasks, n.tasks, n.width) for n in b.networks)))
    return BaselinesRecord(budget_ms, tuple(scored))


def _network(doc: Any, path: object, where: str) -> GroupingNetwork:
    if not isinstance(doc, dict):
        raise SchemaError(path, where, f"expected an object, found {type(doc).__name__}")
    names = {}
    for key in ("tasks", "served"):
        value = doc.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
            raise SchemaError(path, f"{where}.{key}", f"expected a non-empty list of task names, found {value!r}")
        names[key] = tuple(value)
    if not set(names["served"]) <= set(names["tasks"]):
        raise SchemaError(path, f"{where}.served", "expected tasks the network was trained on")
    return GroupingNetwork(names["tasks"], names["served"],
                           require_number(doc, "width", path, prefix=f"{where}.", positive=True))
