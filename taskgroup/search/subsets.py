"""Exact selection by dynamic programming over sets of tasks: every optimum at once, for small n.

For each set of tasks m (all 2^n of them), the Pareto front of (cost, score) over the ways to
serve exactly m with served-set columns (`served_set_columns`): a way to serve m is a column
holding m's lowest task plus a way to serve the rest, so fronts are built from smaller sets
up. The front of all tasks is the whole time-vs-loss curve, and a budget is a look-up in it.
Ties are broken as the other solvers break them: lowest score, then lowest cost, then fewest
estimated networks. No limit on the number of networks (`max_networks` goes to the MILP).
The work is about 3^n / 2 column-and-rest pairs times the fronts' length; it stops after
`max_work` combined points (a count, not a clock: the same input always finishes or always
gives up, on any machine).
"""

from __future__ import annotations

import numpy as np

from taskgroup.search.problem import REL_TOL, Assignment, Columns, Problem, evaluate_assignment, served_set_columns

MAX_TASKS = 16  # 2^16 sets of tasks; beyond this the MILP is used
MAX_WORK = 60_000_000  # combined (column, rest) points before giving up


class TooMuchWork(Exception):
    """The fronts grew past the work limit; the MILP should solve this problem instead."""


class SubsetFronts:
    """The Pareto fronts of every set of tasks, built once; `solve` is then a look-up."""

    def __init__(self, problem: Problem | None, max_work: int | None = None, *, columns: Columns | None = None,
                 n_tasks: int | None = None):
        """The fronts of `problem`'s served sets, or of given `columns` over `n_tasks` tasks (then
        `solve` gives each task's column owner, and the score and cost summed over the columns)."""
        max_work = MAX_WORK if max_work is None else max_work
        n = len(problem.tasks) if problem is not None else n_tasks
        if n > MAX_TASKS:
            raise TooMuchWork(f"{n} tasks (at most {MAX_TASKS})")
        self.problem, self.n_tasks = problem, n
        cols = served_set_columns(problem) if columns is None else columns
        self.col_mask, self.col_owner = cols.mask, cols.owner
        low = cols.mask & -cols.mask  # lowest task of each column
        by_low = {int(b): np.nonzero(low == b)[0] for b in np.unique(low)}
        size = 1 << n
        cap = 1 << 16
        f_cost, f_score = np.empty(cap), np.empty(cap)
        f_est, f_col, f_back = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int64)
        ptr = np.zeros(size + 1, dtype=np.int64)
        f_cost[0] = f_score[0] = 0.0
        f_est[0], f_col[0], f_back[0] = 0, -1, -1
        ptr[1] = used = 1
        work = 0
        col_cost, col_score, col_est = cols.cost, cols.score, cols.estimated.astype(np.int64)
        for m in range(1, size):
            cand = by_low.get(m & -m)
            if cand is not None:
                cand = cand[(self.col_mask[cand] & ~m) == 0]  # columns holding m's lowest task, within m
            if cand is None or not len(cand):
                ptr[m + 1] = used
                continue
            rest = m ^ self.col_mask[cand]
            counts = ptr[rest + 1] - ptr[rest]
            total = int(counts.sum())
            if not total:  # no way to serve the rest of m with these columns
                ptr[m + 1] = used
                continue
            work += total
            if work > max_work:
                raise TooMuchWork(f"more than {max_work} combined points")
            which = np.repeat(np.arange(len(cand)), counts)
            idx = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(ptr[rest], counts)
            c = cand[which]
            cost, score, est = f_cost[idx] + col_cost[c], f_score[idx] + col_score[c], f_est[idx] + col_est[c]
            # Pareto front: by cost, then score, then fewer estimated networks; keep a point only if its
            # score is strictly below every cheaper (or equally cheap, earlier) point's.
            order = np.lexsort((est, score, cost))
            s = score[order]
            keep = np.r_[True, s[1:] < np.minimum.accumulate(s)[:-1]]
            order = order[keep]
            k = len(order)
            while used + k > cap:
                cap *= 2
                f_cost, f_score, f_est, f_col, f_back = (np.resize(a, cap) for a in (f_cost, f_score, f_est, f_col, f_back))
            sl = slice(used, used + k)
            f_cost[sl], f_score[sl], f_est[sl], f_col[sl], f_back[sl] = cost[order], score[order], est[order], c[order], idx[order]
            used += k
            ptr[m + 1] = used
        self.f_cost, self.f_score, self.f_est = f_cost[:used], f_score[:used], f_est[:used]
        self.f_col, self.f_back = f_col[:used], f_back[:used]
        full = size - 1
        self.front = np.arange(ptr[full], ptr[full + 1])  # the whole curve, by increasing cost
        self.work = work

    def solve(self, budget: float | None) -> Assignment | None:
        """The optimum within the budget (lowest score, then cost, then estimated networks), or None."""
        front = self.front
        if budget is not None:
            front = front[self.f_cost[front] <= budget + REL_TOL * max(1.0, abs(budget))]
        if not len(front):
            return None
        score, cost = self.f_score[front], self.f_cost[front]
        best = score.min()
        front = front[score <= best + REL_TOL * max(1.0, abs(best))]
        cost = self.f_cost[front]
        cheapest = cost.min()
        front = front[cost <= cheapest + REL_TOL * max(1.0, abs(cheapest))]
        return self._assignment(int(front[np.argmin(self.f_est[front])]))

    def _assignment(self, point: int) -> Assignment:
        serve = [-1] * self.n_tasks
        top = point
        while self.f_col[point] >= 0:
            col = int(self.f_col[point])
            for j in range(len(serve)):
                if (int(self.col_mask[col]) >> j) & 1:
                    serve[j] = int(self.col_owner[col])
            point = int(self.f_back[point])
        if self.problem is None:
            return Assignment(serve=serve, score=float(self.f_score[top]), cost=float(self.f_cost[top]))
        return evaluate_assignment(self.problem, serve)
