"""Exact selection without listing every candidate: column generation, then an exact finish.

A grouping is a partition of the tasks into columns (a network and the set of tasks it serves;
see `PartitionModel`). With estimated networks (HOA: every group of 3+ tasks, a million at 20
tasks) there are far too many columns to list, so they are generated on demand:

1. *Restricted master.* The LP relaxation of the partition model over the columns found so far
   (each task served once, the cost within the budget, at most K networks), solved by HiGHS,
   gives duals: pi_t per task, mu <= 0 for the budget, nu <= 0 for the network count.
2. *Pricing.* A column's reduced cost is score - sum_{t served} pi_t - mu cost - nu. For one
   network it is least when the network serves exactly the tasks whose own term
   (score_t - pi_t - mu head_t) is negative, so the best column of every network is a few vector
   operations. Listed networks are rows of a matrix; a family's networks (`PairMeanFamily`)
   are every group of its tasks, whose per-task estimates are pair-loss sums over pair counts,
   built block by block from tables over the low task bits. The most negative columns join the
   master, until no column has a negative reduced cost.
3. *Bound.* For any duals (pi, mu <= 0, nu <= 0) and any grouping x within the budget and the
   network limit, objective(x) >= D + the sum of x's columns' reduced costs, with
   D = sum pi + mu B + nu K (weak duality). With r* the least reduced cost over all columns
   (0 up to rounding once pricing finds none negative), LB = D + n min(0, r*) is a proven lower
   bound on the optimum.
4. *Exact finish.* An integer programme over the generated columns (HiGHS, the same three solves
   as the partition model: objective, then cost, then estimated networks) gives a grouping of
   objective U. A grouping of objective <= U can only use columns whose reduced cost is at most
   U - D (+ the rounding above), so every such column is enumerated (per network, the served
   sets within that reduced cost, a small depth-first search) and the integer programme is
   solved again over them: its answer is the exact optimum, ties broken as by every other solver
   (lower objective, then lower cost, then fewer estimated networks). Where the enumeration would
   pass `MAX_FINISH_COLUMNS` columns, the first grouping is returned with its proven gap U - LB.

The cheapest grouping (to refuse a budget below it, and so that the master always holds a
grouping within the budget) needs no generation: losses aside, a family's all-task network
serves every task any of its networks can, at the same costs (`LazyModel.min_cost`).

The columns themselves, their pricing and the enumeration of step 4 are the column space's
(`taskgroup.search.pricing.ColumnSpace`); this module is the master LP and the search that drives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.search.pool import PairMeanFamily
from taskgroup.search.pricing import ColumnPool, ColumnSpace, Duals, bit_mask, served_sets
from taskgroup.search.problem import REL_TOL, Assignment, Problem, build_problem, evaluate_assignment
from taskgroup.search.problem import Columns
from taskgroup.search.subsets import MAX_TASKS, SubsetFronts, TooMuchWork

COLUMNS_PER_ROUND = 120  # columns of the most negative reduced costs added to the master per round
MAX_ROUNDS = 2000  # pricing rounds before stopping with the bound reached so far
MAX_FINISH_COLUMNS = 300_000  # columns the exact finish may enumerate before it reports the gap instead
FINISH_DP_COLUMNS = 500  # from this many columns on (16 tasks at most), the finish solves by the subset programme
POOL_MAX = 2000  # columns the master keeps between budgets (see `_trim_pool`)


@dataclass
class LazyResult:
    assignment: Assignment  # over `problem`: serve[j] = index into problem.candidates
    problem: Problem  # the chosen networks only (listed, or materialized from a family)
    objective: float  # the objective searched (the score; the cost for the cheapest grouping)
    lower_bound: float  # a proven lower bound on that objective (equal to it when `proven`)
    proven: bool  # no grouping is better
    stats: dict = field(default_factory=dict)  # rounds, columns generated, columns the finish enumerated


class LazyModel(ColumnSpace):
    """The restricted master LP over a pool of columns, column generation to its optimum, and the exact
    finish (see the module's docstring); the columns and their pricing are the `ColumnSpace`'s."""

    def __init__(self, problem: Problem, families: Sequence[PairMeanFamily], weights=None, scales=None):
        super().__init__(problem, families, weights, scales)
        ok = np.isfinite(problem.score)
        self._cheapest: dict[int | None, LazyResult | None] = {}
        self._cheapest_columns: dict[int | None, ColumnPool] = {}
        self._last_duals: Duals | None = None  # of the last budget solved (to trim the pool by)
        self._lp_networks = 0.0  # networks in the last master LP's solution
        parts = [problem.fixed, problem.head[ok]] + [np.r_[f.fixed, f.heads] for f in self.families]
        self.cost_unit = _cost_grid(np.concatenate(parts))  # every cost a multiple of it (SNT: 0.5), or None
        self.min_fixed = float(min([*problem.fixed, *(f.fixed for f in self.families)], default=0.0))
        self.pool = ColumnPool()  # the master's columns, kept across budgets (the frontier solves many)
        for i in range(self.n_listed):  # every listed network serving all it can
            self.pool.add(i, bit_mask(np.nonzero(ok[i])[0]), *self._listed_column(i, np.nonzero(ok[i])[0]))

    def _master(self, budget: float | None, k: int | None, exact: bool = False) -> tuple[Duals, float]:
        """The restricted master LP over the pool (at most k networks; exactly k if `exact`): its duals
        and optimum."""
        from scipy.optimize import linprog
        from scipy.sparse import csr_array, hstack, identity, vstack

        mask, _, score, cost, _ = self.pool.arrays()
        n = len(self.tasks)
        rows = [np.nonzero((mask >> j) & 1)[0] for j in range(n)]
        a_eq = csr_array((np.ones(sum(len(r) for r in rows)), (np.repeat(np.arange(n), [len(r) for r in rows]),
                                                                np.concatenate(rows))), shape=(n, len(mask)))
        # One artificial column per task keeps the master feasible whatever the pool holds: it costs
        # nothing and counts as no network, at a score no grouping reaches.
        a_eq = hstack([a_eq, identity(n, format="csr")], format="csr")
        obj = np.r_[score, np.full(n, 10.0 * self.score_top + 1.0)]
        b_eq = np.ones(n)
        ub_rows, ub = [], []
        if budget is not None:
            ub_rows.append(np.r_[cost, np.zeros(n)])
            ub.append(budget)
        count = np.r_[np.ones(len(mask)), np.zeros(n)]
        if k is not None and exact:
            # Two more artificial columns, one network over or under the count, so that any count is feasible.
            a_eq = vstack([hstack([a_eq, csr_array((n, 2))]), csr_array(np.r_[count, 1.0, -1.0][None, :])],
                          format="csr")
            b_eq, obj, count = np.r_[b_eq, k], np.r_[obj, obj[-1], obj[-1]], np.r_[count, 0.0, 0.0]
            ub_rows = [np.r_[r, 0.0, 0.0] for r in ub_rows]
        elif k is not None:
            ub_rows.append(count)
            ub.append(k)
        res = linprog(obj, A_ub=np.array(ub_rows) if ub_rows else None, b_ub=np.array(ub) if ub else None,
                      A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs",
                      options={"presolve": False})  # small LPs: presolve costs more than it saves
        if res.status != 0:
            raise TaskgroupError(f"the column-generation master LP failed: {res.message}")
        marg = list(res.ineqlin.marginals) if ub_rows else []
        eq = np.asarray(res.eqlin.marginals, dtype=np.float64)
        mu = min(0.0, float(marg.pop(0))) if budget is not None else 0.0
        if k is not None and exact:
            nu = float(eq[n])  # an equality: its dual is free
        else:
            nu = min(0.0, float(marg.pop(0))) if k is not None else 0.0
        self._lp_networks = float(res.x[:len(mask)].sum())  # networks in the LP's solution (fractional)
        return Duals(eq[:n], mu, nu), float(res.fun)

    def _generate(self, budget: float | None, k: int | None, stats: dict, exact: bool = False,
                  stop_above: float | None = None) -> tuple[Duals, float]:
        """Column generation to the master's LP optimum (at most k networks; exactly k if `exact`):
        (final duals, least reduced cost r*), which give the bound D + n_max min(0, r*). With
        `stop_above`, every fourth round reads every column, and generation stops early once that
        bound is above it (the caller needs nothing below it)."""
        n_max = len(self.tasks) if k is None else k
        for step in range(MAX_ROUNDS):
            duals, lp = self._master(budget, k, exact)
            full = stop_above is not None and step % 4 == 3
            r_min, found = self._price(duals, COLUMNS_PER_ROUND, full=full)
            stats["rounds"] = stats.get("rounds", 0) + 1
            new = [c for c in found if (c[1], c[2]) not in self.pool.seen]
            if not new:
                break
            if full and duals.bound(budget, k) + n_max * min(0.0, r_min) > stop_above:
                return duals, r_min
            for _, owner, mask, score, cost, est in new:
                self.pool.add(owner, mask, score, cost, est)
        if r_min is None:  # the last round read only part of the columns: read them all for the bound
            r_min = self._price(duals, COLUMNS_PER_ROUND, full=True)[0]
        if k is None or not exact:
            stats["lp_bound"] = lp
        return duals, r_min

    def _integer(self, columns: ColumnPool, budget: float | None, k: int | None, ties: bool,
                 exact: bool = False) -> tuple[Assignment, ColumnPool] | None:
        """The least-score grouping over `columns` (ties=True: then the least cost, then the fewest
        estimated networks: the full order), as an assignment (serve[j] = owner; score and cost summed
        over its columns) and its columns, or None if they hold no grouping within the limits (at most
        k networks; exactly k if `exact`).

        Many columns (up to 16 tasks, no network limit) go to the dynamic programme over sets of tasks
        (`SubsetFronts`, the full order in one pass): where the LP bound is loose, HiGHS proves the
        optimum over a few thousand of these columns only after tens of seconds of branching (one
        case: 24 s of CPU for 3,434 columns, 16 tasks), the programme in about 2 s."""
        from taskgroup.search.milp import ColumnModel

        from scipy.optimize import LinearConstraint

        mask, owner, score, cost, est = columns.arrays()
        a = None
        if k is None and len(columns) >= FINISH_DP_COLUMNS and len(self.tasks) <= MAX_TASKS:
            try:
                a = SubsetFronts(None, columns=Columns(mask, owner, cost, score, est), n_tasks=len(self.tasks)).solve(budget)
            except TooMuchWork:
                pass
        if a is None:
            model = ColumnModel(len(self.tasks), mask, owner, score, cost, est, self.score_top)
            if exact and k is not None:
                a = model.solve(budget, None, ties=ties, extra=[LinearConstraint(model.count_vec[None, :], k, k)])
            else:
                a = model.solve(budget, k, ties=ties)
        if a is None:
            return None
        chosen = ColumnPool()
        for o, m in served_sets(a.serve).items():
            i = columns.seen[(o, m)]
            chosen.add(o, m, columns.score[i], columns.cost[i], columns.estimated[i])
        return a, chosen

    def _reduced_costs(self, columns: ColumnPool, duals: Duals) -> np.ndarray:
        mask, _, score, cost, _ = columns.arrays()
        bits = ((mask[:, None] >> np.arange(len(self.tasks))) & 1).astype(np.float64)
        return score - bits @ duals.task - duals.budget * cost - duals.count

    def _near(self, columns: ColumnPool, duals: Duals, delta: float) -> ColumnPool:
        """The columns of reduced cost <= delta."""
        out = ColumnPool()
        rc = self._reduced_costs(columns, duals)
        for i in np.nonzero(rc <= delta)[0]:
            out.add(columns.owner[i], columns.mask[i], columns.score[i], columns.cost[i], columns.estimated[i])
        return out

    def solve(self, budget: float | None, k: int | None = None) -> LazyResult | None:
        """The optimum within the budget and at most k networks, or None if no grouping fits."""
        if k is not None and k >= len(self.tasks):
            k = None
        cheap = self.min_cost(k)
        if cheap is None:
            return None
        if budget is not None:
            limit = budget + REL_TOL * max(1.0, abs(budget))
            if cheap.lower_bound > limit:
                return None
            if cheap.objective > limit:
                raise TaskgroupError(f"could not prove whether a grouping fits the budget {budget:g}: the cheapest "
                                     f"found costs {cheap.objective:g}, the proven bound is {cheap.lower_bound:g}; "
                                     "use --solver milp")
        stats: dict = {}
        n_max = len(self.tasks) if k is None else k
        if budget is not None and self.cost_unit:
            # Every grouping costs a multiple of the unit: the budget down to one is the same constraint for
            # groupings, and a much tighter one for the LP (just below a grouping's cost, e.g. on the
            # frontier's steps, it would otherwise take almost all of that grouping fractionally).
            u = self.cost_unit
            budget = math.floor((budget + REL_TOL * max(1.0, abs(budget))) / u) * u
        self._trim_pool()
        duals, r_min = self._generate(budget, k, stats)
        self._last_duals = duals
        lower = duals.bound(budget, k) + n_max * min(0.0, r_min)
        stats["columns_generated"] = len(self.pool)
        # The columns of reduced cost about 0, with the cheapest grouping's (which fit the budget, so there
        # is an answer): where the LP optimum is integral, their best grouping meets the bound, proven.
        root = self._finish(duals, r_min, budget, k, False, lower, self._cheapest_columns[k], stats)
        if root is None:  # too many columns near reduced cost 0 (degenerate): the generated ones instead
            root_columns = self._with(self.pool, self._cheapest_columns[k])
            root = (self._integer(root_columns, budget, k, ties=False)[0], root_columns)
        a, root_columns = root
        if a.score <= lower + _within_tie(lower):
            a = self._tiebreak(a, root_columns, duals, r_min, budget, k, False)
            return self._result(a, lower, True, stats)
        # Otherwise branch on the number of networks: with it fixed the LP is much tighter (at 16 tasks
        # and 5.5 SNT the bound moved from 0.75% below the optimum to 0.02% in the one branch left).
        # A branch whose bound is above the best grouping found cannot hold the optimum, or a tie.
        upper = a.score
        counts = range(1, n_max + 1)
        if budget is not None and self.min_fixed > 0:
            counts = range(1, min(n_max, int(math.floor(budget / self.min_fixed + REL_TOL))) + 1)
        # Branches nearest the LP's own number of networks first: the best grouping is usually there, and a
        # good one found early makes the far branches stop generating as soon as their bound passes it.
        found, proven, lower = [], True, math.inf
        for n in sorted(counts, key=lambda c: (abs(c - self._lp_networks), c)):
            d_n, r_n = self._generate(budget, n, stats, exact=True, stop_above=upper + _within_tie(upper))
            bound = d_n.bound(budget, n) + n * min(0.0, r_n)
            if bound > upper + _within_tie(upper):
                continue
            # Enumerate up to V = the bound + a growing share of the gap to the best known (the columns near
            # reduced cost 0 first: few, and often enough): a grouping found at or below V is the branch's
            # best, and the columns grow with V, so a close grouping found early saves most of the work.
            for share in (0.0, 1 / 64, 1 / 8, 1.0):
                value = bound + share * max(0.0, upper - bound)
                got = self._finish(d_n, r_n, budget, n, True, value, ColumnPool(), stats)
                if got is None:  # too many columns to finish: this branch is only bounded
                    proven, lower = False, min(lower, bound)
                    break
                if got != "empty" and got[0].score <= value + _within_tie(value):
                    found.append((got, d_n, r_n, n))
                    upper = min(upper, got[0].score)
                    break
                if got != "empty":
                    upper = min(upper, got[0].score)
                if share == 1.0 or bound > upper + _within_tie(upper):
                    break  # nothing in this branch at or below the best known
        stats["columns_generated"] = len(self.pool)
        if not found:  # no branch finished: the root's grouping, with the least bound of the branches
            a = self._tiebreak(a, root_columns, duals, r_min, budget, k, False)
            return self._result(a, min(lower, a.score), False, stats)
        # Each branch's best under the whole order (score, cost, estimated networks), then the best of those.
        least = min(f[0][0].score for f in found)
        best = None
        for (a, columns), d_n, r_n, n in found:
            if a.score <= least + REL_TOL * max(1.0, abs(least)):
                a = self._tiebreak(a, columns, d_n, r_n, budget, n, True)
                best = a if best is None or self._precedes(a, best) else best
        return self._result(best, best.score if proven else min(lower, best.score), proven, stats)

    def _trim_pool(self) -> None:
        """Past POOL_MAX columns (a frontier solves many budgets, each adding some), keep the half with the
        least reduced cost under the last budget's duals, and the cheapest groupings' columns: the master
        LP's time grows with its columns, and pricing brings back any that is needed."""
        if len(self.pool) <= POOL_MAX or self._last_duals is None:
            return
        rc = self._reduced_costs(self.pool, self._last_duals)
        keep = set(np.argsort(rc, kind="stable")[:POOL_MAX // 2].tolist())
        for cols in self._cheapest_columns.values():
            keep.update(self.pool.seen[key] for key in cols.seen)
        old, self.pool = self.pool, ColumnPool()
        for i in sorted(keep):
            self.pool.add(old.owner[i], old.mask[i], old.score[i], old.cost[i], old.estimated[i])

    def _precedes(self, a: Assignment, b: Assignment) -> bool:
        """a comes first in the search's order: a lower score; on a tie (relative REL_TOL) a lower cost;
        then fewer estimated networks."""
        tol, ctol = REL_TOL * max(1.0, abs(b.score)), REL_TOL * max(1.0, abs(b.cost))
        return a.score < b.score - tol or (a.score <= b.score + tol and (
            a.cost < b.cost - ctol or (a.cost <= b.cost + ctol and self._estimated(a) < self._estimated(b))))

    def _estimated(self, a: Assignment) -> int:
        return sum(o >= self.n_listed or bool(self.listed_estimated[o]) for o in set(a.serve))

    def _finish(self, duals: Duals, r_min: float, budget: float | None, k: int | None, exact: bool,
                value: float, extra: ColumnPool, stats: dict):
        """The best grouping (least score, ties=False) over every column of reduced cost <= value - D +
        spread (+ slack) and `extra`: (assignment, those columns); "empty" if they hold no grouping;
        None if there are more than MAX_FINISH_COLUMNS. The slack is ten times the tie tolerance
        `_within_tie`: every grouping within that of a best one at or below `value` is in the columns."""
        n_max = len(self.tasks) if k is None else k
        spread = (n_max - 1) * max(0.0, -r_min)  # rounding in the duals, charged to every other column
        slack = 10 * _within_tie(value)
        finish = self._within(duals, value + slack - duals.bound(budget, k) + spread, MAX_FINISH_COLUMNS)
        if finish is None:
            stats["finish_columns"] = f"more than {MAX_FINISH_COLUMNS:,}"
            return None
        if isinstance(stats.get("finish_columns", 0), int):  # columns the finish read, over its integer programmes
            stats["finish_columns"] = stats.get("finish_columns", 0) + len(finish)
        columns = self._with(finish, extra)
        if not len(columns):
            return "empty"
        got = self._integer(columns, budget, k, ties=False, exact=exact)
        return "empty" if got is None else (got[0], columns)

    def _tiebreak(self, a: Assignment, columns: ColumnPool, duals: Duals, r_min: float, budget: float | None,
                  k: int | None, exact: bool) -> Assignment:
        """The first in the whole order (score, cost, estimated networks) among the groupings within the
        tie tolerance of `a`'s score (the least over `columns`). Those use only the columns of reduced
        cost <= a.score - D + spread (+ slack): a much smaller integer programme than the first."""
        n_max = len(self.tasks) if k is None else k
        spread = (n_max - 1) * max(0.0, -r_min)
        slack = 2 * _within_tie(a.score)  # ties are within REL_TOL of a's score, far inside this
        chosen = ColumnPool()
        for o, m in served_sets(a.serve).items():
            i = columns.seen[(o, m)]
            chosen.add(o, m, columns.score[i], columns.cost[i], columns.estimated[i])
        near = self._near(columns, duals, a.score + slack - duals.bound(budget, k) + spread)
        a, chosen = self._integer(self._with(near, chosen), budget, k, ties=True, exact=exact)
        self.pool.extend(chosen)  # the answer's columns join the pool: the next budget starts from them
        return a

    @staticmethod
    def _with(*parts: ColumnPool) -> ColumnPool:
        out = ColumnPool()
        for p in parts:
            out.extend(p)
        return out

    def _result(self, a: Assignment, lower: float, proven: bool, stats: dict) -> LazyResult:
        """Materialize the chosen networks; score and cost are recomputed as the listing solvers do."""
        owners = list(dict.fromkeys(a.serve))
        prob = build_problem([self.candidate(o) for o in owners], self.tasks, self.weights, self.scales)
        index = {o: i for i, o in enumerate(owners)}
        exact = evaluate_assignment(prob, [index[o] for o in a.serve])
        return LazyResult(exact, prob, exact.score, exact.score if proven else min(lower, exact.score), proven, stats)

    def min_cost(self, k: int | None = None) -> LazyResult | None:
        """The cheapest grouping of at most k networks (costs alone), or None if there is none. Cached.

        Losses aside, a family's networks differ only in which tasks they can serve, and the group of
        all its tasks serves every task any of them can, at the same trunk and head costs: the
        cheapest grouping is the exact set cover (`CoverModel`) of the listed networks and each
        family's all-task network. Its columns join the pool, so that the master always holds a
        grouping within any budget that admits one."""
        from taskgroup.search.milp import CoverModel

        if k is not None and k >= len(self.tasks):
            k = None
        if k not in self._cheapest:
            owners = list(range(self.n_listed))
            owners += [self._family_owner(fi, (1 << len(fam.glob)) - 1) for fi, fam in enumerate(self.families)]
            prob = build_problem([self.candidate(o) for o in owners], self.tasks, self.weights, self.scales)
            found = CoverModel(prob).solve(k)
            if found is None:
                self._cheapest[k] = None
            else:
                a, bound = found
                cols = ColumnPool()
                for o, mask in served_sets([owners[i] for i in a.serve]).items():
                    cols.add(o, mask, *self._column(o, mask))
                self._cheapest_columns[k] = cols
                self.pool.extend(cols)
                self._cheapest[k] = LazyResult(a, prob, a.cost, bound, bound >= a.cost, {})
        return self._cheapest[k]


def _within_tie(value: float) -> float:
    """How far above a best score a grouping is still taken as found (1e-8 relative): ten times the
    search's tie tolerance REL_TOL, and a tenth of the slack the finish enumerates with."""
    return 1e-8 * max(1.0, abs(value))


def _cost_grid(costs: np.ndarray) -> float | None:
    """The largest unit u = g / d (d <= 64) of which every cost is a whole multiple, or None."""
    c = costs[costs > 0]
    if not len(c):
        return None
    for d in range(1, 65):
        x = c * d
        whole = np.round(x)
        if np.all(np.abs(x - whole) <= 1e-9 * np.maximum(1.0, x)) and whole.max() < 2 ** 52:
            return float(np.gcd.reduce(whole.astype(np.int64))) / d
    return None


