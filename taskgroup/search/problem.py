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
from taskgroup.search.candidates import Candidate, validate_candidates

# Relative tolerance under which two objective (or cost) values count as equal.
REL_TOL = 1e-9
# Relative resolution of budgets: the MILP solver accepts constraint violations of ~1e-7,
# so the frontier steps below a grouping's cost by this much to find the next optimum.
BUDGET_STEP = 1e-6


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
