"""Groupings that do not flip with latency noise: the rule selection fits by, and how robust a choice is.

Measured latencies move between runs (two consecutive profiles of the same machine put the
standard network at 0.289 and 0.309 ms). A profile stores that noise: each part's median in
every interleaved timing round, whose spread is its noise sigma (`LatencyStats.noise`).

The rule: a grouping fits the budget when its predicted cost plus `sigmas` times its noise
does (the noise of a grouping is the sum of its parts' noise, as load moves them together).
Among groupings that fit, the lowest loss wins, as always. A grouping sitting within its noise
of the budget is therefore left out on every run rather than in and out by chance, and the
chosen one fits with room for the noise. Costs written into the grouping stay the predictions
at the profile's statistic (what `bench` compares against); the cost the rule used is
`robustness.fit_cost_ms`.

How much room: a part's noise sigma is the standard error of this profile's estimate of its
cost. What can undo a choice is the next profile of the machine, whose estimate differs from
this one's by the difference of two such estimates, with standard deviation sqrt(2) sigma. The
default margin is sized for that change: sigmas = sqrt(2) x z, z the one-sided Gaussian quantile
of NEXT_PROFILE_RISK (5%), so a grouping that fits exactly at the margin is predicted over the
budget by the next profile with a 5% chance (one-sided), and one with room to spare less often.
That holds if the change is Gaussian and the noise estimate is accurate (it comes from the
profile's 5 timing rounds, pooled over the parts of each width); summing the parts' sigmas
assumes they move together and overstates a grouping's noise where they do not, so the real
risk is lower there. `risk_at_margin` gives the risk for any other margin (2 sigmas: 7.9%).

`--budget-snt Y` is Y times the standard network measured in the same profile, so a
machine that is uniformly faster or slower on the next run gives the same grouping; what
can still change it is parts moving relative to each other, which the noise measures.
Profiles written before the noise was stored have none: their rule is plain p50 and their
robustness report says the noise is unknown.

No torch here: `taskgroup select` stays torch-free.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Callable, Mapping, Sequence

from taskgroup.grouping_records import ExcludedByNoise, NearBudget, RobustnessRecord
from taskgroup.profile.costmodel import DeviceProfile, corun_factor
from taskgroup.search.candidates import Candidate
from taskgroup.search.frontier import frontier_points
from taskgroup.search.problem import REL_TOL
from taskgroup.search.select import Selector
from taskgroup.search.selection import ChosenNetwork, Selection, grouping_key
from taskgroup.search.withinnoise import record_rule

NEXT_PROFILE_RISK = 0.05  # one-sided chance that the next profile predicts a grouping at the margin over budget
NOISE_SIGMAS = math.sqrt(2) * NormalDist().inv_cdf(1 - NEXT_PROFILE_RISK)  # 2.326: costs at p50 + this x sigma


def risk_at_margin(sigmas: float) -> float:
    """The one-sided chance that the next profile predicts a grouping fitting exactly at a margin of
    `sigmas` x its noise over the budget: the change between two profiles has sd sqrt(2) x sigma."""
    return 1.0 - NormalDist().cdf(sigmas / math.sqrt(2))


def with_noise_margin(candidates: Sequence[Candidate], profile: DeviceProfile, sigmas: float) -> list[Candidate]:
    """The same candidates costed for fitting: every part at its latency + `sigmas` x its noise."""
    if not sigmas:
        return list(candidates)
    cost_fn = profile.with_noise_margin(sigmas).cost_fn
    out = []
    for c in candidates:
        fixed, heads = cost_fn(c.width, c.tasks)
        out.append(dataclasses.replace(c, fixed_cost=float(fixed), head_costs={t: float(heads[t]) for t in c.tasks}))
    return out


def grouping_noise_ms(sel: Selection, profile: DeviceProfile) -> float:
    """Noise of a grouping's predicted cost: its networks' noise summed, times the co-run factor, plus
    the co-run factor's own uncertainty (its standard error x (N - 1) x the networks' summed cost)."""
    total = sum(profile.network_noise_ms(n.candidate.width, n.served) for n in sel.networks)
    alone = sum(profile.network_ms(n.candidate.width, n.served) for n in sel.networks)
    extra = len(sel.networks) - 1
    return total * corun_factor(profile.corun, len(sel.networks)) + profile.corun_se * extra * alone


def predicted(sel: Selection, candidates: Sequence[Candidate], corun: float) -> Selection:
    """The same grouping costed with `candidates` (the predictions) and the profile's fitted co-run
    overhead `corun` (the search may have used its upper bound), matched by task set and width."""
    by_key = {c.key: c for c in candidates}
    nets = [ChosenNetwork(by_key[n.candidate.key], n.served) for n in sel.networks]
    factor = corun_factor(corun, len(nets))
    cost = sum(n.cost for n in nets) * factor
    return dataclasses.replace(sel, networks=nets, cost=cost, corun_factor=factor)


@dataclass
class Robustness:
    """How the chosen grouping stands against latency noise (all costs in ms)."""
    sigmas: float  # the rule: a grouping fits if cost + sigmas x noise <= budget
    budget: float  # the budget searched under
    cost: float  # the choice's predicted cost (at the profile's statistic)
    noise: float  # the choice's noise (standard deviation of its cost); 0 if the profile has none
    fit_cost: float  # cost + sigmas x noise: what the rule compared with the budget
    holds_from: float  # below this budget the rule chooses otherwise (the choice no longer fits, or a cheaper one is within noise)
    holds_to: float | None  # from this budget on, the rule chooses another grouping (None: never)
    near_budget: list[NearBudget] = field(default_factory=list)  # other optima whose cost is within noise of it
    standard_ms: float | None = None  # one SNT, to state budgets in SNT too
    noise_known: bool = True  # False for profiles written before the noise was stored
    sigmas_asked: float = 0.0  # the margin asked for; above `sigmas` when nothing fitted with it (noisy profile)

    @property
    def margin(self) -> float:
        """How far under the budget the choice is, at the rule's cost."""
        return self.budget - self.fit_cost

    def record(self) -> RobustnessRecord:
        """The grouping file's `robustness` record, with its sentence."""
        snt = self.standard_ms or None
        record = RobustnessRecord(
            rule=f"a grouping fits if its predicted cost + {self.sigmas:.3g} x its noise <= budget; "
                 "the lowest loss among those wins",
            sigmas=self.sigmas, risk_next_profile=risk_at_margin(self.sigmas) if self.sigmas > 0 else None,
            sigmas_asked=self.sigmas_asked, noise_known=self.noise_known, noise_ms=self.noise, cost_ms=self.cost,
            fit_cost_ms=self.fit_cost, budget_ms=self.budget, margin_ms=self.margin,
            # a budget near the largest float leaves a margin of "infinitely" many sigmas: JSON needs a number
            margin_sigmas=min(self.margin / self.noise, sys.float_info.max) if self.noise > 0 else None,
            holds_from_ms=self.holds_from, holds_to_ms=self.holds_to, near_budget=tuple(self.near_budget),
            standard_network_ms=snt, holds_from_snt=None if snt is None else self.holds_from / snt,
            holds_to_snt=None if snt is None or self.holds_to is None else self.holds_to / snt)
        return dataclasses.replace(record, sentence=robustness_sentence(record))


def _optimum_index(points: Sequence[Selection], budget: float) -> int:
    """The optimum at `budget` among frontier points: the dearest that fits."""
    return max(k for k, p in enumerate(points) if p.cost <= budget + REL_TOL * max(1.0, abs(budget)))


Tolerance = Callable[[Selection, Selection], float]  # (optimum, other grouping) -> objective tolerance


def _tolerance_fn(tolerance: "float | Tolerance") -> Tolerance | None:
    """A tolerance function from a number (the same for every pair; 0: the rule is off) or a function."""
    if callable(tolerance):
        return tolerance
    return (lambda optimum, other: float(tolerance)) if tolerance > 0 else None


def _cheapest_within(points: Sequence[Selection], k: int, tolerance: Tolerance) -> int:
    """The cheapest frontier point whose objective is within its tolerance of point k's. With one
    tolerance for every pair it is also the cheapest of all groupings within it: the optimum at that
    grouping's cost is at least as good and no dearer, so it is a frontier point of the same cost."""
    for i in range(k):
        edge = points[k].objective + tolerance(points[k], points[i])
        if points[i].objective <= edge + REL_TOL * max(1.0, abs(edge)):
            return i
    return k


def assess(selector: Selector, chosen: Selection, budget: float, profile: DeviceProfile, sigmas: float,
           standard_ms: float | None = None, max_networks: int | None = None, asked: float | None = None,
           tolerance: "float | Tolerance" = 0.0, points: Sequence[Selection] | None = None) -> Robustness:
    """The margin, the budget range the choice holds for and the optima near the budget.

    `selector` and `chosen` are costed for fitting (see `with_noise_margin`); the range comes from
    the frontier of those costs, so it is exact under the rule. With `tolerance` the choice is the
    cheapest grouping within it of the optimum, and the range is that rule's.
    """
    points = list(points) if points is not None else frontier_points(selector, max_networks)
    names = grouping_key(chosen)
    # The optimum at this budget: the dearest frontier point that fits (the choice, or an exact tie of it).
    at = _optimum_index(points, budget)
    noise = grouping_noise_ms(chosen, profile)
    fit_cost = chosen.cost
    cost = fit_cost - sigmas * noise
    near = []
    for p in points:
        if grouping_key(p) == names:
            continue
        p_noise = grouping_noise_ms(p, profile)
        p_cost = p.cost - sigmas * p_noise
        if abs(p_cost - budget) <= max(sigmas, 1.0) * p_noise:
            near.append(NearBudget(tuple(_label(n) for n in p.networks), p_cost, p.cost, p_noise, p.objective,
                                   p.cost <= budget * (1 + 1e-9)))
    holds_from, holds_to = fit_cost, points[at + 1].cost if at + 1 < len(points) else None
    rule = _tolerance_fn(tolerance)
    if rule is not None:  # the choice as a function of the budget is the cheapest within tolerance of its optimum
        picks = [_cheapest_within(points, k, rule) for k in range(len(points))]
        first = at
        while first > 0 and picks[first - 1] == picks[at]:
            first -= 1
        holds_from = points[first].cost
        later = next((k for k in range(at + 1, len(points)) if picks[k] != picks[at]), None)
        holds_to = points[later].cost if later is not None else None
    return Robustness(sigmas, budget, cost, noise, fit_cost, holds_from, holds_to, near, standard_ms,
                      noise_known=profile.has_noise, sigmas_asked=sigmas if asked is None else asked)


def robustness_sentence(block: RobustnessRecord) -> str:
    """One sentence for reports, from a grouping's `robustness` record: where the choice would change."""
    def ms(value: float, snt: float | None) -> str:
        return f"{value:.4g} ms" + (f" ({snt:.4g} SNT)" if snt is not None else "")

    above = (f"above {ms(block.holds_to_ms, block.holds_to_snt)}" if block.holds_to_ms is not None
             else "at no larger budget")
    if block.noise_known is False:
        noise = "the profile stores no latency noise (measured before it was recorded), so costs are plain p50"
    elif (block.sigmas_asked or 0) > block.sigmas:
        noise = (f"no grouping fits with {block.sigmas_asked:.3g} sigma of noise (this choice's sigma is "
                 f"{block.noise_ms:.3g} ms), so it was made on the plain prediction and may change between runs")
    else:
        risk = block.risk_next_profile
        noise = (f"the margin is {block.margin_ms:.3g} ms after allowing {block.sigmas:.3g} sigma of noise "
                 f"(sigma {block.noise_ms:.3g} ms" + (f"; a grouping fitting exactly at that margin would be "
                                                      f"predicted over the budget by the next profile with a "
                                                      f"{risk:.1%} chance, one-sided" if risk else "") + ")")
    near = len(block.near_budget or ())
    others = f"; {near} other optimal grouping(s) cost within their noise of the budget" if near else ""
    return f"The choice would change below {ms(block.holds_from_ms, block.holds_from_snt)} / {above}; {noise}{others}."


def _label(net: ChosenNetwork) -> str:
    c = net.candidate
    return "+".join(c.tasks) + f"@{c.width:g}" + (f" serving {','.join(net.served)}" if net.served != c.tasks else "")


def solve_under_noise(candidates: Sequence[Candidate], profile: DeviceProfile, budget: float, sigmas: float,
                      max_networks: int | None = None, **selector_options: Any) -> tuple[Selector, Selection | None, float]:
    """(selector, choice or None, sigmas used) under the rule. When no grouping fits with the noise
    margin but one fits as predicted (a very noisy profile), the margin is dropped rather than the
    budget refused: the rule prefers room for noise, it does not make a feasible budget infeasible."""
    sigmas = sigmas if profile.has_noise else 0.0
    for z in dict.fromkeys((sigmas, 0.0)):
        selector = Selector(with_noise_margin(candidates, profile, z), unit="ms", corun=profile.fit_corun(z),
                            **selector_options)
        chosen = selector.solve(budget, max_networks)
        if chosen is not None:
            return selector, chosen, z
    return selector, None, 0.0


def excluded_by_noise(chosen: Selection, candidates: Sequence[Candidate], profile: DeviceProfile, budget: float,
                      sigmas: float, max_networks: int | None = None, **selector_options: Any) -> ExcludedByNoise | None:
    """The grouping the plain prediction would choose, when the noise rule decided against it: it fits the
    budget on its predicted cost, is better than `chosen`, but not with `sigmas` of noise. None otherwise
    (then the rule and the point estimate agree). Costs in ms at the profile's fitted co-run overhead."""
    if sigmas <= 0 or not profile.has_noise:
        return None
    plain = Selector(candidates, unit="ms", corun=profile.fit_corun(0.0), **selector_options).solve(budget,
                                                                                                   max_networks)
    if plain is None or grouping_key(plain) == grouping_key(chosen) or \
            plain.objective >= chosen.objective - REL_TOL * max(1.0, abs(chosen.objective)):
        return None
    fit = predicted(plain, with_noise_margin(candidates, profile, sigmas), profile.fit_corun(sigmas)).cost
    return ExcludedByNoise(tuple(_label(n) for n in plain.networks), plain.objective, plain.cost, fit, sigmas,
                           (fit - plain.cost) / sigmas)


def robust_select(candidates: Sequence[Candidate], profile: DeviceProfile, budget: float, *,
                  tasks: Sequence[str] | None = None, sigmas: float = NOISE_SIGMAS,
                  max_networks: int | None = None, weights: Mapping[str, float] | None = None,
                  scales: Mapping[str, float] | None = None, solver: str = "auto",
                  relative: bool = False, prefer_cheaper_within: "float | Tolerance" = 0.0,
                  standard_ms: float | None = None,
                  infeasible: Callable[[Selector], Exception] | None = None) -> Selection:
    """`select()` in ms on `profile` under the noise rule: the Selection's costs are the predictions
    (candidates as given) and `robustness` holds the margin, range and optima near the budget.
    `relative`: the budget is a multiple of the profile's standard network (SNT), so noise is measured
    relative to it (see DeviceProfile._part_noise).
    `prefer_cheaper_within`: an objective tolerance, one number for every pair of groupings or a function
    (optimum, other) -> tolerance (taskgroup.search.withinnoise.WithinNoise: one standard error of the
    pair's paired difference); the cheapest frontier grouping whose objective is within it of the optimum
    is chosen instead of the optimum (the one-standard-error rule). Groupings that close cannot be told
    apart, and the optimum among them is often the dearest, near the budget, where a profile taken a
    minute later may leave it out; the cheapest is further from the budget and the same from profile to
    profile. The optimum and every comparison are recorded (`parsimony`).
    `standard_ms`: one SNT for the robustness block (default: full width serving the selector's tasks).
    Raises TaskgroupError naming the cheapest grouping if none fits even as predicted (`infeasible`
    builds that error from the selector when the caller words it in its own flags)."""
    profile = profile.with_relative_noise(relative)
    selector, chosen, used = solve_under_noise(candidates, profile, budget, sigmas, max_networks, tasks=tasks,
                                               weights=weights, scales=scales, solver=solver)
    if chosen is None:
        raise infeasible(selector) if infeasible is not None else selector.infeasible_error(budget, max_networks)
    optimum, points, rule, cheaper = None, None, _tolerance_fn(prefer_cheaper_within), []
    if rule is not None:
        points = frontier_points(selector, max_networks)
        at = _optimum_index(points, budget)
        pick = points[_cheapest_within(points, at, rule)]
        cheaper = [p for p in points[:at] if grouping_key(p) != grouping_key(chosen)]
        optimum, chosen = chosen, chosen if grouping_key(pick) == grouping_key(chosen) else pick
    standard = standard_ms if standard_ms is not None else profile.network_ms(1.0, selector.problem.tasks)
    robust = assess(selector, chosen, budget, profile, used, standard, max_networks,
                    asked=sigmas if profile.has_noise else 0.0, tolerance=prefer_cheaper_within, points=points)
    sel = predicted(chosen, candidates, profile.corun)
    sel.robustness = robust.record()
    if optimum is not None:  # the rule's record
        sel.parsimony = record_rule(optimum, chosen, cheaper, prefer_cheaper_within,
                                    lambda s: predicted(s, candidates, profile.corun).cost)
    return sel
