"""The report's data (ReportData): every number and sentence the report shows, gathered from the run
(taskgroup.pipeline.report_assembly) and laid out by report_text and report_figures.

Kept apart from both so that the report can be rendered from data built anywhere (the tests build it
by hand) and the run's files are read in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from taskgroup.grouping import GroupingNetwork
from taskgroup.stats import Estimate, estimate


@dataclass
class GroupingResult:
    """One way of serving all tasks: the chosen grouping or a baseline."""

    name: str  # e.g. "chosen", "one network", "independent singles", "random #1"
    networks: list[GroupingNetwork]  # the grouping file's networks: tasks (trained), served, width
    cost: float  # predicted cost in the budget's unit
    test_losses: dict[str, float]  # task -> serving loss on the test split (mean over seeds)
    measured: bool = True  # False when some network's loss was estimated rather than trained
    per_seed: dict[int, dict[str, float]] = field(default_factory=dict)  # seed -> task -> test loss (several seeds)

    @property
    def total(self) -> float:
        return float(sum(self.test_losses.values()))

    def seed_totals(self, scales: dict[str, float] | None = None) -> dict[int, float]:
        """seed -> total (or normalised) test loss, for the seeds that cover every task."""
        return {seed: math.fsum(v / (scales[t] if scales else 1.0) for t, v in losses.items())
                for seed, losses in self.per_seed.items() if set(losses) == set(self.test_losses)}

    def task_estimate(self, task: str) -> Estimate:
        values = [losses[task] for losses in self.per_seed.values() if task in losses]
        return estimate(values) if len(values) > 1 else estimate([self.test_losses[task]])

    def describe(self) -> str:
        parts = []
        for net in self.networks:
            tasks = ", ".join(t if t in net.served else f"({t})" for t in net.tasks)
            parts.append(f"[{tasks}]@{net.width:g}")
        return " + ".join(parts)


@dataclass
class ReportData:
    tasks: list[str]
    budget: float  # in `budget_unit`
    budget_unit: str  # "ms" or "snt"
    device: str  # what the profile measured on
    chosen: GroupingResult
    baselines: list[GroupingResult]
    pairwise_gains: dict[str, dict[str, float]]  # task -> partner -> L(half single)/L(pair) - 1
    gains_split: str  # split the gains were computed on
    frontier: list[dict[str, Any]]  # points: cost, objective (selection split), evaluated_losses (test; trained ones), beyond_noise
    latency: dict[str, float]  # measured p50/p90/p99 ms, predicted ms, standalone_sum ms
    compute: dict[str, float]  # train seconds spent on the search vs estimated for all candidates
    machine: str  # description of the machine the run happened on
    notes: list[str] = field(default_factory=list)  # extra plain-language remarks
    test_scales: dict[str, float] | None = None  # per-task divisors of the objective on the test split (None: plain sum)
    seeds: list[int] = field(default_factory=list)  # seeds every network was trained with (one: no spread)
    seed_noise: Any = None  # the preset's measured seed noise (taskgroup.seednoise.SeedNoise), if it holds for the run
    warnings: list[str] = field(default_factory=list)  # shown first: e.g. served tasks that were not learnt
    gains_per_seed: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)  # task -> partner -> seed -> gain
    robustness: str | None = None  # one sentence: the budget range over which the choice holds
    parsimony: str | None = None  # one sentence: a cheaper grouping within noise of the optimum was chosen
    objective: str = "none"  # what selection ranked: none (plain sum), reference or single (normalised)
    estimate_errors: list[dict[str, Any]] = field(default_factory=list)  # network, task, estimated, measured, error
    affinity: dict[str, Any] | None = None  # tasks, kind -> n x n mean matrix, seeds, every, kind -> fitted slope

    def score(self, result: GroupingResult) -> float:
        """What selection optimises, on the test split: the plain total, or the normalised one."""
        if self.test_scales is None:
            return result.total
        return float(sum(v / self.test_scales[t] for t, v in result.test_losses.items()))

    def score_estimate(self, result: GroupingResult) -> Estimate:
        """The score with its spread over seeds (no spread with one seed)."""
        totals = result.seed_totals(self.test_scales)
        return estimate(list(totals.values())) if len(totals) > 1 else estimate([self.score(result)])

    @property
    def several_seeds(self) -> bool:
        return len(self.seeds) > 1

    @property
    def score_name(self) -> str:
        return "total test loss" if self.test_scales is None else "normalised test objective"

    def fits(self, result: GroupingResult) -> bool:
        """Whether a grouping's predicted cost is within the budget (up to rounding)."""
        return result.cost <= self.budget * (1 + 1e-9)


def frontier_points(front) -> list[dict[str, Any]]:
    """The report's view of a frontier (`taskgroup.search.frontier.Frontier`): each point's cost and
    objective, whether its optimum beats one network beyond noise (its `stakes`), and its per-task
    test losses where the grouping was trained and evaluated."""
    extras = list(front.point_extra) + [{}] * (len(front.points) - len(front.point_extra))
    return [{"cost": p.cost, "objective": p.objective,
             "beyond_noise": (extra.get("stakes") or {}).get("verdict") == "better",
             **({"evaluated_losses": dict(p.evaluation.losses)} if p.evaluation and p.evaluation.losses else {})}
            for p, extra in zip(front.points, extras)]
