"""What a search found: the chosen networks, what they serve and score, and the grouping file they make.

A `Selection` is the solvers' answer (`Selector.solve`, `select`, a frontier point): its networks in a
canonical order, the task -> network assignment, the objective, the predicted cost and how it was
found (solver, candidates, the proven bound). `to_grouping` turns it into the grouping contract
(best.json). `better` is the order every search breaks ties by, and `grouping_key` what makes two
selections the same grouping.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.grouping import Grouping, GroupingEvaluation, GroupingNetwork
from taskgroup.grouping_records import (CandidateCounts, ColumnSearch, Optimality, ParsimonyRecord, RobustnessRecord,
                                        SolveRecord)
from taskgroup.search.candidates import Candidate
from taskgroup.search.problem import REL_TOL
from taskgroup.task_tables import declared_in

@dataclass
class ChosenNetwork:
    candidate: Candidate  # the network (trained tasks, width, losses, costs)
    served: tuple[str, ...]  # tasks it serves in the grouping (its other heads are dropped)

    @property
    def cost(self) -> float:
        return self.candidate.cost(self.served)


@dataclass
class Evaluation:
    split: str  # what the chosen networks were evaluated on (e.g. "test", or a file name)
    losses: dict[str, float]  # task -> loss of the network chosen to serve it, on the evaluation table
    total: float  # sum of `losses`: each task served by the network chosen on the selection table
    total_best_served: float  # each task served by whichever chosen network is best on the evaluation table (the paper's scoring)


@dataclass
class Selection:
    tasks: tuple[str, ...]  # tasks served, in table order
    budget: float | None  # the budget searched under (None: unlimited)
    unit: str  # unit of budget and costs, e.g. "snt"
    networks: list[ChosenNetwork]  # chosen networks in a canonical order
    served_by: dict[str, int]  # task -> index into `networks`
    objective: float  # total weighted, normalised loss on the selection table (the optimised value)
    total_loss: float  # unweighted sum of serving losses on the selection table
    cost: float  # predicted cost of the grouping: the networks' costs summed, times corun_factor
    solver: str  # solver that found it: "milp" or "reference"
    max_networks: int | None = None  # limit on the number of networks, if any
    candidates_total: int = 0  # candidates given
    candidates_searched: int = 0  # candidates left after exact dominance pruning
    solve_time_s: float = 0.0  # wall time of the search
    evaluation: Evaluation | None = None  # the same networks scored on another table, if asked
    options: dict[str, Any] = field(default_factory=dict)  # weights, normalisation, estimator, sources
    corun_factor: float = 1.0  # measured slowdown of running these networks back to back (1: none, or SNT costs)
    robustness: RobustnessRecord | None = None  # how the choice stands against latency noise (search.robustness)
    parsimony: ParsimonyRecord | None = None  # the within-noise rule's decision, when it was on
    lower_bound: float | None = None  # proven lower bound on the objective (None: the solver is exact)
    search: dict[str, Any] | None = None  # column generation's record: rounds, columns generated and enumerated

    @property
    def gap(self) -> float:
        """How far the objective may be above the optimum (0: proven optimal)."""
        return 0.0 if self.lower_bound is None else max(0.0, self.objective - self.lower_bound)

    def optimality_record(self) -> Optimality:
        """The optimality record of a grouping file: the proven lower bound and the gap to it."""
        gap = self.gap
        return Optimality(gap == 0.0, self.objective - gap, gap, gap / abs(self.objective) if self.objective else 0.0,
                          ColumnSearch.from_json(self.search, "selection", "optimality.column_search") if self.search else None)

    def optimality(self) -> dict[str, Any]:
        """`optimality_record` as JSON (a frontier point's `optimality`)."""
        return self.optimality_record().to_json()

    @property
    def estimated_networks(self) -> int:
        """Chosen networks whose losses were estimated (they have no weights yet)."""
        return sum(n.candidate.estimated for n in self.networks)

    @property
    def networks_cost(self) -> float:
        """The chosen networks' costs summed, each as measured alone."""
        return self.cost / self.corun_factor

    def evaluate(self, eval_candidates: Sequence[Candidate], split: str) -> Evaluation:
        """Score the chosen networks on another table (matched by task set and width)."""
        by_key = {c.key: c for c in eval_candidates}
        losses: dict[str, float] = {}
        best: dict[str, float] = {}
        found = []
        for net in self.networks:
            other = by_key.get(net.candidate.key)
            if other is None:
                why = " (its losses were estimated; train it to evaluate it)" if net.candidate.estimated else ""
                raise TaskgroupError(f"chosen network {'+'.join(net.candidate.tasks)}@{net.candidate.width:g} has no "
                                     f"entry in the evaluation table ({split}){why}")
            found.append(other)
            for t in net.served:
                if t not in other.losses:
                    raise TaskgroupError(f"the evaluation table ({split}) has no loss for task '{t}' of network "
                                         f"{'+'.join(other.tasks)}@{other.width:g}")
                losses[t] = other.losses[t]
        for t in self.tasks:
            best[t] = min(o.losses[t] for o in found if t in o.losses)
        self.evaluation = Evaluation(split, losses, math.fsum(losses.values()), math.fsum(best.values()))
        return self.evaluation

    def to_grouping(self, out_path: str | os.PathLike | None = None,
                    table_dir: str | os.PathLike | None = None) -> Grouping:
        """The grouping (best.json) of this selection; checkpoints become paths relative to `out_path`'s folder."""

        out_dir = Path(out_path).resolve().parent if out_path is not None else None
        nets = []
        for net in self.networks:
            c = net.candidate
            ckpt = None
            if c.checkpoint and not c.estimated:
                full = Path(table_dir or ".") / c.checkpoint
                ckpt = os.path.relpath(full.resolve(), out_dir) if out_dir is not None else str(full)
            nets.append(GroupingNetwork(
                tasks=tuple(c.tasks), served=tuple(net.served), width=c.width,
                stage=c.stage,  # the training stage whose losses chose it
                checkpoint=ckpt,  # always fully trained weights (None: none exist yet)
                estimated=c.estimated, cost=net.cost, fixed_cost=c.fixed_cost,
                head_costs={t: c.head_cost(t) for t in net.served}, losses={t: c.losses[t] for t in net.served},
                stopped_for=c.stopped_for))  # a per-task stop: that task's best epoch
        solve = SolveRecord(self.max_networks,
                            None if self.budget is None else self.budget - self.cost,  # how far under the budget
                            self.solver, CandidateCounts(self.candidates_total, self.candidates_searched),
                            self.solve_time_s, self.optimality_record())
        e = self.evaluation
        return Grouping(
            tasks=tuple(self.tasks), budget={"value": self.budget, "unit": self.unit}, networks=tuple(nets),
            served_by=dict(self.served_by), objective=self.objective, total_loss=self.total_loss, cost=self.cost,
            corun_factor=self.corun_factor,  # cost = sum of the networks' costs x this (networks run together)
            options=dict(self.options),
            evaluation=None if e is None else GroupingEvaluation(e.split, e.losses, e.total, e.total_best_served),
            declared_tasks=declared_in(self.tasks) or None,  # the config's own [tasks.NAME] tables, for export
            solve=solve, robustness=self.robustness, parsimony=self.parsimony)

    def to_grouping_json(self, out_path: str | os.PathLike | None = None,
                         table_dir: str | os.PathLike | None = None) -> dict[str, Any]:
        """The grouping document (best.json); see `to_grouping`."""
        return self.to_grouping(out_path, table_dir).to_json()



def better(a: Selection, b: Selection) -> bool:
    """Lower objective; on a tie (relative REL_TOL), the lower predicted cost; then fewer estimated networks."""
    tol, ctol = REL_TOL * max(1.0, abs(b.objective)), REL_TOL * max(1.0, abs(b.cost))
    return a.objective < b.objective - tol or (a.objective <= b.objective + tol and (
        a.cost < b.cost - ctol or (a.cost <= b.cost + ctol and a.estimated_networks < b.estimated_networks)))



def grouping_key(sel: Selection) -> tuple:
    """What makes two selections the same grouping: each network's tasks, width, per-task stop and served tasks."""
    return tuple(sorted((n.candidate.tasks, n.candidate.width, n.candidate.stopped_for or "", n.served)
                        for n in sel.networks))
