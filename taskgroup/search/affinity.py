"""Loss estimates for task groups from a one-run affinity table (TAG lookahead or gradient cosine).

Trained: every task alone (full width; the half-width singles are ordinary candidates) and one
full-width network of all n tasks, during whose training the affinity M[u][t] (source u, target
t; taskgroup.affinity) was measured. For a full-width group G and a task t in it:

    S_t(G) = sum over u in G, u != t, of M[u][t] / M[t][t]
    log(L_G(t) / L_single(t)) = -g_t * S_t(G) + c_t * (|G| - 1) / (n - 1)
    g_t    = max(0, log(L_ref(t) / L_single(t)))
    c_t    = log(L_all(t) / L_single(t)) + g_t * S_t(all)

Why: a step on u changes t's loss by M[u][t] (relative) where t's own step changes it by
M[t][t], so S_t(G) counts the groupmates' steps in units of t's own. Training starts at the
trivial predictor (L_ref; every head's bias is initialised to it) and, to first order, the
single-task network's log-loss fell by g_t over its training, g_t per unit of t's own steps;
groupmates add g_t * S_t(G) to that. What affinity does not explain in the measured all-task
network (the residual c_t: capacity shared among more heads, the trunk-gradient scaling, higher
order effects) is spread linearly over the number of groupmates. So a group of one is the single
itself and the all-task group is exactly the measured all-task network. For the cosine kind
M[t][t] = 1: S_t(G) is the sum of gradient cosines, i.e. the same reading with the groupmates'
gradients taken as long as t's.

Assumptions and limits:
- first order: per-step lookahead changes on the training batch are summed over training as if
  they added up (they do not compound, saturate or generalise differently);
- the affinity of the all-task network's training stands for every group's, although in another
  group the trunk follows other gradients;
- the residual is linear in the number of groupmates and the same whichever they are;
- a task the single did not learn (L_single >= L_ref) gets g_t = 0: its estimates follow the
  residual only; so does a task whose self-affinity M[t][t] is not positive, or that has no
  trivial-predictor loss in the table;
- a task without a single or an all-task loss has no estimate and cannot be served by an
  estimated network.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from taskgroup.affinity import ALL_KINDS, AffinityTable
from taskgroup.errors import TaskgroupError
from taskgroup.search.candidates import Candidate, CostFn, make_candidate, snt_cost
from taskgroup.search.registry import register
from taskgroup.search.table import candidates_from_table

if TYPE_CHECKING:
    from taskgroup.losstable import LossTable


@dataclass(frozen=True)
class Calibration:
    """Everything the estimate of a group needs, from one affinity matrix and the measured networks."""

    kind: str  # "tag", "tag-nomomentum" or "cosine"
    tasks: tuple[str, ...]  # the affinity network's tasks (matrix order)
    width: float  # the width estimates are made at (the affinity network's)
    matrix: tuple[tuple[float, ...], ...]  # M[source][target], mean over seeds
    single: dict[str, float]  # task -> L_single(t)
    ratio: dict[str, float]  # task -> L_all(t) / L_single(t), for tasks with both losses
    gain: dict[str, float]  # task -> g_t (0 where affinity is not used for the task)
    residual: dict[str, float]  # task -> c_t

    def groupmates_affinity(self, task: str, group: Iterable[str]) -> float | None:
        """S_t(G): the groupmates' affinity onto `task` in units of its self-affinity (None if that is <= 0)."""
        i = self.tasks.index(task)
        own = self.matrix[i][i]
        if own <= 0:
            return None
        return math.fsum(self.matrix[self.tasks.index(u)][i] for u in group if u != task) / own

    def explained(self, task: str) -> float:
        """-g_t S_t(all): the part of log(L_all / L_single) the affinity accounts for."""
        s = self.groupmates_affinity(task, self.tasks)
        return 0.0 if s is None else -self.gain[task] * s

    def losses(self, group: Sequence[str]) -> dict[str, float]:
        """Estimated loss of every task of `group` it can estimate (a group of one: the single's loss)."""
        unknown = [t for t in group if t not in self.tasks]
        if unknown:
            raise TaskgroupError(f"group {list(group)}: task(s) {unknown} are not in the affinity table {list(self.tasks)}")
        if len(group) == 1:
            return {group[0]: self.single[group[0]]} if group[0] in self.single else {}
        share = (len(group) - 1) / (len(self.tasks) - 1)
        out = {}
        for t in group:
            if t not in self.residual:
                continue
            s = self.groupmates_affinity(t, group)
            log_ratio = self.residual[t] * share - (0.0 if s is None else self.gain[t] * s)
            out[t] = self.single[t] * math.exp(log_ratio)
        return out


def calibrate(measured: Sequence[Candidate], affinity: AffinityTable, kind: str, stage: str = "final",
              reference: dict[str, float] | None = None) -> Calibration:
    """The mapping's per-task numbers from the measured singles and all-task network (losses on one
    split) and `reference` (task -> trivial-predictor loss on that split)."""
    if kind not in ALL_KINDS:
        raise TaskgroupError(f"unknown affinity kind '{kind}'; valid kinds: {', '.join(ALL_KINDS)}")
    tasks, width = affinity.tasks, affinity.width
    if len(tasks) < 2:
        raise TaskgroupError(f"the affinity table has one task ({tasks[0]}): nothing to estimate")
    matrix = tuple(tuple(row) for row in affinity.mean(kind, stage))
    by_key = {c.key: c for c in measured}
    whole = by_key.get((frozenset(tasks), width))
    if whole is None:
        raise TaskgroupError(f"the loss table has no '{stage}' network {'+'.join(tasks)}@{width:g}, the network the "
                             "affinity was measured on; its losses calibrate the affinity estimate")
    single = {t: by_key[(frozenset((t,)), width)].losses[t] for t in tasks
              if (frozenset((t,)), width) in by_key and t in by_key[(frozenset((t,)), width)].losses}
    if not single:
        raise TaskgroupError(f"the loss table has no '{stage}' single-task networks at width {width:g}; the affinity "
                             "estimate scales their losses")
    ratio = {t: whole.losses[t] / single[t] for t in tasks if single.get(t, 0) > 0 and whole.losses.get(t, 0) > 0}
    reference = reference or {}
    gain = {t: max(0.0, math.log(reference[t] / single[t])) if reference.get(t, 0) > 0 else 0.0 for t in ratio}
    cal = Calibration(kind, tasks, width, matrix, single, ratio, gain, {})
    residual = {t: math.log(ratio[t]) - cal.explained(t) for t in ratio}
    return Calibration(kind, tasks, width, matrix, single, ratio, gain, residual)


def calibration_for(table: "LossTable", kind: str = "tag", split: str = "val", stage: str = "final",
                    affinity: AffinityTable | None = None) -> Calibration:
    """The calibration on one split and stage of a loss table (its own affinity table by default)."""

    affinity = affinity if affinity is not None else table_affinity(table)
    return calibrate(candidates_from_table(table, split, stage), affinity, kind, stage,
                     _reference(table, split))


def _reference(table: "LossTable", split: str) -> dict[str, float]:
    return {t: per[split] for t, per in (table.reference_losses or {}).items() if split in per}


def estimate_with_affinity(measured: list[Candidate], cost_fn: CostFn, table: "LossTable | None", split: str,
                           kind: str) -> list[Candidate]:
    """The registered `tag`/`cosine` estimators: keep the measured singles (every width) and the
    affinity network; estimate every other group of 2+ of its tasks at its width. Other measured
    multi-task networks are dropped, so selection sees what this method trains (as HOA drops
    measured 3+-task networks). `measured` holds the losses on `split` of `table`."""
    affinity = table_affinity(table)
    stage = measured[0].stage if measured else "final"
    cal = calibrate(measured, affinity, kind, stage, _reference(table, split))
    whole = frozenset(cal.tasks)
    kept = [c for c in measured if len(c.tasks) == 1 or c.key == (whole, cal.width)]
    groups = [g for k in range(2, len(cal.tasks) + 1) for g in itertools.combinations(cal.tasks, k)
              if frozenset(g) != whole]
    return kept + _estimated(cal, groups, cost_fn, stage)


def affinity_candidates(table: "LossTable", groups: Iterable[Sequence[str]], *, kind: str = "tag",
                        affinity: AffinityTable | None = None, split: str = "val", stage: str = "final",
                        cost_fn: CostFn | None = None) -> list[Candidate]:
    """Estimated candidates (full width) for `groups`, from the measured singles and all-task network
    of `table` on `split` and an affinity table (default: the table's own). A group of one is the
    measured single; the all-task group is estimated at exactly its measured losses."""

    affinity = affinity if affinity is not None else table_affinity(table)
    cost_fn = cost_fn or snt_cost
    measured = candidates_from_table(table, split, stage, cost_fn=cost_fn)
    cal = calibrate(measured, affinity, kind, stage, _reference(table, split))
    out = []
    for group in groups:
        unknown = sorted(set(group) - set(cal.tasks))
        if unknown or not group:
            raise TaskgroupError(f"group {list(group)}: needs tasks of the affinity table {list(cal.tasks)}"
                                 + (f"; unknown: {unknown}" if unknown else ""))
        g = tuple(t for t in cal.tasks if t in set(group))
        if len(g) == 1:
            single = next((c for c in measured if c.key == (frozenset(g), cal.width)), None)
            if single is None:
                raise TaskgroupError(f"the loss table has no single-task network {g[0]}@{cal.width:g}")
            out.append(single)
        else:
            out += _estimated(cal, [g], cost_fn, stage)
    return out


def _estimated(cal: Calibration, groups: Iterable[tuple[str, ...]], cost_fn: CostFn, stage: str) -> list[Candidate]:
    out = []
    for g in groups:
        losses = cal.losses(g)
        if losses:
            out.append(make_candidate(g, cal.width, losses, cost_fn, stage=stage, estimated=True))
    return out


def table_affinity(table: "LossTable | None",
                   how: str = "`taskgroup train --candidates affinity`, or `pipeline --candidates affinity`"
                   ) -> AffinityTable:
    """The affinity measured while the table's all-task network trained; refused, naming `how` to train it
    with tracking, when the table has none."""
    affinity = getattr(table, "affinity", None)
    if affinity is None:
        raise TaskgroupError(f"the loss table has no affinity table: train the all-task network with affinity "
                             f"tracking ({how})")
    return affinity


@register("tag", plan="affinity", uses_table=True)
def tag_estimate(measured: list[Candidate], cost_fn: CostFn, *, table=None, split: str = "val") -> list[Candidate]:
    """One-run lookahead affinity (TAG, Fifty et al. 2021): only the singles and one all-task
    network are trained, with affinity measured during its training; every other full-width
    group's losses are the singles' scaled by the groupmates' affinity onto each task and a
    sharing cost calibrated on the all-task network (taskgroup.search.affinity). Measured networks of 2+ tasks other than the all-task one are
    replaced by estimates."""
    return estimate_with_affinity(measured, cost_fn, table, split, "tag")


@register("cosine", plan="affinity", uses_table=True)
def cosine_estimate(measured: list[Candidate], cost_fn: CostFn, *, table=None, split: str = "val") -> list[Candidate]:
    """As `tag`, with the cosine similarity of the per-task gradients on the shared parameters
    (measured at the same steps) in place of the lookahead affinity."""
    return estimate_with_affinity(measured, cost_fn, table, split, "cosine")


@register("tag-nomomentum", plan="affinity", uses_table=True)
def tag_nomomentum_estimate(measured: list[Candidate], cost_fn: CostFn, *, table=None,
                            split: str = "val") -> list[Candidate]:
    """As `tag`, with the lookahead taken without the optimizer's momentum buffer (measured in the
    same runs): the buffer is shared by every source task and compresses the differences between
    partners (benchmarks/results/tag_momentum.md measures by how much)."""
    return estimate_with_affinity(measured, cost_fn, table, split, "tag-nomomentum")
