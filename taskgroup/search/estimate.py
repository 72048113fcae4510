"""Loss estimators: fill in networks that were never trained, from the ones that were.

An estimator takes the measured candidates and the cost function and returns the list the
search should use. They are looked up by name (`--estimate hoa`); a new one registers itself
with `@register("name")`. An estimator that also needs the loss table (e.g. its affinity
table) sets `uses_table = True` and is called with `table=` and `split=` (the split the
measured losses are from) as keywords.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.search.candidates import Candidate, CostFn, Estimator
from taskgroup.search.pool import CandidatePool, PairMeanFamily

ESTIMATORS: dict[str, Estimator] = {}


def register(name: str):
    def deco(fn: Estimator) -> Estimator:
        ESTIMATORS[name] = fn
        return fn
    return deco


def get_estimator(spec: "str | Estimator") -> Estimator:
    if callable(spec):
        return spec
    try:
        return ESTIMATORS[spec]
    except KeyError:
        raise TaskgroupError(f"unknown estimator '{spec}'; valid options: {', '.join(sorted(ESTIMATORS))}") from None


@register("hoa")
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


@register("tag")
def tag_estimate(measured: list[Candidate], cost_fn: CostFn, *, table=None, split: str = "val") -> list[Candidate]:
    """One-run lookahead affinity (TAG, Fifty et al. 2021): only the singles and one all-task
    network are trained, with affinity measured during its training; every other full-width
    group's losses are the singles' scaled by the groupmates' affinity onto each task and a
    sharing cost calibrated on the all-task network (taskgroup.search.affinity). Measured networks of 2+ tasks other than the all-task one are
    replaced by estimates."""
    from taskgroup.search.affinity import estimate_with_affinity

    return estimate_with_affinity(measured, cost_fn, table, split, "tag")


@register("cosine")
def cosine_estimate(measured: list[Candidate], cost_fn: CostFn, *, table=None, split: str = "val") -> list[Candidate]:
    """As `tag`, with the cosine similarity of the per-task gradients on the shared parameters
    (measured at the same steps) in place of the lookahead affinity."""
    from taskgroup.search.affinity import estimate_with_affinity

    return estimate_with_affinity(measured, cost_fn, table, split, "cosine")


@register("tag-nomomentum")
def tag_nomomentum_estimate(measured: list[Candidate], cost_fn: CostFn, *, table=None,
                            split: str = "val") -> list[Candidate]:
    """As `tag`, with the lookahead taken without the optimizer's momentum buffer (measured in the
    same runs): the buffer is shared by every source task and compresses the differences between
    partners (benchmarks/results/tag_momentum.md measures by how much)."""
    from taskgroup.search.affinity import estimate_with_affinity

    return estimate_with_affinity(measured, cost_fn, table, split, "tag-nomomentum")


@register("base")
def base_estimate(measured: list[Candidate], cost_fn: CostFn, *, table=None, split: str = "val") -> list[Candidate]:
    """Base-model estimation: every full-width group and every half-width single from the all-task
    network (full and half width) and the gradient cosine measured while training it; no single is
    trained (taskgroup.search.base_model). Networks measured in the table keep their losses."""
    from taskgroup.search.base_model import estimate_from_base

    return estimate_from_base(measured, cost_fn, table, split)


@register("rounds")
def rounds_estimate(measured: list[Candidate], cost_fn: CostFn, *, table=None, split: str = "val") -> list[Candidate]:
    """Adaptive training in rounds: networks trained fully keep their losses; every other network of
    the table's early (ESA) stage is estimated from its early losses by the surrogate fitted on the
    networks that have both (taskgroup.search.rounds)."""
    from taskgroup.search.rounds import estimate_from_early

    return estimate_from_early(measured, cost_fn, table, split)


for _fn in (tag_estimate, tag_nomomentum_estimate, cosine_estimate, base_estimate, rounds_estimate):
    _fn.uses_table = True  # type: ignore[attr-defined]

# The candidate set (`taskgroup train --candidates`) each estimator needs trained.
TRAINING_PLANS = {"hoa": "pairs", "tag": "affinity", "tag-nomomentum": "affinity", "cosine": "affinity", "base": "base",
                  "rounds": "rounds"}
