"""Exact selection of networks under a budget.

`select()` chooses the set of candidate networks that minimises the total serving score
(the paper's objective: the sum over tasks of the loss of the chosen network that serves
it) with total cost within the budget. Dominated candidates are pruned exactly first, then
the MILP (or the reference branch-and-bound) solves the rest. The default solver, "auto",
tries the branch-and-bound for a fraction of a second on small problems (the paper's
tables take milliseconds, and importing scipy.optimize alone takes ~0.5 s) and uses the
MILP otherwise; both are exact. Among equally good
groupings the cheaper one wins, then the one with fewer estimated (never trained)
networks; exact remaining ties keep the solver's (deterministic) choice. What a search
finds, and the grouping file made of it, is `taskgroup.search.selection.Selection`.
"""

from __future__ import annotations

import math
import time
from typing import Mapping, Sequence

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.profile.costmodel import corun_factor
from taskgroup.search.candidates import Candidate
from taskgroup.search.problem import (MAX_ENUMERATED, REL_TOL, Assignment, Problem, build_problem, enumerated_columns,
                                     evaluate_assignment, prune_dominated)
from taskgroup.search.reference import SearchTimeout, reference_solve
from taskgroup.search.pool import families, listed
from taskgroup.search.colgen import LazyModel
from taskgroup.search.selection import ChosenNetwork, Selection, better
from taskgroup.search.subsets import MAX_TASKS, SubsetFronts, TooMuchWork

SOLVERS = ("auto", "milp", "dp", "reference", "colgen")
AUTO_MAX_CANDIDATES = 200  # "auto" tries the branch-and-bound only up to this many candidates...
AUTO_MAX_TASKS = 8  # ...and tasks,
AUTO_MAX_NODES = 100_000  # ...for at most this many search nodes (about 0.2 s) before switching to the MILP
# "auto" lists an estimator's networks up to this many, else searches them unlisted (column generation). Measured
# (benchmarks/results/select_scaling_hoa.md): one budget, listing is quicker to 11 tasks (2,047 estimated networks),
# column generation from 12 (4,017); the frontier (every budget in one subset programme when listed) to 13 tasks.
AUTO_MAX_LISTED = 2_100
FRONTIER_MAX_LISTED = 8_200


class Selector:
    """A pruned problem and its solver, reusable across budgets (the frontier solves many)."""

    def __init__(self, candidates: Sequence[Candidate], tasks: Sequence[str] | None = None, *,
                 weights: Mapping[str, float] | None = None, scales: Mapping[str, float] | None = None,
                 solver: str = "auto", prune: bool = True, unit: str = "snt", formulation: str = "auto",
                 corun: float = 0.0, list_up_to: int | None = None):

        if solver not in SOLVERS:
            raise TaskgroupError(f"unknown solver '{solver}'; valid options: {', '.join(SOLVERS)}")
        fams = families(candidates)
        # An estimator's families (taskgroup.search.pool) are listed for the listing solvers while that is
        # cheap; above that "auto" searches them without listing them (column generation).
        limit = AUTO_MAX_LISTED if list_up_to is None else list_up_to
        lazy = solver == "colgen" or (solver == "auto" and sum(len(f) for f in fams) > limit)
        self.candidates_total = len(candidates)
        candidates = listed(candidates) if lazy else list(candidates)
        if tasks is None:
            tasks = list(dict.fromkeys([*(t for c in candidates for t in c.tasks), *(t for f in fams for t in f.tasks)]))
        full = build_problem(candidates, tasks, weights, scales)
        self.problem: Problem = full.subset(prune_dominated(full)) if prune else full
        self._lazy = None
        if lazy:

            self._lazy = LazyModel(self.problem, fams, weights, scales)
            solver = "colgen"
        self.solver, self.unit, self.formulation = solver, unit, formulation
        if not (math.isfinite(corun) and corun >= 0):
            raise TaskgroupError(f"the co-run overhead must be a finite number >= 0, found {corun}")
        self.corun = corun  # a grouping of N networks costs its sum x (1 + corun x (N - 1)) (device profile)
        self._milp = None
        self._fronts = None  # SubsetFronts, False if the problem is too large for them
        self._cover = None
        self._min_cost: dict[int | None, tuple[Assignment, float] | None] = {}
        self._greedy: Assignment | None = None

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
        best, bounds = None, []
        for n in range(1, (max_networks or len(self.problem.tasks)) + 1):
            sel = self._with_corun(self._solve_plain(budget / corun_factor(self.corun, n), n, time_limit))
            if sel is not None and sel.lower_bound is not None:
                bounds.append(sel.lower_bound)
            if sel is not None and (best is None or better(sel, best)):
                best = sel
        if best is not None:
            best.budget, best.max_networks = budget, max_networks
            best.solve_time_s = time.perf_counter() - start
            if bounds:  # the optimum is the best over N: its bound is the least of theirs
                best.lower_bound = min(bounds)
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
        if max_networks is not None and max_networks >= len(self.problem.tasks):
            max_networks = None  # no limit in effect
        if self._lazy is not None:
            found = self._lazy.solve(budget, max_networks)
            if found is None:
                return None
            sel = self._selection(found.assignment, budget, max_networks, time.perf_counter() - start, found.problem)
            sel.lower_bound, sel.search = found.lower_bound, found.stats
            return sel
        if used == "auto":
            used = "milp"
            if self.problem.n_candidates <= AUTO_MAX_CANDIDATES and len(self.problem.tasks) <= AUTO_MAX_TASKS:
                try:
                    a = reference_solve(self.problem, budget, max_networks, max_nodes=AUTO_MAX_NODES)
                    used = "reference"
                except SearchTimeout:
                    pass
            if used == "milp" and max_networks is None and self._subset_fronts() is not None:
                used = "dp"
        elif used == "dp":
            if max_networks is not None:
                raise TaskgroupError("--solver dp does not limit the number of networks; use --solver milp or auto")
            if self._subset_fronts() is None:
                raise TaskgroupError(f"--solver dp: the problem is too large for the subset fronts "
                                     f"({self._fronts_why}); use --solver milp or auto")
        if used == "dp":
            a = self._fronts.solve(budget)
        elif used == "milp":
            if budget is not None and self._cannot_fit(budget, max_networks):
                return None
            a = self._model().solve(budget, max_networks, time_limit)
        elif self.solver == "reference":
            a = reference_solve(self.problem, budget, max_networks, time_limit)
        if a is None:
            return None
        sel = self._selection(a, budget, max_networks, time.perf_counter() - start)
        sel.solver = used
        return sel

    def _subset_fronts(self):
        """The subset dynamic programme's fronts (built on first use), or None if the problem is too large."""
        if self._fronts is None:

            self._fronts, self._fronts_why = False, ""
            if len(self.problem.tasks) > MAX_TASKS:
                self._fronts_why = f"{len(self.problem.tasks)} tasks, at most {MAX_TASKS}"
            elif enumerated_columns(self.problem) > MAX_ENUMERATED:
                self._fronts_why = f"more than {MAX_ENUMERATED:,} served sets"
            else:
                try:
                    self._fronts = SubsetFronts(self.problem)
                except TooMuchWork as exc:
                    self._fronts_why = str(exc)
        return self._fronts or None

    def _cannot_fit(self, budget: float, max_networks: int | None) -> bool:
        """True if no grouping of at most `max_networks` networks costs <= budget (additive costs).

        Proving that through the selection MILP can take minutes on large tables (it has to rule
        out every cover near the cheapest), while the cheapest grouping alone is a small set-cover
        problem; a greedy cover first skips even that whenever the budget obviously fits.
        """
        limit = budget + REL_TOL * max(1.0, abs(budget))
        greedy = self._greedy_cover()
        if greedy.cost <= limit and (max_networks is None or len(set(greedy.serve)) <= max_networks):
            return False
        cheapest = self.min_cost(max_networks)
        return cheapest is None or cheapest[1] > limit  # a proven lower bound above the budget

    def _greedy_cover(self) -> Assignment:
        """A quick grouping serving every task: repeatedly the network with the most newly served
        tasks per unit of cost (an upper bound on the cheapest grouping's cost)."""
        if self._greedy is None:
            prob = self.problem
            can = np.isfinite(prob.score)
            serve = [-1] * len(prob.tasks)
            open_ = np.ones(len(prob.tasks), dtype=bool)
            while open_.any():
                gain = (can & open_).sum(axis=1)
                cost = prob.fixed + np.where(can & open_, prob.head, 0.0).sum(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    rate = np.where(gain > 0, gain / cost, -1.0)  # a free network with gain gets inf
                n = int(np.argmax(rate))
                for j in np.nonzero(can[n] & open_)[0]:
                    serve[j] = n
                open_ &= ~can[n]
            self._greedy = evaluate_assignment(prob, serve)
        return self._greedy

    def min_cost(self, max_networks: int | None = None) -> tuple[Assignment, float] | None:
        """The cheapest grouping of at most `max_networks` networks, each costed alone, with a proven
        lower bound on that cost; None if there is none. Exact (a set-cover MILP), cached per limit."""
        if max_networks is not None and max_networks >= len(self.problem.tasks):
            max_networks = None
        if max_networks not in self._min_cost:
            free = self.min_cost(None) if max_networks is not None else None
            if free is not None and len(set(free[0].serve)) <= max_networks:
                self._min_cost[max_networks] = free  # the cheapest without a limit already fits it
            else:
                if self._cover is None:
                    from taskgroup.search.milp import CoverModel

                    self._cover = CoverModel(self.problem)
                self._min_cost[max_networks] = self._cover.solve(max_networks)
        return self._min_cost[max_networks]

    def cheapest(self, max_networks: int | None = None) -> Selection | None:
        """The cheapest grouping serving every task (co-run factor included), or None.

        With a co-run overhead, fewer networks can be cheaper though their sum is higher: the
        cheapest grouping of at most N networks is found for N = the previous answer's count - 1
        down to 1, and the cheapest of these after the factor wins (exact).
        """
        best = None
        found = self._cheapest_plain(max_networks)
        while found is not None:
            sel = self._with_corun(self._selection(found[0], None, max_networks, 0.0, found[1]))
            if best is None or sel.cost < best.cost:
                best = sel
            if not self.corun or len(sel.networks) <= 1:
                break
            found = self._cheapest_plain(len(sel.networks) - 1)
        return best

    def _cheapest_plain(self, max_networks: int | None) -> tuple[Assignment, Problem] | None:
        """The cheapest grouping of at most `max_networks` networks (each costed alone) and the problem
        its assignment indexes, or None."""
        if self._lazy is not None:
            found = self._lazy.min_cost(max_networks)
            return None if found is None else (found.assignment, found.problem)
        found = self.min_cost(max_networks)
        return None if found is None else (found[0], self.problem)

    def _selection(self, a: Assignment, budget: float | None, max_networks: int | None, seconds: float,
                   problem: Problem | None = None) -> Selection:
        """The Selection of assignment `a` over `problem` (default: the selector's)."""
        prob = problem or self.problem
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
                         candidates_searched=self.candidates_searched, solve_time_s=seconds)

    @property
    def candidates_searched(self) -> int:
        """Candidates left after exact dominance pruning (with column generation: the listed ones left
        and every network of the estimator's families, searched without listing them)."""
        return self.problem.n_candidates + (0 if self._lazy is None else self._lazy.family_networks)

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
