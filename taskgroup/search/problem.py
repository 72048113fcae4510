"""The selection problem both solvers read: candidates, the tasks to serve and per-task scores.

The objective is the sum over tasks of the serving network's score, where a score is the
loss times the task's weight divided by its normalisation scale (both 1 by default, which
is the paper's objective: the unweighted sum of serving losses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.search.candidates import Candidate
from taskgroup.search.pool import validate_candidates

# Relative tolerance under which two objective (or cost) values count as equal.
REL_TOL = 1e-9
# Relative resolution of budgets: the MILP solver accepts constraint violations of ~1e-7,
# so the frontier steps below a grouping's cost by this much to find the next optimum.
BUDGET_STEP = 1e-6
# Served-set enumerations (sum over candidates of 2^(tasks it can serve)) above this are too large to hold.
MAX_ENUMERATED = 6_000_000


@dataclass
class Assignment:
    serve: list[int]  # serve[j] = index of the candidate that serves task j
    score: float  # objective value
    cost: float  # total cost of the chosen networks


def evaluate_assignment(prob: "Problem", serve: list[int]) -> Assignment:
    """Score and cost of serving task j by candidate serve[j], recomputed in float64."""
    score = math.fsum(prob.score[n, j] for j, n in enumerate(serve))
    cost = math.fsum(prob.fixed[n] for n in set(serve)) + math.fsum(prob.head[n, j] for j, n in enumerate(serve))
    return Assignment(serve=list(serve), score=score, cost=cost)


@dataclass
class Problem:
    tasks: tuple[str, ...]  # tasks that must each be served exactly once
    candidates: list[Candidate]  # networks the search may choose
    score: np.ndarray  # (N, T) weighted, normalised loss; inf where the candidate cannot serve the task
    head: np.ndarray  # (N, T) cost of serving the task; inf where it cannot
    fixed: np.ndarray  # (N,) fixed cost of each candidate

    @property
    def n_candidates(self) -> int:
        return len(self.candidates)

    def subset(self, keep: Sequence[int]) -> "Problem":
        keep = list(keep)
        return Problem(self.tasks, [self.candidates[i] for i in keep], self.score[keep], self.head[keep], self.fixed[keep])


def build_problem(candidates: Sequence[Candidate], tasks: Sequence[str],
                  weights: Mapping[str, float] | None = None, scales: Mapping[str, float] | None = None) -> Problem:
    """Validate inputs and tabulate scores and costs as arrays (inf = cannot serve)."""
    tasks = tuple(tasks)
    validate_candidates(candidates, tasks)
    w = _per_task(weights, tasks, "weight")
    s = _per_task(scales, tasks, "normalisation scale")
    if any(v == 0 for v in s):
        raise TaskgroupError("a normalisation scale is 0; scales must be > 0")
    col = {t: j for j, t in enumerate(tasks)}
    n = len(candidates)
    score = np.full((n, len(tasks)), np.inf)
    head = np.full((n, len(tasks)), np.inf)
    fixed = np.zeros(n)
    for i, c in enumerate(candidates):
        fixed[i] = c.fixed_cost
        for t, loss in c.losses.items():
            j = col[t]
            score[i, j] = loss * w[j] / s[j]
            head[i, j] = c.head_cost(t)
    uncovered = [t for j, t in enumerate(tasks) if not np.isfinite(score[:, j]).any()]
    if uncovered:
        raise TaskgroupError(f"no candidate network can serve task(s) {uncovered}: every task needs at least one "
                             "network with a loss for it")
    return Problem(tasks, list(candidates), score, head, fixed)


def _per_task(values: Mapping[str, float] | None, tasks: tuple[str, ...], what: str) -> list[float]:
    if not values:
        return [1.0] * len(tasks)
    unknown = [t for t in values if t not in tasks]
    if unknown:
        raise TaskgroupError(f"{what} given for unknown task(s) {unknown}; tasks: {', '.join(tasks)}")
    out = []
    for t in tasks:
        v = float(values.get(t, 1.0))
        if not (math.isfinite(v) and v >= 0):
            raise TaskgroupError(f"{what} of task '{t}' must be a finite number >= 0, found {v}")
        out.append(v)
    return out


def prune_dominated(problem: Problem) -> list[int]:
    """Indices of the candidates that survive exact dominance pruning.

    Candidate A is useless if another candidate B can serve every task A can, with
    fixed cost <= A's and, per task, score <= and head cost <= A's: any grouping using A
    can swap A for B (or merge into B if already chosen) at no higher cost, loss or
    network count. Of identical candidates the first is kept. A network whose losses were
    only estimated (HOA) prunes a trained one only when it is strictly better for every set
    of tasks the trained one could serve (a lower fixed cost, or a lower loss or head cost on
    every task): otherwise they could tie, and on a tie the trained network must stay
    available, since the search prefers weights that exist.
    """
    n, t = problem.score.shape
    estimated = np.array([c.estimated for c in problem.candidates], dtype=bool)
    served = np.isfinite(problem.score)
    masks = (served * (1 << np.arange(t, dtype=np.int64))).sum(axis=1)
    keep = []
    for a in range(n):
        sup = np.nonzero((masks & masks[a]) == masks[a])[0]
        sup = sup[sup != a]
        if sup.size:
            cols = served[a]
            sa, ha = problem.score[a, cols], problem.head[a, cols]
            sb, hb = problem.score[sup][:, cols], problem.head[sup][:, cols]
            dom = (problem.fixed[sup] <= problem.fixed[a]) & (sb <= sa).all(1) & (hb <= ha).all(1)
            if not estimated[a]:
                strictly = (problem.fixed[sup] < problem.fixed[a]) | ((sb < sa) | (hb < ha)).all(1)
                dom &= ~estimated[sup] | strictly
            if dom.any():
                b = sup[dom]
                # Mutual dominance means identical on every servable task: keep the first.
                same = (masks[b] == masks[a]) & (problem.fixed[b] == problem.fixed[a]) \
                    & (sb[dom] == sa).all(1) & (hb[dom] == ha).all(1)
                if (~same).any() or (b < a).any():
                    continue
        keep.append(a)
    return keep


def prune_cost_dominated(problem: Problem) -> list[int]:
    """Indices of the candidates that matter when only cost counts (the cheapest grouping).

    Losses aside, candidate A is useless if another candidate B can serve every task A can
    with fixed cost <= A's and every head cost <= A's. Of identical candidates the first is
    kept.
    """
    n, t = problem.score.shape
    served = np.isfinite(problem.score)
    masks = (served * (1 << np.arange(t, dtype=np.int64))).sum(axis=1)
    keep = []
    for a in range(n):
        sup = np.nonzero(((masks & masks[a]) == masks[a]) & (problem.fixed <= problem.fixed[a]))[0]
        sup = sup[sup != a]
        if sup.size:
            ha, hb = problem.head[a, served[a]], problem.head[sup][:, served[a]]
            sup = sup[(hb <= ha).all(1)]
            same = (masks[sup] == masks[a]) & (problem.fixed[sup] == problem.fixed[a]) \
                & (problem.head[sup][:, served[a]] == ha).all(1)
            if (~same).any() or (sup < a).any():
                continue
        keep.append(a)
    return keep



@dataclass
class Columns:
    """Served sets: one row per (set of tasks served together, network), see `served_set_columns`."""
    mask: np.ndarray  # (C,) int64 bit mask of the tasks served (bit j = tasks[j])
    owner: np.ndarray  # (C,) index of the candidate serving them
    cost: np.ndarray  # (C,) its fixed cost plus the served heads
    score: np.ndarray  # (C,) sum of its scores on the served tasks
    estimated: np.ndarray  # (C,) bool: the owner's losses were estimated


def enumerated_columns(problem: Problem) -> int:
    """How many (served set, network) pairs `served_set_columns` enumerates before filtering."""
    return int((2.0 ** np.isfinite(problem.score).sum(axis=1)).sum())


def served_set_columns(problem: Problem) -> Columns:
    """Every set of tasks a network can serve together, keeping per set only the (cost, score)
    Pareto-best networks.

    A cheaper-and-no-worse network for the same set replaces any other in every grouping, so
    the rest can be dropped; of exact ties a trained network stays before an estimated one,
    then the first. Rows are sorted by set, then cost.
    """
    finite = np.isfinite(problem.score)
    sizes = finite.sum(axis=1)
    masks, scores, costs, owners = [], [], [], []
    for m in np.unique(sizes):  # candidates serving the same number of tasks, all at once
        group = np.nonzero(sizes == m)[0]
        idx = np.nonzero(finite[group])[1].reshape(len(group), m)  # (G, m) the tasks each one serves
        pats = np.arange(1, 1 << m, dtype=np.int64)
        bits = ((pats[:, None] >> np.arange(m)) & 1).astype(np.float64)  # (P, m) every non-empty subset
        rows = group[:, None]
        if len(problem.tasks) <= 52:  # float products (BLAS) are exact below 2^53 and far faster
            masks.append(((np.int64(1) << idx).astype(np.float64) @ bits.T).ravel().astype(np.int64))
        else:
            masks.append(((np.int64(1) << idx) @ bits.T.astype(np.int64)).ravel())
        scores.append((problem.score[rows, idx] @ bits.T).ravel())
        costs.append((problem.fixed[group][:, None] + problem.head[rows, idx] @ bits.T).ravel())
        owners.append(np.repeat(group, len(pats)))
    mask, score, cost, owner = (np.concatenate(v) for v in (masks, scores, costs, owners))
    # A quick first cut per set: a row dearer than the set's best-scoring row, or scoring worse than its
    # cheapest row, is off the front (most of them, when many networks can serve the same set).
    if len(problem.tasks) <= 22:
        where, n_sets = mask, 1 << len(problem.tasks)
    else:
        sets, where = np.unique(mask, return_inverse=True)
        n_sets = len(sets)
    per_set = lambda rows, values: _group_min(where[rows], values[rows], n_sets)  # noqa: E731
    all_rows = np.ones(len(mask), dtype=bool)
    cheapest = per_set(all_rows, cost)
    score_at_cheapest = per_set(cost == cheapest[where], score)
    best = per_set(all_rows, score)
    cost_at_best = per_set(score == best[where], cost)
    near = (score <= score_at_cheapest[where]) & (cost <= cost_at_best[where])
    mask, score, cost, owner = mask[near], score[near], cost[near], owner[near]
    # Sort by set, cost, score, trained before estimated, index; keep a row only if its score beats every
    # earlier (no dearer) row of the same set. Integer ranks keep this exact.
    estimated = np.array([c.estimated for c in problem.candidates], dtype=bool)[owner]
    order = np.lexsort((owner, estimated, score, cost, mask))
    mask, score, cost, owner, estimated = mask[order], score[order], cost[order], owner[order], estimated[order]
    _, rank = np.unique(score, return_inverse=True)
    group = np.r_[0, np.cumsum(mask[1:] != mask[:-1])]
    key = rank.astype(np.int64) - group * (len(rank) + 1)
    prev_min = np.r_[np.iinfo(np.int64).max, np.minimum.accumulate(key)[:-1]]
    first = np.r_[True, mask[1:] != mask[:-1]]
    keep = first | (key < prev_min)
    return Columns(mask[keep], owner[keep], cost[keep], score[keep], estimated[keep])


def _group_min(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.full(n_groups, np.inf)
    np.minimum.at(out, group, values)
    return out
