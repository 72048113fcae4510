"""Exact selection as a mixed-integer linear programme (scipy.optimize.milp, HiGHS).

Variables: x_n = 1 if network n is chosen; y_{n,t} = 1 if n serves task t (only for tasks
n can serve). Constraints: each task served exactly once; y_{n,t} <= x_n; additive cost
sum_n fixed_n x_n + sum_{n,t} head_{n,t} y_{n,t} <= budget; optionally sum_n x_n <= K.
Objective: sum of the serving scores. Ties are broken exactly by a second solve that
minimises cost among the optimal groupings and, when that grouping has an estimated (never
trained) network, a third that minimises the number of estimated networks among the
groupings optimal in both. A chosen network that serves nothing is
dropped from the answer (it can only add cost).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from taskgroup.errors import TaskgroupError
from taskgroup.search.problem import (MAX_ENUMERATED, REL_TOL, Assignment, Problem, enumerated_columns,
                                     evaluate_assignment, prune_cost_dominated, served_set_columns)


class MilpModel:
    """The constraint matrix of one problem, built once and re-solved at many budgets."""

    tie_presolve = False  # HiGHS presolve in the tie-breaking solves (cost, then estimated networks)

    def __init__(self, problem: Problem):
        self.problem = problem
        n, t = problem.score.shape
        rows_n, cols_t = np.nonzero(np.isfinite(problem.score))
        self.pair_n, self.pair_t = rows_n, cols_t
        p = len(rows_n)
        self.n, self.p = n, p
        y = n + np.arange(p)
        # Each task served once: T rows.
        a_serve = csr_array((np.ones(p), (cols_t, y)), shape=(t, n + p))
        # y_{n,t} - x_n <= 0: P rows.
        a_link = csr_array((np.r_[np.ones(p), -np.ones(p)], (np.r_[np.arange(p), np.arange(p)], np.r_[y, rows_n])),
                           shape=(p, n + p))
        self.base = [LinearConstraint(a_serve, 1, 1), LinearConstraint(a_link, -np.inf, 0)]
        self.cost_vec = np.r_[problem.fixed, problem.head[rows_n, cols_t]]
        score = problem.score[rows_n, cols_t]
        # HiGHS stops at an absolute gap of 1e-6; scale scores so that gap is negligible.
        top = float(np.nanmax(np.where(np.isfinite(problem.score), problem.score, np.nan), axis=0).sum()) or 1.0
        self.scale = 1e4 / top
        self.score_vec = np.r_[np.zeros(n), score * self.scale]
        self.count_vec = np.r_[np.ones(n), np.zeros(p)]
        self.estimated_vec = np.r_[[float(c.estimated) for c in problem.candidates], np.zeros(p)]

    def solve(self, budget: float | None, max_networks: int | None = None, time_limit: float | None = None,
              extra: list | None = None, ties: bool = True) -> Assignment | None:
        """Best assignment within the budget (min score, then min cost), or None if infeasible.
        `extra`: further LinearConstraints over (x, y) (e.g. the cuts of a k-best search).
        `ties=False`: the first solve only (the least score; which of several tied groupings is left open)."""
        limit = None if budget is None else budget + REL_TOL * max(1.0, abs(budget))
        row_limit = limit
        for _ in range(4):
            a = self._solve_once(row_limit, max_networks, time_limit, extra, ties)
            # HiGHS accepts rows violated by up to 1e-6 (its MIP feasibility tolerance); the cost row is
            # scaled to make that negligible, and any excess that remains is removed by tightening.
            if a is None or limit is None or a.cost <= limit:
                return a
            row_limit -= (a.cost - limit) + REL_TOL * max(1.0, abs(limit))
        raise TaskgroupError(f"the MILP solver kept exceeding the budget {budget:g} (numerical trouble)")

    def _solve_once(self, limit: float | None, max_networks: int | None, time_limit: float | None,
                    extra: list | None = None, ties: bool = True) -> Assignment | None:
        cons = list(self.base) + list(extra or [])
        if limit is not None:
            scale = 1e4 / max(abs(limit), 1e-6)
            cons.append(LinearConstraint(self.cost_vec[None, :] * scale, -np.inf, limit * scale))
        if max_networks is not None:
            cons.append(LinearConstraint(self.count_vec[None, :], -np.inf, max_networks))
        first = self._run(self.score_vec, cons, time_limit)
        if first is None or not ties:
            return None if first is None else self._assignment(first)
        best = float(self.score_vec @ first)
        cons.append(LinearConstraint(self.score_vec[None, :], -np.inf, best + REL_TOL * max(1.0, abs(best))))
        # HiGHS's presolve is slow on the dense objective row of the listing models (seconds at 12+ tasks) and
        # gains nothing there; over column generation's columns it is what makes these solves quick.
        second = self._run(self.cost_vec, cons, time_limit, presolve=self.tie_presolve)
        sol = second if second is not None else first
        if self.estimated_vec @ sol > 0.5:
            # On exact ties in loss and cost, trained networks (which can be deployed) over estimated ones.
            cost = float(self.cost_vec @ sol)
            ctol = REL_TOL * max(1.0, abs(cost))
            scale = 1e4 / max(abs(cost), 1e-6)
            cons.append(LinearConstraint(self.cost_vec[None, :] * scale, -np.inf, (cost + ctol) * scale))
            third = self._run(self.estimated_vec, cons, time_limit, presolve=self.tie_presolve)
            sol = third if third is not None else sol
        return self._assignment(sol)

    def _run(self, c: np.ndarray, cons: list, time_limit: float | None, presolve: bool = True) -> np.ndarray | None:
        options = {"mip_rel_gap": 0.0, "presolve": presolve}
        if time_limit is not None:
            options["time_limit"] = float(time_limit)
        res = milp(c, constraints=cons, integrality=np.ones(self.n + self.p), bounds=Bounds(0, 1), options=options)
        if res.status == 2:
            return None
        if res.status != 0 or res.x is None:
            raise TaskgroupError(f"the MILP solver did not prove optimality: {res.message}")
        return np.round(res.x)

    def _assignment(self, sol: np.ndarray) -> Assignment:
        prob = self.problem
        serve = [-1] * len(prob.tasks)
        for k in np.nonzero(sol[self.n:] > 0.5)[0]:
            serve[self.pair_t[k]] = int(self.pair_n[k])
        if min(serve) < 0:
            raise AssertionError("MILP solution leaves a task unserved")
        return evaluate_assignment(prob, serve)


class ColumnModel(MilpModel):
    """The partition model over given columns: choose columns (a network and the set of tasks it
    serves) that serve every task exactly once, within the budget.

    `objective` is what the first solve minimises (the columns' scores; or their costs, for the
    cheapest grouping), `top` its scale (the worst total). The answer's `serve[j]` is the owner
    of the column serving task j, and its `score` the objective summed over the chosen columns.
    """

    tie_presolve = True  # measured: 0.4 s instead of 6 s for the fewest estimated networks over 1,162 columns

    def __init__(self, n_tasks: int, mask: np.ndarray, owner: np.ndarray, objective: np.ndarray, cost: np.ndarray,
                 estimated: np.ndarray, top: float):
        self.problem = None
        self.n_tasks = n_tasks
        self.col_mask, self.col_owner = np.asarray(mask, dtype=np.int64), np.asarray(owner, dtype=np.int64)
        n_cols = len(self.col_mask)
        rows, cols = [], []
        for j in range(n_tasks):
            c = np.nonzero((self.col_mask >> j) & 1)[0]
            rows.append(np.full(len(c), j))
            cols.append(c)
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        self.n, self.p = n_cols, 0
        self.base = [LinearConstraint(csr_array((np.ones(len(rows)), (rows, cols)), shape=(n_tasks, n_cols)), 1, 1)]
        self.cost_vec = np.asarray(cost, dtype=np.float64)
        self.objective = np.asarray(objective, dtype=np.float64)
        self.scale = 1e4 / (top or 1.0)
        self.score_vec = self.objective * self.scale
        self.count_vec = np.ones(n_cols)
        self.estimated_vec = np.asarray(estimated, dtype=np.float64)

    def chosen(self, sol: np.ndarray) -> np.ndarray:
        return np.nonzero(sol > 0.5)[0]

    def _assignment(self, sol: np.ndarray) -> Assignment:
        serve = [-1] * self.n_tasks
        chosen = self.chosen(sol)
        for k in chosen:
            for j in range(self.n_tasks):
                if (int(self.col_mask[k]) >> j) & 1:
                    serve[j] = int(self.col_owner[k])
        if min(serve) < 0:
            raise AssertionError("MILP solution leaves a task unserved")
        return Assignment(serve=serve, score=math.fsum(self.objective[chosen]), cost=math.fsum(self.cost_vec[chosen]))


class PartitionModel(ColumnModel):
    """A stronger, equivalent MILP: choose served sets, each a column, partitioning the tasks.

    A column is a set T of tasks served together by one network n (T within the tasks n
    can serve), with cost fixed_n + sum of n's head costs over T and score sum over T. Only
    columns on the (cost, score) Pareto front of each T are kept (a cheaper-and-no-worse
    network for the same T replaces any other). Choosing columns that cover every task
    exactly once, within the budget, is exactly the selection problem: a grouping is such
    a partition, and two columns of the same network merge into one at no more cost. Its
    LP relaxation (set partitioning) is far tighter than the x/y model's. It enumerates
    sum_n 2^(tasks n serves) sets, so it is used while that stays below `MAX_ENUMERATED`.
    """

    tie_presolve = False

    @staticmethod
    def enumerated(problem: Problem) -> int:
        return enumerated_columns(problem)

    def __init__(self, problem: Problem):
        columns = served_set_columns(problem)
        finite = np.isfinite(problem.score)
        top = float(np.nanmax(np.where(finite, problem.score, np.nan), axis=0).sum()) or 1.0
        super().__init__(len(problem.tasks), columns.mask, columns.owner, columns.score, columns.cost,
                         columns.estimated, top)
        self.problem = problem

    def _assignment(self, sol: np.ndarray) -> Assignment:
        return evaluate_assignment(self.problem, super()._assignment(sol).serve)


class CoverModel:
    """The cheapest grouping that serves every task, losses ignored: a small set-cover MILP.

    Without losses a candidate matters only if no other serves a superset of its tasks at no
    higher fixed and head costs (`prune_cost_dominated`). Tasks are covered at least once
    rather than exactly once: serving a task from one network only drops heads, which never
    costs more, so an optimal cover is an optimal grouping. With no head costs the
    variables are the networks alone (x_n: a weighted set cover); with head costs each
    (network, task) pair is a variable too (y_{n,t} <= x_n). On 20 tasks and 3,000
    networks this takes seconds where the same question asked of the served-set partition
    model took minutes, which is what makes an infeasible budget quick to report.
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        self.keep = np.array(prune_cost_dominated(problem), dtype=np.int64)
        served = np.isfinite(problem.score[self.keep])
        fixed = problem.fixed[self.keep]
        head = np.where(served, problem.head[self.keep], 0.0)
        n, t = served.shape
        if head.any():
            rows_n, cols_t = np.nonzero(served)
            p = len(rows_n)
            y = n + np.arange(p)
            a_cover = csr_array((np.ones(p), (cols_t, y)), shape=(t, n + p))
            a_link = csr_array((np.r_[np.ones(p), -np.ones(p)], (np.r_[np.arange(p), np.arange(p)], np.r_[y, rows_n])),
                               shape=(p, n + p))
            self.base = [LinearConstraint(a_cover, 1, np.inf), LinearConstraint(a_link, -np.inf, 0)]
            cost = np.r_[fixed, head[rows_n, cols_t]]
            self.count_vec = np.r_[np.ones(n), np.zeros(p)]
        else:
            self.base = [LinearConstraint(csr_array(served.T.astype(np.float64)), 1, np.inf)]
            cost = fixed
            self.count_vec = np.ones(n)
        # HiGHS stops at an absolute gap of 1e-6: scale costs so that the optimum is >= 1e4, by a power of
        # two so that costs on a grid (e.g. SNT's multiples of 0.5) stay on one and presolve can use it.
        upper = float(np.min(np.where(served, fixed[:, None] + head, np.inf), axis=0).sum())
        self.scale = 2.0 ** math.ceil(math.log2(1e4 * t / upper)) if upper > 0 else 1.0
        self.cost_vec = cost * self.scale

    def solve(self, max_networks: int | None = None) -> tuple[Assignment, float] | None:
        """The cheapest grouping with at most `max_networks` networks and a proven lower bound on its
        cost (equal up to the solver's gap), or None if there is none."""
        cons = list(self.base)
        if max_networks is not None:
            cons.append(LinearConstraint(self.count_vec[None, :], -np.inf, max_networks))
        res = milp(self.cost_vec, constraints=cons, integrality=np.ones(len(self.cost_vec)), bounds=Bounds(0, 1),
                   options={"mip_rel_gap": 0.0})
        if res.status == 2:
            return None
        if res.status != 0 or res.x is None:
            raise TaskgroupError(f"the MILP solver did not prove the cheapest grouping: {res.message}")
        prob = self.problem
        chosen = self.keep[np.round(res.x[:len(self.keep)]) > 0.5]
        serve = []
        for j in range(len(prob.tasks)):
            able = chosen[np.isfinite(prob.score[chosen, j])]
            # The cheapest head; on a tie the better score: losses decide nothing here but read well.
            serve.append(int(min(able, key=lambda i: (prob.head[i, j], prob.score[i, j], i))))
        a = evaluate_assignment(prob, serve)
        bound = float(res.mip_dual_bound) / self.scale if res.mip_dual_bound is not None else a.cost
        return a, min(bound, a.cost)


def build_model(problem: Problem, formulation: str = "auto") -> MilpModel:
    """The served-set partition model when its enumeration is affordable, else the x/y assignment model."""
    if formulation == "auto":
        formulation = "partition" if PartitionModel.enumerated(problem) <= MAX_ENUMERATED else "assignment"
    if formulation == "partition":
        return PartitionModel(problem)
    if formulation == "assignment":
        return MilpModel(problem)
    raise TaskgroupError(f"unknown MILP formulation '{formulation}'; valid options: auto, partition, assignment")
