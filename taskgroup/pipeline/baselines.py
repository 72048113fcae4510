"""Baselines at the same budget: what a practitioner would do without the search.

- one network for all tasks (the cheapest-to-deploy multi-task network);
- independent single-task networks: the best set of singles (full or half width) that fits;
- random groupings: random partitions of the tasks into networks, shrunk to half width
  until they fit.
Each is a list of `(tasks_trained, tasks_served, width)` networks; the pipeline trains the
missing ones with the same recipe and scores them on the same test split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from taskgroup.profile.costmodel import corun_factor
from taskgroup.search import Candidate, select
from taskgroup.errors import TaskgroupError

NetworkCost = Callable[[float, Sequence[str]], float]  # (width, served tasks) -> cost


@dataclass(frozen=True)
class BaselineNetwork:
    tasks: tuple[str, ...]  # trained and served (baselines have no auxiliary tasks)
    width: float


@dataclass(frozen=True)
class Baseline:
    name: str
    networks: tuple[BaselineNetwork, ...]

    def cost(self, network_cost: NetworkCost, corun: float = 0.0) -> float:
        """Predicted cost per frame: the networks' costs summed, times the measured co-run factor."""
        return sum(network_cost(n.width, n.tasks) for n in self.networks) * corun_factor(corun, len(self.networks))


def one_network(tasks: Sequence[str], budget: float, network_cost: NetworkCost) -> Baseline:
    """All tasks in one network: full width if it fits, else half width (reported even if over)."""
    full = Baseline("one network", (BaselineNetwork(tuple(tasks), 1.0),))
    if full.cost(network_cost) <= budget:
        return full
    return Baseline("one network", (BaselineNetwork(tuple(tasks), 0.5),))


def independent_singles(single_candidates: Sequence[Candidate], tasks: Sequence[str], budget: float,
                        unit: str, scales: Mapping[str, float] | None = None, corun: float = 0.0) -> Baseline:
    """The exact best set of single-task networks within the budget, under the same objective
    (`scales`: the run's normalisation) as the chosen grouping; if none fits, the cheapest set
    (so the report can show what one network per task would cost)."""

    singles = [c for c in single_candidates if len(c.tasks) == 1]
    try:
        sel = select(singles, budget, tasks=tasks, unit=unit, scales=scales, corun=corun)
    except TaskgroupError:
        return Baseline("independent singles", _cheapest(singles, tasks))
    return Baseline("independent singles",
                    tuple(BaselineNetwork(n.candidate.tasks, n.candidate.width) for n in sel.networks))


def _cheapest(singles: Sequence[Candidate], tasks: Sequence[str]) -> tuple[BaselineNetwork, ...]:

    out = []
    for t in tasks:
        options = [c for c in singles if c.tasks == (t,)]
        if not options:
            raise TaskgroupError(f"no single-task network for '{t}' in the loss table: the independent-singles "
                                 "baseline needs the 'singles' (or larger) candidate set")
        best = min(options, key=lambda c: c.cost((t,)))
        out.append(BaselineNetwork(best.tasks, best.width))
    return tuple(out)


def random_groupings(tasks: Sequence[str], budget: float, network_cost: NetworkCost, draws: int,
                     seed: int, max_tries: int = 1000, exclude: Sequence[Baseline] = (),
                     corun: float = 0.0) -> list[Baseline]:
    """`draws` random partitions of the tasks that fit the budget (fewer if none can be found),
    distinct from each other and from the `exclude` baselines."""
    rng = random.Random(seed)
    out: list[Baseline] = []
    seen: set[frozenset] = {frozenset((n.tasks, n.width) for n in b.networks) for b in exclude}
    for _ in range(max_tries):
        if len(out) == draws:
            break
        nets = [BaselineNetwork(g, 1.0) for g in random_partition(tasks, rng)]
        # Shrink random networks to half width until the grouping fits (or cannot shrink further).
        for i in rng.sample(range(len(nets)), len(nets)):
            if Baseline("", tuple(nets)).cost(network_cost, corun) <= budget:
                break
            nets[i] = BaselineNetwork(nets[i].tasks, 0.5)
        candidate = Baseline(f"random #{len(out) + 1}", tuple(nets))
        key = frozenset((n.tasks, n.width) for n in nets)
        if candidate.cost(network_cost, corun) <= budget and key not in seen:
            seen.add(key)
            out.append(candidate)
    return out


def random_partition(tasks: Sequence[str], rng: random.Random) -> list[tuple[str, ...]]:
    """A random partition of the tasks into groups (a random number of groups, cut from a random order);
    each group keeps the tasks' given order."""
    order = list(tasks)
    rng.shuffle(order)
    k = rng.randint(1, len(order))
    cuts = sorted(rng.sample(range(1, len(order)), k - 1)) if k > 1 else []
    return [tuple(t for t in tasks if t in order[a:b]) for a, b in zip([0] + cuts, cuts + [len(order)])]
