"""Exact selection of networks under a budget, and the grouping it produces.

`select()` chooses the set of candidate networks that minimises the total serving score
(the paper's objective: the sum over tasks of the loss of the chosen network that serves
it) with total cost within the budget. Dominated candidates are pruned exactly first, then
the MILP (or the reference branch-and-bound) solves the rest. The default solver, "auto",
tries the branch-and-bound for a fraction of a second on small problems (the paper's
tables take milliseconds, and importing scipy.optimize alone takes ~0.5 s) and uses the
MILP otherwise; both are exact. Among equally good
groupings the cheaper one wins; exact remaining ties keep the solver's (deterministic)
choice.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.profile.costmodel import corun_factor
from taskgroup.search.candidates import Candidate
from taskgroup.search.problem import REL_TOL, Assignment, Problem, build_problem, prefer_trained, prune_dominated
from taskgroup.search.reference import SearchTimeout, reference_solve

GROUPING_KIND = "grouping"
SCHEMA_VERSION = 1
SOLVERS = ("auto", "milp", "reference")
AUTO_MAX_CANDIDATES = 200  # "auto" tries the branch-and-bound only up to this many candidates...
AUTO_MAX_TASKS = 8  # ...and tasks,
AUTO_MAX_NODES = 100_000  # ...for at most this many search nodes (about 0.2 s) before switching to the MILP


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

    def to_grouping_json(self, out_path: str | os.PathLike | None = None,
                         table_dir: str | os.PathLike | None = None) -> dict[str, Any]:
        """The grouping document (best.json); checkpoints become paths relative to `out_path`'s folder."""
        out_dir = Path(out_path).resolve().parent if out_path is not None else None
        nets = []
        for net in self.networks:
            c = net.candidate
            ckpt = None
            if c.checkpoint and not c.estimated:
                full = Path(table_dir or ".") / c.checkpoint
                ckpt = os.path.relpath(full.resolve(), out_dir) if out_dir is not None else str(full)
            nets.append({
                "tasks": list(c.tasks),
                "served": list(net.served),
                "width": c.width,
                "stage": c.stage,  # the training stage whose losses chose it
                "checkpoint": ckpt,  # always fully trained weights (null: none exist yet)
                "estimated": c.estimated,
                "cost": net.cost,
                "fixed_cost": c.fixed_cost,
                "head_costs": {t: c.head_cost(t) for t in net.served},
                "losses": {t: c.losses[t] for t in net.served},
                **({"stopped_for": c.stopped_for} if c.stopped_for else {}),  # a per-task stop: that task's best epoch
            })
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": GROUPING_KIND,
            "tasks": list(self.tasks),
            "budget": {"value": self.budget, "unit": self.unit},
            "max_networks": self.max_networks,
            "networks": nets,
            "served_by": dict(self.served_by),
            "objective": self.objective,
            "total_loss": self.total_loss,
            "cost": self.cost,
            "headroom": None if self.budget is None else self.budget - self.cost,  # how far under the budget
            "corun_factor": self.corun_factor,  # cost = sum of the networks' costs x this (networks run together)
            "solver": self.solver,
            "candidates": {"given": self.candidates_total, "after_pruning": self.candidates_searched},
            "solve_time_s": self.solve_time_s,
            "options": self.options,
        }
        from taskgroup.task_tables import declared_in

        declared = declared_in(self.tasks)  # tasks of the config's own [tasks.NAME] tables, for export
        if declared:
            doc["declared_tasks"] = declared
        if self.evaluation is not None:
            doc["evaluated_on"] = self.evaluation.split
            doc["evaluated_losses"] = self.evaluation.losses
            doc["evaluated_total"] = self.evaluation.total
            doc["evaluated_total_best_served"] = self.evaluation.total_best_served
        return doc


class Selector:
    """A pruned problem and its solver, reusable across budgets (the frontier solves many)."""

    def __init__(self, candidates: Sequence[Candidate], tasks: Sequence[str] | None = None, *,
                 weights: Mapping[str, float] | None = None, scales: Mapping[str, float] | None = None,
                 solver: str = "auto", prune: bool = True, unit: str = "snt", formulation: str = "auto",
                 corun: float = 0.0):
        if solver not in SOLVERS:
            raise TaskgroupError(f"unknown solver '{solver}'; valid options: {', '.join(SOLVERS)}")
        if tasks is None:
            tasks = list(dict.fromkeys(t for c in candidates for t in c.tasks))
        full = build_problem(candidates, tasks, weights, scales)
        self.candidates_total = full.n_candidates
        self.problem: Problem = full.subset(prune_dominated(full)) if prune else full
        self.solver, self.unit, self.formulation = solver, unit, formulation
        if not (math.isfinite(corun) and corun >= 0):
            raise TaskgroupError(f"the co-run overhead must be a finite number >= 0, found {corun}")
        self.corun = corun  # a grouping of N networks costs its sum x (1 + corun x (N - 1)) (device profile)
        self._milp = None

    def _model(self):
        if self._milp is None:
            from taskgroup.search.milp import build_model  # scipy.optimize takes ~0.5 s to import

            self._milp = build_model(self.problem, self.formulation)
        return self._milp

    def solve(self, budget: float | None, max_networks: int | None = None,
              time_limit: float | None = None) -> Selection | None:
        """The optimum within the budget, or None if no grouping fits.

        With a co-run overhead c, a grouping of N networks must satisfy sum x (1 + c (N - 1)) <= budget.
        That is exact by cases: for each N, the best grouping of at most N networks within
        budget / (1 + c (N - 1)) (fewer networks only loosen their own bound), then the best of those.
        """
        if max_networks is not None and max_networks < 1:
            raise TaskgroupError(f"--max-networks must be >= 1, found {max_networks}")
        if budget is not None and not math.isfinite(budget):
            raise TaskgroupError(f"the budget must be a finite number, found {budget}")
        if self.corun == 0 or budget is None:
            return self._with_corun(self._solve_plain(budget, max_networks, time_limit))
        start = time.perf_counter()
        best = None
        for n in range(1, (max_networks or len(self.problem.tasks)) + 1):
            sel = self._with_corun(self._solve_plain(budget / corun_factor(self.corun, n), n, time_limit))
            if sel is not None and (best is None or _better(sel, best)):
                best = sel
        if best is not None:
            best.budget, best.max_networks = budget, max_networks
            best.solve_time_s = time.perf_counter() - start
        return best

    def _with_corun(self, sel: Selection | None) -> Selection | None:
        if sel is not None and self.corun:
            sel.corun_factor = corun_factor(self.corun, len(sel.networks))
            sel.cost *= sel.corun_factor
        return sel

    def _solve_plain(self, budget: float | None, max_networks: int | None,
                     time_limit: float | None) -> Selection | None:
        """The optimum of the additive problem (each network costed alone)."""
        start = time.perf_counter()
        used = self.solver
        if used == "auto":
            used = "milp"
            if self.problem.n_candidates <= AUTO_MAX_CANDIDATES and len(self.problem.tasks) <= AUTO_MAX_TASKS:
                try:
                    a = reference_solve(self.problem, budget, max_networks, max_nodes=AUTO_MAX_NODES)
                    used = "reference"
                except SearchTimeout:
                    pass
        if used == "milp":
            a = self._model().solve(budget, max_networks, time_limit)
        elif self.solver == "reference":
            a = reference_solve(self.problem, budget, max_networks, time_limit)
        if a is None:
            return None
        sel = self._selection(a, budget, max_networks, time.perf_counter() - start)
        sel.solver = used
        return sel

    def cheapest(self, max_networks: int | None = None) -> Selection | None:
        """The cheapest grouping serving every task (with a co-run overhead: a grouping that fits
        every budget from its cost up, though not always the smallest such), or None."""
        a = self._model().min_cost(max_networks)
        return None if a is None else self._with_corun(self._selection(a, None, max_networks, 0.0))

    def _selection(self, a: Assignment, budget: float | None, max_networks: int | None, seconds: float) -> Selection:
        prob = self.problem
        a = prefer_trained(prob, a)  # on exact ties, deployable (trained) networks over estimated ones
        order = {t: j for j, t in enumerate(prob.tasks)}
        chosen = sorted(set(a.serve), key=lambda i: (sorted(order[t] for t in prob.candidates[i].tasks),
                                                     prob.candidates[i].width))
        index = {i: k for k, i in enumerate(chosen)}
        networks = [ChosenNetwork(prob.candidates[i], tuple(t for j, t in enumerate(prob.tasks) if a.serve[j] == i))
                    for i in chosen]
        served_by = {t: index[a.serve[j]] for j, t in enumerate(prob.tasks)}
        total = math.fsum(prob.candidates[a.serve[j]].losses[t] for j, t in enumerate(prob.tasks))
        return Selection(tasks=prob.tasks, budget=budget, unit=self.unit, networks=networks, served_by=served_by,
                         objective=a.score, total_loss=total, cost=a.cost, solver=self.solver,
                         max_networks=max_networks, candidates_total=self.candidates_total,
                         candidates_searched=prob.n_candidates, solve_time_s=seconds)

    def infeasible_error(self, budget: float, max_networks: int | None) -> TaskgroupError:
        cheap = self.cheapest(max_networks)
        if cheap is None:
            return TaskgroupError(f"no grouping of at most {max_networks} network(s) serves all {len(self.problem.tasks)} "
                                  "tasks; raise --max-networks")
        nets = ", ".join("+".join(n.candidate.tasks) + f"@{n.candidate.width:g}" for n in cheap.networks)
        limit = "" if max_networks is None else f" with at most {max_networks} network(s)"
        return TaskgroupError(f"budget {budget:g} {self.unit} is below every feasible grouping{limit}: the cheapest "
                              f"grouping serving all {len(self.problem.tasks)} tasks costs {cheap.cost:g} {self.unit} "
                              f"({nets}); use --budget {cheap.cost:g} or more")


def _better(a: Selection, b: Selection) -> bool:
    """Lower objective; on a tie (relative REL_TOL), the lower predicted cost."""
    tol = REL_TOL * max(1.0, abs(b.objective))
    return a.objective < b.objective - tol or (a.objective <= b.objective + tol and a.cost < b.cost)


def select(candidates: Sequence[Candidate], budget: float, *, tasks: Sequence[str] | None = None,
           max_networks: int | None = None, weights: Mapping[str, float] | None = None,
           scales: Mapping[str, float] | None = None, solver: str = "auto", unit: str = "snt",
           prune: bool = True, time_limit: float | None = None, formulation: str = "auto",
           corun: float = 0.0) -> Selection:
    """The exact best grouping within `budget`; raises TaskgroupError naming the cheapest feasible budget."""
    selector = Selector(candidates, tasks, weights=weights, scales=scales, solver=solver, prune=prune, unit=unit,
                        formulation=formulation, corun=corun)
    sel = selector.solve(budget, max_networks, time_limit)
    if sel is None:
        raise selector.infeasible_error(budget, max_networks)
    return sel
