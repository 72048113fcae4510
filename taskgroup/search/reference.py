"""A small exact branch-and-bound, independent of the MILP, used to cross-check it.

It assigns tasks one at a time to a candidate that can serve them (every grouping without
pointless networks is exactly one such assignment), keeping the running cost (a network's
fixed cost is paid when it is first used) and pruning with two bounds: the remaining
tasks' cheapest heads must fit the budget, and their best scores must be able to beat the
incumbent. Optimal means minimum score, then minimum cost, then fewest estimated (never
trained) networks. Exponential: meant for tests and small tables (the paper's 36
candidates take milliseconds).
"""

from __future__ import annotations

import time

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.search.problem import REL_TOL, Assignment, Problem, evaluate_assignment


class SearchTimeout(TaskgroupError):
    """The branch-and-bound ran out of its time or node limit (the problem is too large for it)."""


def reference_solve(prob: Problem, budget: float | None, max_networks: int | None = None,
                    time_limit: float | None = None, max_nodes: int | None = None) -> Assignment | None:
    """The optimum (minimum score, then minimum cost, then fewest estimated networks), or None if
    nothing fits the budget.

    `max_nodes` bounds the search tree deterministically (the same input always finishes or
    always gives up, on any machine); `time_limit` bounds it by wall time.
    """
    n_tasks = len(prob.tasks)
    limit = np.inf if budget is None else budget + REL_TOL * max(1.0, abs(budget))
    k_max = max_networks if max_networks is not None else n_tasks
    # Tasks with the fewest options first; options best score first, then cheapest.
    options = []
    for j in range(n_tasks):
        cand = np.nonzero(np.isfinite(prob.score[:, j]))[0]
        order = sorted(cand, key=lambda i: (prob.score[i, j], prob.fixed[i] + prob.head[i, j], i))
        options.append([(int(i), float(prob.score[i, j]), float(prob.head[i, j]), float(prob.fixed[i])) for i in order])
    order_tasks = sorted(range(n_tasks), key=lambda j: len(options[j]))
    best_rest = np.zeros(n_tasks + 1)  # sum of best scores of the tasks from position d on
    cheap_rest = np.zeros(n_tasks + 1)  # sum of cheapest heads of the tasks from position d on
    for d in range(n_tasks - 1, -1, -1):
        opts = options[order_tasks[d]]
        best_rest[d] = best_rest[d + 1] + opts[0][1]
        cheap_rest[d] = cheap_rest[d + 1] + min(o[2] for o in opts)

    estimated = [c.estimated for c in prob.candidates]
    serve = [-1] * n_tasks
    open_count: dict[int, int] = {}
    open_estimated = [0]
    best: list = [np.inf, np.inf, 0, None]  # score, cost, estimated networks, serve
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    nodes = [0]

    def better(score: float, cost: float, n_estimated: int) -> bool:
        if best[3] is None:
            return True
        tol, ctol = REL_TOL * max(1.0, abs(best[0])), REL_TOL * max(1.0, abs(best[1]))
        return score < best[0] - tol or (score <= best[0] + tol and (
            cost < best[1] - ctol or (cost <= best[1] + ctol and n_estimated < best[2])))

    def visit(d: int, score: float, cost: float) -> None:
        nodes[0] += 1
        if max_nodes is not None and nodes[0] > max_nodes:
            raise SearchTimeout(f"reference search did not finish within {max_nodes} nodes; use the MILP solver")
        if deadline is not None and time.perf_counter() > deadline:
            raise SearchTimeout(f"reference search did not finish within {time_limit} s; use the MILP solver")
        if d == n_tasks:
            if better(score, cost, open_estimated[0]):
                best[0], best[1], best[2], best[3] = score, cost, open_estimated[0], list(serve)
            return
        j = order_tasks[d]
        for i, s, h, f in options[j]:
            new_open = i not in open_count
            c = cost + h + (f if new_open else 0.0)
            if c + cheap_rest[d + 1] > limit:
                continue
            if new_open and len(open_count) >= k_max:
                continue
            lb = score + s + best_rest[d + 1]
            if not better(lb, c + cheap_rest[d + 1], open_estimated[0] + (new_open and estimated[i])):
                # Options are sorted by score: once the bound fails on score alone, later ones fail too.
                if best[3] is not None and lb > best[0] + REL_TOL * max(1.0, abs(best[0])):
                    break
                continue
            serve[j] = i
            open_count[i] = open_count.get(i, 0) + 1
            open_estimated[0] += new_open and estimated[i]
            visit(d + 1, score + s, c)
            open_count[i] -= 1
            if not open_count[i]:
                del open_count[i]
                open_estimated[0] -= estimated[i]
        serve[j] = -1

    visit(0, 0.0, 0.0)
    if best[3] is None:
        return None
    return evaluate_assignment(prob, best[3])
