"""The k best distinct groupings under a budget, for re-ranking estimates by training.

An estimate (HOA from the pairs, TAG or cosine affinity) ranks groupings whose networks were
never trained; its best grouping is only as good as the estimate. Top-k re-ranking trains the
networks of the k best distinct groupings under the estimate (each network once, shared
across groupings) and then chooses among measured networks only (`taskgroup select --top-k`,
`taskgroup pipeline --top-k`).

Two groupings are distinct when their sets of networks differ (which network serves which
task follows from the set: the best assignment of that set). The search is exact: the x/y
MILP (taskgroup.search.milp) is solved k times, each time with a cut excluding the network sets
found so far, and with every chosen network required to serve a task (so a set is exactly the
networks used). Dominance pruning is off here: a network dominated for the optimum can be in
the second-best grouping. With a co-run overhead the k best are found for every number of
networks N (budget / (1 + c (N - 1)), exactly N networks) and merged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.grouping_records import EstimateError, TopKGrouping, TopKNetwork
from taskgroup.profile.costmodel import corun_factor
from taskgroup.search.candidates import Candidate
from taskgroup.search.select import Selector
from taskgroup.search.selection import Selection, better

if TYPE_CHECKING:
    from scipy.optimize import LinearConstraint

MAX_K = 50  # each grouping is one more MILP solve


def top_k(candidates: Sequence[Candidate], budget: float, k: int, *, tasks: Sequence[str] | None = None,
          weights: Mapping[str, float] | None = None, scales: Mapping[str, float] | None = None, unit: str = "snt",
          corun: float = 0.0, max_networks: int | None = None) -> list[Selection]:
    """Up to k groupings with distinct network sets, best first (objective, then cost, then fewest
    estimated networks); fewer if fewer fit the budget."""
    from scipy.optimize import LinearConstraint

    from taskgroup.search.milp import MilpModel

    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise TaskgroupError(f"--top-k must be an integer from 1 to {MAX_K}, got {k!r}")
    # The x/y MILP needs every candidate listed (an estimator's pool too: listing is exact, only slower).
    selector = Selector(candidates, tasks, weights=weights, scales=scales, unit=unit, prune=False, corun=corun,
                        solver="milp")
    model = MilpModel(selector.problem)
    n_tasks = len(selector.problem.tasks)
    limit_n = min(max_networks or n_tasks, n_tasks)
    # A chosen network serves at least one task: x_n <= sum_t y_nt.
    uses = np.zeros((model.n, model.n + model.p))
    uses[np.arange(model.n), np.arange(model.n)] = 1.0
    uses[model.pair_n, model.n + np.arange(model.p)] = -1.0
    base = [LinearConstraint(uses, -np.inf, 0.0)]
    counts = range(1, limit_n + 1) if corun else [None]
    found: list[Selection] = []
    for n in counts:
        extra = list(base)
        if n is not None:
            extra.append(LinearConstraint(model.count_vec[None, :], n, n))
        cap = budget if n is None else budget / corun_factor(corun, n)
        sets: list[frozenset[int]] = []
        for _ in range(k):
            cuts = [_exclude(s, model) for s in sets]
            a = model.solve(cap, None if n is not None else max_networks, extra=extra + cuts)
            if a is None:
                break
            sets.append(frozenset(a.serve))
            sel = selector._selection(a, budget, max_networks, 0.0)
            sel.solver = "milp (k-best)"
            found.append(selector._with_corun(sel))
    ranked: list[Selection] = []
    for sel in found:  # insertion sort by the selection order (objective, cost, estimated networks)
        i = next((j for j, other in enumerate(ranked) if better(sel, other)), len(ranked))
        ranked.insert(i, sel)
    return ranked[:k]


def _exclude(chosen: frozenset[int], model) -> "LinearConstraint":
    """No-good cut: not exactly this set of networks (sum over the set of x - sum outside <= |set| - 1)."""
    from scipy.optimize import LinearConstraint

    row = np.zeros(model.n + model.p)
    row[:model.n] = -1.0
    row[list(chosen)] = 1.0
    return LinearConstraint(row[None, :], -np.inf, len(chosen) - 1)


def networks_to_train(groupings: Sequence[Selection]) -> list[Candidate]:
    """The estimated networks of the groupings, each once, in order of first appearance."""
    out, seen = [], set()
    for g in groupings:
        for n in g.networks:
            c = n.candidate
            if c.estimated and c.key not in seen:
                seen.add(c.key)
                out.append(c)
    return out


def estimate_errors(networks: Sequence[Mapping], measured: Sequence[Candidate]) -> tuple[EstimateError, ...]:
    """Per network a selection only estimated (grouping-file entries: tasks, width, estimated, losses) that
    is now trained (in `measured`), and per task: the estimate, the measured loss and the relative error."""
    out, seen = [], set()
    by_key = {c.key: c for c in measured}
    for n in networks:
        key = (frozenset(n["tasks"]), float(n["width"]))
        m = by_key.get(key)
        if not n.get("estimated") or m is None or key in seen:
            continue
        seen.add(key)
        for t, value in (n.get("losses") or {}).items():
            if t in m.losses and m.losses[t] > 0:
                out.append(EstimateError("+".join(n["tasks"]) + f"@{n['width']:g}", t, value, m.losses[t],
                                         value / m.losses[t] - 1))
    return tuple(out)


def grouping_summary(sel: Selection) -> TopKGrouping:
    """A top-k entry for a grouping file: its networks (name, served tasks, estimated or trained), objective, cost."""
    return TopKGrouping(tuple(TopKNetwork(tuple(n.candidate.tasks), n.candidate.width, tuple(n.served),
                                          n.candidate.estimated, dict(n.candidate.losses)) for n in sel.networks),
                        sel.objective, sel.cost)


def network_list(networks: Sequence[tuple[Sequence[str], float]]) -> str:
    """'a+b@1,c@0.5': (tasks, width) pairs as `taskgroup train --networks` takes them."""
    return ",".join("+".join(tasks) + f"@{width:g}" for tasks, width in networks)
