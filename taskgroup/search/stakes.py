"""The stakes of a choice: how much grouping matters at the chosen budget.

A grouping is worth the search only when it beats what needs none: one network for all tasks, or
one network per task (the best set of full/half singles that fits). The stakes are the chosen
grouping's objective against each, in % of one network's objective (the normalised objective
where the run normalises), with a verdict at 95% confidence (two-sided, taskgroup.stats):

- paired over seeds where all three were trained with two or more common seeds (Student's t with
  seeds - 1 degrees of freedom);
- else against the preset's measured seed noise (taskgroup.seednoise) where it holds for the run:
  the pair's own paired spread where both groupings were measured, else sqrt(2) x one grouping's
  (two groupings trained independently), over sqrt(seeds);
- else the noise is unknown, and so is whether grouping matters.

When the chosen grouping cannot be told from one network, that is the answer, stated as one: on
these tasks at this budget grouping does not matter, and one network (no search, one model to
ship) is as good. `select`, `frontier`, the pipeline and its report all read this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from taskgroup.grouping_records import ChosenSide, StakeRecord, StakesRecord
from taskgroup.seednoise import OBJECTIVES
from taskgroup.stats import CONFIDENCE, Comparison, compare, compare_with_noise, confidence_words
from taskgroup.search.pool import families, listed
from taskgroup.search.table import candidates_from_table
from taskgroup.errors import TaskgroupError
from taskgroup.search.select import select
from taskgroup.seednoise import grouping_id

Network = tuple  # (trained tasks, width, served tasks)

SHIP_ONE = "On these tasks at this budget, grouping does not matter: ship one network"


@dataclass(frozen=True)
class Side:
    """One way of serving every task: the chosen grouping, one network, or independent singles."""

    name: str
    networks: tuple[Network, ...]
    objective: float  # what selection ranks (weighted, normalised loss sum) on `Stakes.split`
    cost: float  # in the budget's unit
    fits: bool = True  # within the budget
    per_seed: Mapping[int, float] = field(default_factory=dict)  # seed -> objective (seeds every network has)
    estimated: bool = False  # some network's losses were estimated (never trained): the objective is a prediction

    def describe(self) -> str:
        return " + ".join("+".join(t) + f"@{w:g}" + ("" if tuple(s) == tuple(t) else f" (serves {','.join(s)})")
                          for t, w, s in self.networks)

    def same_as(self, other: "Side") -> bool:

        return grouping_id(self.networks) == grouping_id(other.networks)


@dataclass(frozen=True)
class Stake:
    """The chosen grouping against one alternative."""

    against: Side
    percent: float  # how much lower the chosen objective is, in % of one network's (negative: higher)
    comparison: Comparison | None  # chosen - alternative (None: noise unknown, or the same grouping)
    noise: str  # where the spread comes from, in words
    scale: float  # one network's objective: what 100% is

    @property
    def verdict(self) -> str:
        """'same', 'better' (the chosen is lower beyond noise), 'worse', 'within noise' or 'unknown'."""
        if self.comparison is None:
            return "same" if self.noise == "same" else "unknown"
        return {"lower": "better", "higher": "worse", "indistinguishable": "within noise"}.get(
            self.comparison.verdict, "unknown")

    @property
    def threshold_percent(self) -> float | None:
        """The difference, in %, that the verdict needed to call it."""
        c = self.comparison
        return None if c is None or c.threshold is None else 100 * c.threshold / self.scale

    def text(self) -> str:
        a = self.against
        head = f"against {a.name} ({a.describe()}, cost {a.cost:.4g}{'' if a.fits else ', over the budget'}): "
        if self.verdict == "same":
            return head + "it is the chosen grouping"
        word = "lower" if self.percent >= 0 else "higher"
        body = f"the chosen grouping's objective is {abs(self.percent):.2f}% {word}"
        if self.verdict == "unknown":
            return head + body + f"; {self.noise}"
        c = self.comparison
        called = {"better": "beyond noise", "worse": "beyond noise", "within noise": "within noise"}[self.verdict]
        p = "" if c.p_value is None else f", p = {c.p_value:.2g}"
        return (head + body + f", {called} at {confidence_words(c.confidence)}: it needs beyond "
                f"±{self.threshold_percent:.2f}% (t with {c.df:g} degrees of freedom, {c.basis}{p})")

    def record(self) -> StakeRecord:
        """As a grouping or frontier file records it."""
        a, c = self.against, self.comparison
        measured = {} if c is None else dict(difference=c.difference.mean, stderr=c.difference.stderr, df=c.df,
                                             p_value=c.p_value, confidence=c.confidence)
        return StakeRecord(a.name, a.describe(), a.cost, a.fits, a.objective, self.percent, self.verdict,
                           self.threshold_percent, self.noise, **measured)

    def to_json(self) -> dict[str, Any]:
        return self.record().to_json()


@dataclass(frozen=True)
class Stakes:
    chosen: Side
    one_network: Stake | None  # None: no network trained on all tasks to compare with
    singles: Stake | None  # None: no set of single-task networks fits
    split: str  # the split the objectives are on
    confidence: float = CONFIDENCE

    @property
    def matters(self) -> bool | None:
        """True when the chosen grouping beats one network beyond noise; False when it does not
        (within noise, one network better, or the chosen grouping is one network); None: unknown."""
        if self.one_network is None:
            return None
        return {"better": True, "worse": False, "within noise": False, "same": False}.get(self.one_network.verdict)

    def conclusion(self) -> str:
        """The answer in one sentence."""
        one = self.one_network
        if one is None:
            return ("How much grouping matters here is unknown: there is no network trained on all tasks to compare "
                    "the choice with.")
        level = confidence_words(self.confidence)
        if one.verdict == "same":
            return f"{SHIP_ONE} (it is the optimum)."
        pct = f"{abs(one.percent):.2f}% {'below' if one.percent >= 0 else 'above'}"
        if one.verdict == "unknown":
            return (f"How much grouping matters here is unknown: the chosen grouping's objective is {pct} one "
                    f"network's, and the seed-to-seed noise of this configuration was not measured (train with "
                    "--seeds 0,1,2 to measure it).")
        if one.verdict == "within noise":
            if not one.against.fits:
                return (f"On these tasks at this budget, grouping does not matter beyond noise: the chosen grouping "
                        f"is {pct} one network, within noise at {level}, but one network does not fit the budget: "
                        "ship the cheapest grouping within noise of the optimum.")
            return (f"{SHIP_ONE} (the chosen grouping's objective is {pct} one network's, "
                    f"within noise at {level}).")
        if one.verdict == "worse":
            return (f"On these tasks at this budget, one network is better than the chosen grouping (its objective "
                    f"is {pct} one network's, beyond noise at {level}): ship one network.")
        return (f"Grouping matters on these tasks at this budget: the chosen grouping's objective is {pct} one "
                f"network's, beyond noise at {level}.")

    @property
    def estimated(self) -> list[str]:
        """The groupings compared whose objective rests on estimated (untrained) networks."""
        sides = [self.chosen] + [s.against for s in (self.one_network, self.singles) if s is not None]
        return [s.name for s in sides if s.estimated]

    def caveat(self) -> str | None:
        """What the verdict does not cover: estimates are predictions, not measurements with seed noise."""
        if not self.estimated:
            return None
        return (f"The objective of {' and '.join(self.estimated)} is estimated, not measured: the verdict judges the "
                "estimate against seed noise only; train the estimated networks (finalize, or top-k) to confirm.")

    def lines(self) -> list[str]:
        """The conclusion, then one line per alternative."""
        out = [self.conclusion()] + ([self.caveat()] if self.caveat() else [])
        for stake in (self.one_network, self.singles):
            if stake is not None:
                out.append(stake.text())
        if self.singles is None:
            out.append("against independent singles: not compared (no set of single-task networks fits the budget, "
                       "the table lacks one for some task, or the network count is limited)")
        return out

    def record(self) -> StakesRecord:
        """As a grouping or frontier file records it."""
        return StakesRecord(self.split, self.confidence, self.matters, self.conclusion(), tuple(self.estimated),
                            ChosenSide(self.chosen.describe(), self.chosen.objective, self.chosen.cost),
                            None if self.one_network is None else self.one_network.record(),
                            None if self.singles is None else self.singles.record())

    def to_json(self) -> dict[str, Any]:
        return self.record().to_json()


def measure(chosen: Side, one: Side | None, singles: Side | None, split: str, record: Any = None,
            objective: str | None = None, run_seeds: int = 1, confidence: float = CONFIDENCE) -> Stakes:
    """The stakes of `chosen` against one network and independent singles (see the module doc).
    `record`: the preset's taskgroup.seednoise.SeedNoise where it holds for the run, read on its
    `objective` series ('reference' or 'none'); `run_seeds`: seeds the objectives are means over."""
    if one is None:
        return Stakes(chosen, None, None, split, confidence)
    scale = abs(one.objective) or 1.0

    def stake(other: Side | None) -> Stake | None:
        if other is None:
            return None
        percent = 100 * (other.objective - chosen.objective) / scale
        if chosen.same_as(other):
            return Stake(other, 0.0, None, "same", scale)
        common = set(chosen.per_seed) & set(other.per_seed)
        if len(common) > 1:
            c = compare(chosen.per_seed, other.per_seed, confidence)
            return Stake(other, -100 * c.difference.mean / scale, c, c.basis, scale)
        if record is not None and objective in OBJECTIVES:
            mine, theirs = chosen.networks, other.networks
            both = record.measured(mine) is not None and record.measured(theirs) is not None
            spread = record.pair(objective, mine, theirs) if both else record.independent(objective)
            n = max(1, run_seeds)
            basis = spread.text + ("" if n == 1 else f", over sqrt({n}) seeds")
            c = compare_with_noise(chosen.objective - other.objective, spread.std / math.sqrt(n), spread.df, basis,
                                   confidence)
            return Stake(other, percent, c, basis, scale)
        return Stake(other, percent, None, "the seed-to-seed noise of this configuration was not measured", scale)

    return Stakes(chosen, stake(one), stake(singles), split, confidence)


# ---- building the sides from a loss table --------------------------------------------------

def objective_of(losses: Mapping[str, float], weights: Mapping[str, float] | None = None,
                 scales: Mapping[str, float] | None = None) -> float:
    """What selection sums: weight x loss / scale over the served tasks (taskgroup.search.problem)."""
    return math.fsum(loss * (weights or {}).get(t, 1.0) / (scales or {}).get(t, 1.0) for t, loss in losses.items())


def per_seed_objectives(table: Any, networks: Sequence[Network], split: str, stage: str,
                        weights: Mapping[str, float] | None = None,
                        scales: Mapping[str, float] | None = None) -> dict[int, float]:
    """seed -> objective of a grouping over the seeds all its networks were trained with in the loss
    table (empty when a network is absent, e.g. only estimated, or the table records no seeds)."""
    if table is None:
        return {}
    index = {n.key: n for n in table.networks}
    per_seed: list[dict[int, dict[str, float]]] = []
    for trained, width, served in networks:
        net = index.get((frozenset(trained), float(width), stage))
        if net is None or not net.seeds:
            return {}
        per_seed.append({s: {t: r.losses.get(split, {}).get(t) for t in served} for s, r in net.seeds.items()})
    common = set.intersection(*(set(p) for p in per_seed)) if per_seed else set()
    out = {}
    for seed in sorted(common):
        losses = {t: v for p in per_seed for t, v in p[seed].items()}
        if all(v is not None for v in losses.values()):
            out[seed] = objective_of(losses, weights, scales)
    return out


def selection_side(name: str, sel: Any, budget: float, per_seed: Callable[[Sequence[Network]], dict[int, float]]) -> Side:
    """A Side from a taskgroup.search Selection."""
    nets = tuple((n.candidate.tasks, n.candidate.width, tuple(n.served)) for n in sel.networks)
    return Side(name, nets, sel.objective, sel.cost, sel.cost <= budget * (1 + 1e-9), per_seed(nets),
                any(n.candidate.estimated for n in sel.networks))


def one_network_side(candidates: Sequence[Any], tasks: Sequence[str], budget: float,
                     weights: Mapping[str, float] | None, scales: Mapping[str, float] | None,
                     per_seed: Callable[[Sequence[Network]], dict[int, float]]) -> Side | None:
    """All tasks in one network: full width if it fits, else half width (as the pipeline's baseline);
    None when the candidates list no network of every task (a pool's estimated families are not searched)."""

    every = frozenset(tasks)
    options = {c.width: c for c in listed(candidates) if frozenset(c.tasks) == every and c.stopped_for is None
               and set(tasks) <= set(c.losses)}
    if not options:
        return None
    fitting = [w for w, c in options.items() if c.cost(tasks) <= budget * (1 + 1e-9)]
    width = max(fitting) if fitting else min(options)
    c = options[width]
    nets = ((c.tasks, c.width, tuple(tasks)),)
    return Side("one network", nets, objective_of({t: c.losses[t] for t in tasks}, weights, scales), c.cost(tasks),
                bool(fitting), per_seed(nets), c.estimated)


def singles_side(candidates: Sequence[Any], tasks: Sequence[str], budget: float, unit: str,
                 weights: Mapping[str, float] | None, scales: Mapping[str, float] | None, corun: float,
                 per_seed: Callable[[Sequence[Network]], dict[int, float]]) -> Side | None:
    """The exact best set of single-task networks (full or half width) within the budget; None if none fits."""


    singles = [c for c in listed(candidates) if len(c.tasks) == 1 and c.stopped_for is None]
    if not {c.tasks[0] for c in singles} >= set(tasks):
        return None
    try:
        sel = select(singles, budget, tasks=tasks, unit=unit, weights=weights, scales=scales, corun=corun)
    except TaskgroupError:
        return None
    return selection_side("independent singles", sel, budget, per_seed)


def with_measured_all_task(candidates: Sequence[Any], tasks: Sequence[str], table: Any, split: str,
                           stage: str) -> Sequence[Any]:
    """The candidates, plus the table's trained all-task network where an estimator (HOA's pool) replaced
    it with an estimate: the stakes compare the choice with the network that was trained."""
    every = frozenset(tasks)
    if table is None or any(frozenset(c.tasks) == every for c in listed(candidates)):
        return candidates
    fams = families(candidates)
    if not fams:
        return candidates
    measured = [c for c in candidates_from_table(table, split, stage, cost_fn=fams[0].cost_fn)
                if frozenset(c.tasks) == every]
    return [*listed(candidates), *measured] if measured else candidates


def for_selection(sel: Any, candidates: Sequence[Any], tasks: Sequence[str], budget: float, unit: str, *,
                  weights: Mapping[str, float] | None = None, scales: Mapping[str, float] | None = None,
                  corun: float = 0.0, table: Any = None, split: str = "val", stage: str = "final",
                  record: Any = None, objective: str | None = None, singles: bool = True) -> Stakes:
    """The stakes of a selection among loss-table candidates, on the selection split."""
    def seeds(nets: Sequence[Network]) -> dict[int, float]:
        return per_seed_objectives(table, nets, split, stage, weights, scales)

    run_seeds = max(1, len(table.seed_values())) if table is not None else 1
    candidates = with_measured_all_task(candidates, tasks, table, split, stage)
    chosen = selection_side("the chosen grouping", sel, budget, seeds)
    one = one_network_side(candidates, tasks, budget, weights, scales, seeds)
    alone = singles_side(candidates, tasks, budget, unit, weights, scales, corun, seeds) if singles else None
    return measure(chosen, one, alone, split, record, objective, run_seeds)


def frontier_stakes(points: Sequence[Any], candidates: Sequence[Any], tasks: Sequence[str], unit: str,
                    **options: Any) -> list[Stakes]:
    """Each frontier point's optimum against one network at the point's own cost: the budgets at which
    grouping matters. `options` as for_selection's."""
    candidates = with_measured_all_task(candidates, tasks, options.get("table"), options.get("split", "val"),
                                        options.get("stage", "final"))  # once, not per point
    return [for_selection(sel, candidates, tasks, sel.cost, unit, singles=False, **options) for sel in points]