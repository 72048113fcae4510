"""Adaptive training in rounds: which candidates still need full training, and which cannot matter.

Every candidate network starts with a cheap *prior* for its losses: its losses after a fraction
of the training schedule (the ESA snapshot; successive halving over fidelity), or an estimate
such as the base-model one (taskgroup.search.base_model). Networks trained fully are *measured*.
A surrogate fitted on the networks that have both maps a prior to an interval for the final
loss (per task, in log space):

    log L_final(t) = log L_prior(t) + mu_t + e,   e ~ the residual spread s of the fit

mu_t is the mean log ratio of task t over the measured networks holding it; s is the standard
deviation of the residuals pooled over tasks (N samples, K tasks: N - K degrees of freedom);
the interval is mu_t +- q * s * sqrt(1 + 1 / m_t), q the Student-t quantile of `confidence` at
N - K degrees of freedom and m_t the samples of task t (a prediction interval for one more
network). With fewer than one degree of freedom, or for a task no measured network holds, the
interval is unbounded: nothing is decided on it.

A round (`plan_round`), for every budget of the requested range [lo, hi]:
1. The optimum under the point estimates (measured networks exact, the others at the
   surrogate's point) is computed; networks in it that are not measured are trained this round.
2. Once every such optimum is measured, the *exact selection's own bounds* decide the rest: the
   upper bound UB(b) is the optimum with every unmeasured network at the pessimistic end of its
   interval (measured ones exact), and for each unmeasured candidate c, LB_c(b) is the best
   objective of any grouping that contains c with every unmeasured network at its optimistic end.
   c is dropped when LB_c(b) >= UB(b) - tolerance at every budget b of the range (checked
   exactly: at the range's lower end and wherever LB_c can step down inside it): with c, the
   optimum could improve by at most `tolerance`, the seed noise of a grouping's objective, so
   c cannot change the choice beyond noise. The remaining (open) candidates with the largest
   possible improvement are trained next.
3. When no candidate is open the run is done: the optimum among measured networks is, if the
   intervals hold, within `tolerance` of the optimum over every candidate at every budget of the
   range.

What this cannot guarantee: the intervals are statistical (a network whose prior misleads more
than the measured ones did can be dropped wrongly), and the final losses of measured networks
are means over the seeds trained, themselves noisy by the tolerance. A co-run overhead is used
exactly for UB and the point optima and left out of LB_c (which only makes LB_c lower: more
candidates are kept).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.search.candidates import Candidate, CostFn
from taskgroup.search.problem import REL_TOL
from taskgroup.search.registry import register
from taskgroup.search.frontier import frontier
from taskgroup.search.table import candidates_from_table
from taskgroup.stats import sample_variance

DEFAULT_CONFIDENCE = 0.95  # two-sided coverage of each prediction interval
Key = tuple  # (frozenset(tasks), width): a network's identity across tables


@dataclass(frozen=True)
class Surrogate:
    """Per-task offsets mu_t of log(final / prior) and the spread of what they do not explain (module doc)."""

    offsets: Mapping[str, float]  # task -> mean log ratio over the measured networks holding it
    counts: Mapping[str, int]  # task -> how many measured networks hold it (m_t)
    spread: float | None  # residual standard deviation of the networks' (seed-mean) log ratios; None: no dof
    dof: int  # N - K
    quantile: float  # Student-t quantile q of the confidence at `dof` (inf without a spread)
    seeds: int = 1  # seeds every loss is a mean over (1: the seed noise is not separated)
    within: float | None = None  # per-seed residual variance inside one network (seed noise), pooled
    prior_within: float = 0.0  # per-seed variance of log(prior loss) inside one network, pooled

    @property
    def true_variance(self) -> float | None:
        """Between-network variance of the expected log ratio: the residual's, less its seed noise."""
        if self.spread is None:
            return None
        if self.within is None:
            return self.spread ** 2
        return max(0.0, self.spread ** 2 - self.within / self.seeds)

    def log_interval(self, task: str) -> tuple[float, float, float]:
        """(low, point, high) of log(expected final / prior) for an untrained network holding `task`."""
        if task not in self.offsets:
            return -math.inf, 0.0, math.inf  # no measured network holds it: the prior as it is, no bound
        mu = self.offsets[task]
        true = self.true_variance
        if true is None:
            return -math.inf, mu, math.inf
        var = true + self.spread ** 2 / self.counts[task]  # the network's own deviation + mu_t's uncertainty
        if self.within is not None:
            var += self.prior_within / self.seeds  # the network's prior is itself a mean over noisy seeds
        half = self.quantile * math.sqrt(var)
        return mu - half, mu, mu + half

    def predict(self, task: str, prior: float) -> tuple[float, float, float]:
        """(optimistic, point, pessimistic) expected final loss of `task` from its prior loss."""
        lo, mu, hi = self.log_interval(task)
        return prior * math.exp(lo), prior * math.exp(mu), prior * math.exp(hi) if hi < math.inf else math.inf

    def to_json(self) -> dict:
        return {"offsets": dict(self.offsets), "counts": dict(self.counts), "spread": self.spread, "dof": self.dof,
                "quantile": None if math.isinf(self.quantile) else self.quantile, "seeds": self.seeds,
                "within": self.within, "prior_within": self.prior_within, "true_variance": self.true_variance}


SeedLosses = Mapping[Key, Mapping[int, Mapping[str, float]]]  # network -> seed -> task -> loss


def fit_surrogate(priors: Sequence[Candidate], measured: Sequence[Candidate],
                  confidence: float = DEFAULT_CONFIDENCE, prior_seeds: SeedLosses | None = None,
                  measured_seeds: SeedLosses | None = None) -> Surrogate:
    """Fit the surrogate on every (network, task) with a prior and a measured final loss (both > 0).

    With the per-seed losses of both (`prior_seeds`, `measured_seeds`, the same seeds for every
    network, at least two), the residual's seed noise is measured inside each network (a one-way
    random-effects split) and only the rest counts as what the prior cannot predict."""
    if not 0 < confidence < 1:
        raise TaskgroupError(f"confidence must be in (0, 1), got {confidence!r}")
    prior_by_key = {c.key: c for c in priors}
    samples: dict[str, list[float]] = {}
    within, prior_within, seed_counts = [], [], set()
    for m in measured:
        p = prior_by_key.get(m.key)
        if p is None:
            continue
        for t, final in m.losses.items():
            before = p.losses.get(t)
            if before is None or not before > 0 or not final > 0:
                continue
            samples.setdefault(t, []).append(math.log(final / before))
            per_f = (measured_seeds or {}).get(m.key) or {}
            per_p = (prior_seeds or {}).get(m.key) or {}
            both = sorted(s for s in per_f if s in per_p and per_f[s].get(t, 0) > 0 and per_p[s].get(t, 0) > 0)
            if len(both) >= 2:
                r = [math.log(per_f[s][t] / per_p[s][t]) for s in both]
                lp = [math.log(per_p[s][t]) for s in both]
                within.append(sample_variance(r))
                prior_within.append(sample_variance(lp))
                seed_counts.add(len(both))
    offsets = {t: math.fsum(v) / len(v) for t, v in samples.items()}
    n = sum(len(v) for v in samples.values())
    dof = n - len(samples)
    spread, quantile = None, math.inf
    if dof >= 1:
        ss = math.fsum((r - offsets[t]) ** 2 for t, v in samples.items() for r in v)
        spread = math.sqrt(ss / dof)
        from scipy.stats import t as student_t

        quantile = float(student_t.ppf(0.5 + confidence / 2, dof))
    seeded = len(within) == n and n > 0 and len(seed_counts) == 1  # every sample, all with the same seeds
    return Surrogate(offsets, {t: len(v) for t, v in samples.items()}, spread, dof, quantile,
                     seeds=seed_counts.pop() if seeded else 1,
                     within=math.fsum(within) / len(within) if seeded else None,
                     prior_within=math.fsum(prior_within) / len(prior_within) if seeded else 0.0)


@dataclass
class Bounds:
    """The three candidate lists a round searches over (one entry per network)."""

    point: list[Candidate]  # measured networks as measured, the others at the surrogate's point
    optimistic: list[Candidate]  # measured as measured, the others at the low end (0 where unbounded)
    pessimistic: list[Candidate]  # measured as measured, the others at the high end (left out where unbounded)


def bounds(priors: Sequence[Candidate], measured: Sequence[Candidate], surrogate: Surrogate) -> Bounds:
    measured_keys = {m.key for m in measured}
    point, low, high = list(measured), list(measured), list(measured)
    for c in priors:
        if c.key in measured_keys:
            continue
        pred = {t: surrogate.predict(t, v) for t, v in c.losses.items()}
        base = dataclasses.replace(c, estimated=True, stage="final")
        point.append(dataclasses.replace(base, losses={t: p for t, (_, p, _) in pred.items()}))
        low.append(dataclasses.replace(base, losses={t: lo for t, (lo, _, _) in pred.items()}))
        hi = {t: h for t, (_, _, h) in pred.items() if math.isfinite(h)}
        if hi:  # a task without a finite pessimistic loss cannot be counted on from this network
            high.append(dataclasses.replace(base, losses=hi))
    return Bounds(point, low, high)


@dataclass
class RoundPlan:
    """What one round decided (`plan_round`)."""

    train: list[Key]  # networks to train fully now (empty when done)
    reason: str  # why these (or why done), one sentence
    done: bool  # no candidate left that could change the choice beyond the tolerance
    open: list[Key] = field(default_factory=list)  # unmeasured candidates that still could
    dropped: list[Key] = field(default_factory=list)  # unmeasured candidates that cannot (at every budget)
    surrogate: Surrogate | None = None
    gains: dict[Key, float] = field(default_factory=dict)  # unmeasured candidate -> the most it could improve the optimum


def key_name(key: Key, order: Sequence[str]) -> str:
    tasks, width = key
    return "+".join(t for t in order if t in tasks) + f"@{width:g}"


def plan_round(priors: Sequence[Candidate], measured: Sequence[Candidate], budget_range: tuple[float, float], *,
               tasks: Sequence[str], tolerance: float, weights: Mapping[str, float] | None = None,
               scales: Mapping[str, float] | None = None, unit: str = "snt", corun: float = 0.0,
               confidence: float = DEFAULT_CONFIDENCE, round_size: int = 2, prior_seeds: SeedLosses | None = None,
               measured_seeds: SeedLosses | None = None) -> RoundPlan:
    """The next round: the networks to train fully, or done (see the module doc).

    `priors`: one candidate per network with its prior losses (and costs); `measured`: the
    networks trained fully, with their final losses (a network measured but without a prior is
    a candidate as measured). Losses of both on the same split; `tolerance` in objective units."""

    lo, hi = budget_range
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise TaskgroupError(f"budget range must be 0 < low <= high, got {lo!r} to {hi!r}")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise TaskgroupError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if isinstance(round_size, bool) or not isinstance(round_size, int) or round_size < 1:
        raise TaskgroupError(f"round size must be a positive integer, got {round_size!r}")
    tasks = tuple(tasks)
    surrogate = fit_surrogate(priors, measured, confidence, prior_seeds, measured_seeds)
    b = bounds(priors, measured, surrogate)
    measured_keys = {m.key for m in measured}
    kw = dict(tasks=tasks, weights=weights, scales=scales, unit=unit)

    # 1. The optimum under the point estimates, at every budget of the range.
    point_front = frontier(b.point, corun=corun, max_budget=hi, **kw)
    optima = _optima_in_range(point_front, lo, hi)
    if not optima:
        raise TaskgroupError(f"no grouping of the candidates fits a budget of {lo:g} {unit}")
    untrained = list(dict.fromkeys(n.candidate.key for p in optima for n in p.networks
                                   if n.candidate.key not in measured_keys))
    if untrained:
        names = ", ".join(key_name(k, tasks) for k in untrained)
        return RoundPlan(untrained, f"the optimum under the estimates holds network(s) not trained fully: {names}",
                         False, surrogate=surrogate)

    # 2. The selection's own bounds: UB(b) pessimistic optimum, LB_c(b) best optimistic grouping holding c.
    gains = largest_gains(b.optimistic, b.pessimistic, measured_keys, (lo, hi), tasks=tasks, weights=weights,
                          scales=scales, unit=unit, corun=corun)
    gaps = {k: g for k, g in gains.items() if g > tolerance}
    dropped = [k for k, g in gains.items() if not g > tolerance]
    if not gaps:
        return RoundPlan([], "no network left untrained could improve the optimum by more than the tolerance "
                             f"({tolerance:.4g}) at any budget from {lo:g} to {hi:g} {unit}", True, [], dropped,
                         surrogate, gains)
    ranked = sorted(gaps, key=lambda k: (-gaps[k], key_name(k, tasks)))
    chosen = ranked[:round_size]
    names = ", ".join(f"{key_name(k, tasks)} (up to {gaps[k]:.4g})" for k in chosen)
    return RoundPlan(chosen, f"{len(ranked)} untrained network(s) could still improve the optimum by more than "
                             f"{tolerance:.4g}; training the most promising: {names}", False, ranked, dropped, surrogate,
                     gains)


def largest_gains(optimistic: Sequence[Candidate], pessimistic: Sequence[Candidate], measured: set,
                  budget_range: tuple[float, float], *, tasks: Sequence[str], weights: Mapping[str, float] | None = None,
                  scales: Mapping[str, float] | None = None, unit: str = "snt", corun: float = 0.0) -> dict[Key, float]:
    """For every candidate not in `measured`: the most it could improve the optimum at any budget of
    the range, max over b of UB(b) - LB_c(b) (-inf when no grouping holding it fits in the range).

    UB(b): the optimum over `pessimistic` (exact, with the co-run overhead); LB_c(b): the best
    objective of a grouping holding c over `optimistic` (additive costs)."""

    lo, hi = budget_range
    tasks = tuple(tasks)
    upper = frontier(pessimistic, tasks=tasks, weights=weights, scales=scales, unit=unit, corun=corun, max_budget=hi)
    weight = {t: (weights or {}).get(t, 1.0) / (scales or {}).get(t, 1.0) for t in tasks}
    fronts = _SubsetFronts(optimistic, tasks, weight, unit, hi)
    return {c.key: _largest_gain(c, fronts, upper, lo, hi, weight) for c in optimistic if c.key not in measured}


def _optima_in_range(front, lo: float, hi: float) -> list:
    """The frontier's optima at budgets in [lo, hi]: the one at lo and every point costing up to hi."""
    first = front.optimum_at(lo)
    if first is None:
        return []
    return [first] + [p for p in front.points if lo < p.cost <= hi + REL_TOL * max(1.0, hi)]


MAX_TASKS = 12  # the bound's dynamic programme visits every set of tasks; every subset was snapshot anyway


class _SubsetFronts:
    """For every set of tasks R, the Pareto front of (cost, objective) over the ways to serve exactly R
    with the optimistic candidates (additive costs): a dynamic programme from smaller sets up, a way to
    serve R being a (network, served tasks) column holding R's lowest task plus a way to serve the rest."""

    def __init__(self, candidates: Sequence[Candidate], tasks: tuple[str, ...], weight: Mapping[str, float],
                 unit: str, max_budget: float):
        if len(tasks) > MAX_TASKS:
            raise TaskgroupError(f"adaptive rounds bound every set of tasks: at most {MAX_TASKS} tasks, got {len(tasks)}")
        self.tasks = tasks
        bit = {t: 1 << i for i, t in enumerate(tasks)}
        limit = max_budget * (1 + REL_TOL)
        columns: dict[int, list[tuple[float, float]]] = {}
        for c in candidates:
            own = [t for t in tasks if t in c.losses]
            for mask in range(1, 1 << len(own)):
                served = [t for i, t in enumerate(own) if mask >> i & 1]
                cost = c.cost(served)
                if cost <= limit:
                    m = sum(bit[t] for t in served)
                    columns.setdefault(m, []).append((cost, math.fsum(weight[t] * c.losses[t] for t in served)))
        by_low: dict[int, list[tuple[int, float, float]]] = {}
        for m, points in columns.items():
            for cost, score in _pareto(points):
                by_low.setdefault(m & -m, []).append((m, cost, score))
        self.fronts: list[list[tuple[float, float]]] = [[(0.0, 0.0)]] + [[] for _ in range((1 << len(tasks)) - 1)]
        for m in range(1, 1 << len(tasks)):
            points = [(cost + rc, score + rs) for cm, cost, score in by_low.get(m & -m, ()) if not cm & ~m
                      for rc, rs in self.fronts[m ^ cm] if cost + rc <= limit]
            self.fronts[m] = _pareto(points)
        self.bit = bit

    def points(self, rest: frozenset) -> list[tuple[float, float]]:
        """(cost, objective) of the optimal groupings serving exactly `rest`, by increasing cost."""
        return self.fronts[sum(self.bit[t] for t in rest)]


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, score) points not beaten by a cheaper or equally cheap one, by increasing cost."""
    out: list[tuple[float, float]] = []
    for cost, score in sorted(points):
        if not out or score < out[-1][1]:
            out.append((cost, score))
    return out


def _largest_gain(c: Candidate, fronts: _SubsetFronts, upper, lo: float, hi: float,
                  weight: Mapping[str, float]) -> float:
    """max over budgets b in [lo, hi] of UB(b) - LB_c(b) (-inf if no grouping holding c fits in the range).

    LB_c is a step function of b that steps down only where some grouping holding c becomes
    affordable, and UB does not increase with b: the largest gap is at the range's low end or
    at one of those budgets."""
    served_options = []
    own = [t for t in fronts.tasks if t in c.losses]
    for mask in range(1, 1 << len(own)):
        served = frozenset(t for i, t in enumerate(own) if mask >> i & 1)
        cost = c.cost(served)
        if cost > hi * (1 + REL_TOL):
            continue
        served_options.append((cost, math.fsum(weight[t] * c.losses[t] for t in served), served))
    breakpoints = {lo}
    for cost, _, served in served_options:
        for p_cost, _ in fronts.points(frozenset(fronts.tasks) - served):
            b = cost + p_cost
            if lo < b <= hi * (1 + REL_TOL):
                breakpoints.add(b)

    def lb(b: float) -> float:
        best = math.inf
        for cost, obj, served in served_options:
            room = b - cost
            if room < -REL_TOL * max(1.0, b):
                continue
            fits = [o for pc, o in fronts.points(frozenset(fronts.tasks) - served)
                    if pc <= room + REL_TOL * max(1.0, abs(room))]
            if fits:
                best = min(best, obj + fits[-1])
        return best

    gain = -math.inf
    for b in sorted(breakpoints):
        ub = upper.optimum_at(b)
        low = lb(b)
        if ub is not None and low < math.inf:
            gain = max(gain, ub.objective - low)
        elif ub is None and low < math.inf:
            return math.inf  # nothing measured fits here, but a grouping with c might
    return gain



def estimate_from_early(measured: list[Candidate], cost_fn, table, split: str = "val",
                        confidence: float = DEFAULT_CONFIDENCE) -> list[Candidate]:
    """The `rounds` estimator: the networks trained fully as measured, and every network the table
    holds only at its early (ESA) stage at the surrogate's point estimate from its early losses."""

    if table is None:
        raise TaskgroupError("the rounds estimate reads the loss table's early stage; no table was given")
    if measured and measured[0].stage != "final":
        raise TaskgroupError("the rounds estimate selects on fully trained networks and estimates the rest from "
                             "their early stage: select with --stage final")
    if not any(n.stage == "early" for n in table.networks):
        raise TaskgroupError("the loss table has no early-stage networks to estimate from: train with "
                             "`taskgroup train --candidates rounds` (or --esa FRACTION)")
    priors = candidates_from_table(table, split, "early", cost_fn=cost_fn)
    return bounds(priors, measured, fit_surrogate(priors, measured, confidence)).point


@register("rounds", plan="rounds", uses_table=True)
def rounds_estimate(measured: list[Candidate], cost_fn: CostFn, *, table=None, split: str = "val") -> list[Candidate]:
    """Adaptive training in rounds: networks trained fully keep their losses; every other network of
    the table's early (ESA) stage is estimated from its early losses by the surrogate fitted on the
    networks that have both (taskgroup.search.rounds)."""
    return estimate_from_early(measured, cost_fn, table, split)
