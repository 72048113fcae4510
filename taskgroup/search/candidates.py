"""Candidate networks for the grouping search (a leaf: the search's other modules build on it).

A candidate is one network the search may choose: the tasks it was trained on, its width,
the loss it achieves on each task it can serve, and its inference cost. Cost is additive:
`fixed_cost` (the trunk) plus `head_costs[t]` for every task the network *serves* (the
heads of auxiliary tasks are dropped at deployment). In SNT units (standard network time)
the fixed cost is the width (full = 1, half = 0.5) and heads cost nothing; a device profile
supplies measured costs through a `CostFn`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping


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


def make_candidate(tasks: tuple[str, ...], width: float, losses: Mapping[str, float], cost_fn: CostFn,
                   stage: str = "final", checkpoint: str | None = None, estimated: bool = False) -> Candidate:
    """Build a candidate, asking `cost_fn` for its fixed and per-head costs."""
    fixed, heads = cost_fn(width, tasks)
    return Candidate(tasks=tasks, width=width, losses=dict(losses), fixed_cost=float(fixed),
                     head_costs={t: float(heads.get(t, 0.0)) for t in tasks}, stage=stage,
                     checkpoint=checkpoint, estimated=estimated)


# An estimator maps measured candidates to the candidate list to search (see estimate.py).
Estimator = Callable[[list[Candidate], CostFn], list[Candidate]]
