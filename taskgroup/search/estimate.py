"""The paper's Higher Order Approximation: every network of 3+ tasks from the pairs.

The other estimators live with their models (tag, cosine and tag-nomomentum in
taskgroup.search.affinity, base in base_model, rounds in rounds); all are looked up by name
in taskgroup.search.registry.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from taskgroup.search.candidates import Candidate, CostFn
from taskgroup.search.pool import CandidatePool, PairMeanFamily
from taskgroup.search.registry import register

@register("hoa", plan="pairs")
def higher_order_approximation(measured: list[Candidate], cost_fn: CostFn) -> CandidatePool:
    """The paper's Higher Order Approximation: only singles and pairs are trained.

    Every network of 3+ tasks (at each width where pairs exist) gets, for each of its tasks,
    the mean of that task's loss over the pair networks inside the group. Singles and pairs
    keep their measured losses; measured 3+-task networks are replaced by their estimates,
    as in the paper. A task with no pair inside the group has no estimate and cannot be
    served by that network. The estimates are described, not listed (one `PairMeanFamily`
    per width): a pool iterates them all, and the search reads them without listing them.
    """
    kept = [c for c in measured if len(c.tasks) <= 2]
    pairs_by_width: dict[float, list[Candidate]] = defaultdict(list)
    for c in kept:
        if len(c.tasks) == 2:
            pairs_by_width[c.width].append(c)
    # Column order of the tasks, as they appear in the candidates (table order).
    order: dict[str, int] = {}
    for c in measured:
        for t in c.tasks:
            order.setdefault(t, len(order))
    families = []
    for width, pairs in sorted(pairs_by_width.items()):
        tasks = sorted({t for p in pairs for t in p.tasks}, key=order.__getitem__)
        if len(tasks) < 3:
            continue
        col = {t: i for i, t in enumerate(tasks)}
        loss = np.full((len(tasks), len(tasks)), np.nan)
        for p in pairs:
            a, b = p.tasks
            for t, u in ((a, b), (b, a)):
                if t in p.losses:
                    loss[col[t], col[u]] = p.losses[t]
        families.append(PairMeanFamily(tuple(tasks), width, pairs[0].stage, loss, cost_fn))
    return CandidatePool([kept, *families])
