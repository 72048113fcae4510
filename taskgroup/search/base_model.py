"""Base-model estimation: every group's losses from the all-task network alone, singles untrained.

Trained: the full-width network of all n tasks, with inter-task affinity measured during its
training (taskgroup.affinity: the gradient cosine or the TAG lookahead), and the same network
at half width. Nothing else: no single-task network. Every full-width group and every
half-width single is estimated from these two networks and the trivial predictor's losses.

Progress of task t in a network: P(t) = log(L_ref(t) / L(t)), how far below the trivial
predictor (where every head starts) training took its loss. For a full-width group G:

    S_t(G) = sum over u in G, u != t, of M[u][t] / M[t][t]    groupmates' steps in units of t's own
    P_G(t) = g_t * (1 + S_t(G))                               t's own progress, plus its groupmates'
    g_t    = P_all(t) / (1 + S_t(all))                        calibrated on the all-task network
    L_G@w(t) = L_G@1(t) * L_all@w(t) / L_all@1(t)             width: the all-task network's own ratio

So the all-task group reproduces the measured network exactly, and a single is estimated at
L_ref(t) * exp(-g_t): the progress the all-task network made on t, less what its groupmates'
steps contributed to it (first order). With the cosine kind, M[t][t] = 1 and S_t(G) sums the
gradient cosines of t's groupmates onto t (their gradients counted as long as t's).

What it captures: which tasks' gradients help or oppose each other on the shared trunk, as
measured along the all-task network's own training. What it cannot capture:
- capacity: a network shared among fewer tasks has more trunk per task; the model credits a
  smaller group only with losing (or keeping) its groupmates' first-order help, never with
  the capacity freed (the all-task network's trunk-gradient scaling by 1/sqrt(n) included);
- that the affinity of the all-task network's training stands for every group's training;
- saturation: progress is taken as proportional to the steps' first-order effect;
- width: one ratio per task, measured on the all-task network, holds for every group (only
  the singles are offered at half width, as in the paper's candidate set); the half-width
  network is used for this ratio only and is not offered as a candidate itself.
Where a task's affinity cannot be used (M[t][t] <= 0, the all-task network did not get below
the trivial predictor, or 1 + S_t(all) < MIN_SHARE: its groupmates would have to undo most of
its progress) every group gets the all-task network's loss for it. Networks the table holds
fully trained (other than the two above) keep their measured losses: after training the
networks a choice needs, selecting again uses them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from taskgroup.affinity import KINDS, AffinityTable
from taskgroup.errors import TaskgroupError
from taskgroup.search.affinity import table_affinity
from taskgroup.search.candidates import Candidate, CostFn, make_candidate
from taskgroup.search.registry import register
from taskgroup.search.table import candidates_from_table

if TYPE_CHECKING:
    from taskgroup.losstable import LossTable

MIN_SHARE = 0.2  # below this 1 + S_t(all), t's groupmates would cancel most of its progress: affinity not used
FULL, HALF = 1.0, 0.5


@dataclass(frozen=True)
class BaseCalibration:
    """The per-task numbers of the base-model estimate (module doc)."""

    kind: str  # affinity matrix used: "cosine" or "tag"
    tasks: tuple[str, ...]  # the all-task network's tasks (matrix order)
    matrix: tuple[tuple[float, ...], ...]  # M[source][target], mean over seeds
    reference: dict[str, float]  # L_ref(t)
    whole: dict[str, float]  # L_all@1(t)
    own_progress: dict[str, float]  # g_t, for tasks whose affinity is used
    width_ratio: dict[float, dict[str, float]]  # width -> task -> L_all@w(t) / L_all@1(t)

    def groupmates(self, task: str, group: Sequence[str]) -> float:
        """S_t(G)."""
        i = self.tasks.index(task)
        return math.fsum(self.matrix[self.tasks.index(u)][i] for u in group if u != task) / self.matrix[i][i]

    def losses(self, group: Sequence[str], width: float = FULL) -> dict[str, float]:
        """Estimated loss of every task of `group` at `width` (a width the all-task network was trained at)."""
        unknown = [t for t in group if t not in self.tasks]
        if unknown:
            raise TaskgroupError(f"group {list(group)}: task(s) {unknown} are not the all-task network's {list(self.tasks)}")
        if width != FULL and width not in self.width_ratio:
            raise TaskgroupError(f"no all-task network at width {width:g} to estimate from; trained widths: "
                                 + ", ".join(f"{w:g}" for w in [FULL, *self.width_ratio]))
        out = {}
        for t in group:
            if t in self.own_progress:
                loss = self.reference[t] * math.exp(-self.own_progress[t] * (1.0 + self.groupmates(t, group)))
            else:
                loss = self.whole[t]
            out[t] = loss * (self.width_ratio[width][t] if width != FULL else 1.0)
        return out


def calibrate_base(measured: Sequence[Candidate], affinity: AffinityTable, reference: dict[str, float],
                   kind: str = "cosine", stage: str = "final") -> BaseCalibration:
    """The calibration from the measured all-task networks (losses on one split), the affinity
    table and `reference` (task -> trivial-predictor loss on that split)."""
    if kind not in KINDS:
        raise TaskgroupError(f"unknown affinity kind '{kind}'; valid kinds: {', '.join(KINDS)}")
    tasks = affinity.tasks
    if len(tasks) < 2:
        raise TaskgroupError(f"the affinity table has one task ({tasks[0]}): nothing to estimate")
    missing = [t for t in tasks if not reference.get(t, 0) > 0]
    if missing:
        raise TaskgroupError(f"the loss table has no trivial-predictor loss for {missing}; the base-model estimate "
                             "measures progress from it (tables written by `taskgroup train` have it)")
    by_key = {c.key: c for c in measured}
    whole = by_key.get((frozenset(tasks), FULL))
    if whole is None or set(whole.losses) != set(tasks):
        raise TaskgroupError(f"the loss table has no '{stage}' network {'+'.join(tasks)}@1 with a loss for every "
                             "task: the base-model estimate starts from it (`taskgroup train --candidates base`)")
    width_ratio = {}
    for c in measured:
        if c.tasks and frozenset(c.tasks) == frozenset(tasks) and c.width != FULL and set(c.losses) == set(tasks):
            width_ratio[c.width] = {t: c.losses[t] / whole.losses[t] if whole.losses[t] > 0 else 1.0 for t in tasks}
    matrix = tuple(tuple(row) for row in affinity.mean(kind, stage))
    cal = BaseCalibration(kind, tasks, matrix, dict(reference), dict(whole.losses), {}, width_ratio)
    progress = {}
    for i, t in enumerate(tasks):
        reached = math.log(reference[t] / whole.losses[t]) if whole.losses[t] > 0 else 0.0
        if matrix[i][i] <= 0 or reached <= 0:
            continue
        share = 1.0 + cal.groupmates(t, tasks)
        if share >= MIN_SHARE:
            progress[t] = reached / share
    return BaseCalibration(kind, tasks, matrix, dict(reference), dict(whole.losses), progress, width_ratio)


def base_calibration_for(table: "LossTable", kind: str = "cosine", split: str = "val",
                         stage: str = "final") -> BaseCalibration:
    """The calibration on one split and stage of a loss table with an affinity table."""

    affinity = table_affinity(table, "`taskgroup train --candidates base`")
    reference = {t: per[split] for t, per in (table.reference_losses or {}).items() if split in per}
    return calibrate_base(candidates_from_table(table, split, stage), affinity, reference, kind, stage)


def estimate_from_base(measured: list[Candidate], cost_fn: CostFn, table: "LossTable | None", split: str,
                       kind: str = "cosine") -> list[Candidate]:
    """The `base` estimator: every full-width group of the all-task network's tasks and every
    half-width single (where the half-width all-task network was trained), estimated; networks
    measured in the table keep their losses; the all-task networks at other widths are left out
    (they calibrate the width, and are not in the paper's candidate set)."""
    affinity = table_affinity(table, "`taskgroup train --candidates base`")
    stage = measured[0].stage if measured else "final"
    reference = {t: per[split] for t, per in (table.reference_losses or {}).items() if split in per}
    cal = calibrate_base(measured, affinity, reference, kind, stage)
    whole = frozenset(cal.tasks)
    kept = [c for c in measured if not (frozenset(c.tasks) == whole and c.width != FULL)]
    have = {c.key for c in kept}
    out = list(kept)
    order = {t: i for i, t in enumerate(table.tasks)}
    tasks = tuple(sorted(cal.tasks, key=order.__getitem__))  # candidates list their tasks in table order
    for k in range(1, len(tasks) + 1):
        for group in itertools.combinations(tasks, k):
            if (frozenset(group), FULL) not in have:
                out.append(make_candidate(group, FULL, cal.losses(group), cost_fn, stage=stage, estimated=True))
    for width in cal.width_ratio:
        for t in tasks:
            if (frozenset((t,)), width) not in have:
                out.append(make_candidate((t,), width, cal.losses((t,), width), cost_fn, stage=stage, estimated=True))
    return out


@register("base", plan="base", uses_table=True)
def base_estimate(measured: list[Candidate], cost_fn: CostFn, *, table=None, split: str = "val") -> list[Candidate]:
    """Base-model estimation: every full-width group and every half-width single from the all-task
    network (full and half width) and the gradient cosine measured while training it; no single is
    trained (taskgroup.search.base_model). Networks measured in the table keep their losses."""
    return estimate_from_base(measured, cost_fn, table, split)
