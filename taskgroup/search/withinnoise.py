"""The within-noise rule: take the cheapest grouping that cannot be told apart from the optimum.

Two groupings' objectives are told apart by their *paired* difference: both are trained with the
run's seeds, and the difference moves from seed to seed by its own spread s_ab, which is not one
grouping's (it ranges from 0.24x to 2.5x of it on the `wide` preset). Over the run's n seeds the
difference of the means has standard error s_ab / sqrt(n). The rule (the one-standard-error rule,
Hastie et al., ESL 7.10, applied to the difference that decides it): among the groupings of the
exact frontier, take the cheapest whose objective is within one standard error of its paired
difference from the optimum's. A grouping off the frontier is beaten by one on it that costs no
more, so the frontier holds every candidate worth taking.

s_ab comes from the preset's seed-noise record (taskgroup.seednoise): the measured paired spread
when both groupings were measured over seeds, else the record's conservative bound; which one
was used is recorded per comparison. The optimum is recorded too: near the budget it is often the
dearest of groupings that cannot be told apart, and the one a new profile may leave out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from taskgroup.grouping_records import GroupingBrief, NoiseComparison, NoiseEvidence, ParsimonyRecord
from taskgroup.seednoise import SeedNoise, Spread
from taskgroup.search.selection import grouping_key
from taskgroup.search.problem import REL_TOL

RULE = ("the cheapest grouping on the exact frontier whose objective is within one standard error of its paired "
        "difference from the optimum's (the one-standard-error rule on the paired difference)")


def networks_of(sel: Any) -> list[tuple[tuple[str, ...], float, tuple[str, ...]]]:
    """(trained tasks, width, served tasks) of a Selection's networks."""
    return [(n.candidate.tasks, n.candidate.width, tuple(n.served)) for n in sel.networks]


@dataclass(frozen=True)
class WithinNoise:
    """The rule's tolerance for a pair of groupings: s_ab / sqrt(seeds)."""

    record: SeedNoise  # the preset's measured seed noise
    objective: str  # the selection objective: "reference" (normalised) or "none" (plain sum)
    seeds: int  # seeds the run's objectives are means over

    def spread(self, a: Any, b: Any) -> Spread:
        return self.record.pair(self.objective, networks_of(a), networks_of(b))

    def __call__(self, optimum: Any, other: Any) -> float:
        """The objective tolerance between the optimum and another grouping (Selections)."""
        return self.spread(optimum, other).std / math.sqrt(self.seeds)

    def comparison(self, optimum: Any, other: Any, cost: float, chosen: bool | None = None) -> NoiseComparison:
        """One comparison of the rule, as a grouping file records it (`cost`: the other grouping's;
        `chosen`: parsimony's mark of the grouping taken)."""
        spread = self.spread(optimum, other)
        tolerance = spread.std / math.sqrt(self.seeds)

        edge = optimum.objective + tolerance
        return NoiseComparison(tuple(_label(n) for n in networks_of(other)), other.objective, cost,
                               other.objective - optimum.objective, tolerance, spread.record(),
                               self.record.measured(networks_of(other)),
                               other.objective <= edge + REL_TOL * max(1.0, abs(edge)), chosen)

    def evidence(self) -> NoiseEvidence:
        return self.record.evidence(self.objective, self.seeds)


def record_rule(optimum: Any, chosen: Any, cheaper: Sequence[Any], tolerance: Any,
                cost: Callable[[Any], float]) -> ParsimonyRecord:
    """The grouping file's `parsimony` block: the rule, the optimum, each cheaper frontier grouping
    compared with it (its tolerance and where that came from) and whether the optimum was taken.
    `cost(selection)`: the cost to record (the prediction, not the cost the rule fitted with)."""

    chose = grouping_key(optimum) == grouping_key(chosen)
    brief = GroupingBrief(tuple(_label(n) for n in networks_of(optimum)), optimum.objective, cost(optimum))
    if isinstance(tolerance, WithinNoise):
        compared = tuple(tolerance.comparison(optimum, p, cost(p), grouping_key(p) == grouping_key(chosen))
                         for p in cheaper)
        return ParsimonyRecord(RULE, brief, chose, None if chose else tolerance(optimum, chosen), compared,
                               tolerance.evidence())
    fixed = (None if chose else tolerance(optimum, chosen)) if callable(tolerance) else float(tolerance)
    return ParsimonyRecord("the cheapest grouping whose objective is within the tolerance of the optimum's", brief,
                           chose, fixed)


def _label(net: tuple) -> str:
    trained, width, served = net
    return "+".join(trained) + f"@{width:g}" + (f" serving {','.join(served)}" if tuple(served) != tuple(trained) else "")
