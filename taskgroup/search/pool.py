"""Candidates described by a rule instead of listed: what lets selection scale past a dozen tasks.

An estimator that fills in every group of 3+ tasks from the pair networks (the paper's Higher
Order Approximation) describes 2^n - 1 - n - n(n-1)/2 networks at each width that has pairs:
about 4,000 at 12 tasks and a million at 20, where listing them as `Candidate` objects alone
takes minutes and gigabytes. A `PairMeanFamily` holds what defines them all (the pair losses
and the costs at that width), and a `CandidatePool` is the sequence of listed candidates and
families an estimator returns.

A pool is a `Sequence[Candidate]`: iterating it lists every candidate in the order the estimator
always produced (listed ones first, then each family by group size, then in combination order),
so code that walks a candidate list gets exactly what it got before. The search reads the
families directly instead (taskgroup.search.colgen): it never lists them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Iterator, Union

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.search.candidates import Candidate, CostFn, make_candidate


@dataclass(frozen=True, eq=False)
class PairMeanFamily:
    """Every network of 3+ tasks at one width, each task's loss estimated as the mean of its losses
    in the pair networks inside the group (HOA).

    A task of a group with no pair partner inside it (a pair that was not trained, or has no loss
    for it) cannot be served by that network; a group in which no task has a partner is no network.
    Costs are additive: the trunk at this width plus the head of each task served, the same for
    every group (as SNT costs and device profiles give them); `check_costs` verifies that on the
    networks it materializes.
    """
    tasks: tuple[str, ...]  # tasks with a pair network at this width, in table order
    width: float  # width multiplier of every network of the family
    stage: str  # training stage of the pair losses
    pair_loss: np.ndarray  # (m, m): pair_loss[i, j] = loss of tasks[i] in the pair with tasks[j]; NaN if none
    cost_fn: CostFn  # the cost model the family's networks are costed with
    fixed_cost: float = field(init=False)  # trunk cost of every network of the family
    head_costs: np.ndarray = field(init=False)  # (m,) cost of serving each task

    def __post_init__(self) -> None:
        m = len(self.tasks)
        loss = np.asarray(self.pair_loss, dtype=np.float64)
        if loss.shape != (m, m):
            raise TaskgroupError(f"pair losses of shape {loss.shape} for {m} tasks")
        loss = loss.copy()
        np.fill_diagonal(loss, np.nan)
        loss.setflags(write=False)
        object.__setattr__(self, "pair_loss", loss)
        fixed, heads = self.cost_fn(self.width, self.tasks)
        object.__setattr__(self, "fixed_cost", float(fixed))
        h = np.array([float(heads.get(t, 0.0)) for t in self.tasks])
        h.setflags(write=False)
        object.__setattr__(self, "head_costs", h)
        if not (math.isfinite(self.fixed_cost) and self.fixed_cost >= 0 and np.isfinite(h).all() and (h >= 0).all()):
            raise TaskgroupError(f"estimated networks at width {self.width:g}: costs must be finite numbers >= 0, "
                                 f"found trunk {self.fixed_cost} and heads {h.tolist()}")
        if m >= 3:  # two probes of the cost model: a group of three, and the last three tasks
            for members in {(0, 1, 2), (m - 3, m - 2, m - 1)}:
                fixed, heads = self.cost_fn(self.width, tuple(self.tasks[i] for i in members))
                self._check_costs("+".join(self.tasks[i] for i in members), float(fixed),
                                  [float(heads.get(self.tasks[i], 0.0)) for i in members], members)

    @property
    def available(self) -> np.ndarray:
        """(m, m) bool: tasks[i] has a loss in the pair with tasks[j]."""
        return np.isfinite(self.pair_loss)

    def losses_of(self, members: Sequence[int]) -> dict[str, float]:
        """The estimated losses of the network of tasks[i] for i in `members` (ascending): per task,
        the mean of its pair losses inside the group, summed in group order."""
        out = {}
        for i in members:
            vals = [float(self.pair_loss[i, j]) for j in members if j != i and math.isfinite(self.pair_loss[i, j])]
            if vals:
                out[self.tasks[i]] = sum(vals) / len(vals)
        return out

    def member(self, members: Sequence[int]) -> Candidate:
        """The candidate for the group tasks[i], i in `members` (3+ indices, ascending)."""
        members = sorted(members)
        if len(members) < 3:
            raise TaskgroupError(f"a family network has 3 or more tasks, found {len(members)}")
        losses = self.losses_of(members)
        if not losses:
            raise TaskgroupError(f"no task of {'+'.join(self.tasks[i] for i in members)} has a pair inside the group")
        c = make_candidate(tuple(self.tasks[i] for i in members), self.width, losses, self.cost_fn, stage=self.stage,
                           estimated=True)
        self._check_costs(c.name, c.fixed_cost, [c.head_cost(self.tasks[i]) for i in members], members)
        return c

    def _check_costs(self, name: str, fixed: float, heads: list[float], members: Sequence[int]) -> None:
        """The search costs every network of the family as trunk + served heads; a cost model that
        prices groups otherwise would make that wrong, so it is refused rather than trusted."""
        if fixed != self.fixed_cost or heads != [float(self.head_costs[i]) for i in members]:
            raise TaskgroupError(f"the cost model prices {name}@{self.width:g} at a trunk of {fixed:g} and heads "
                                 f"{heads}, not the width's trunk {self.fixed_cost:g} and per-task heads: estimated "
                                 "networks are searched without listing them, which needs costs of the form "
                                 "trunk(width) + heads(width, task)")

    def __iter__(self) -> Iterator[Candidate]:
        m = len(self.tasks)
        for k in range(3, m + 1):
            for members in itertools.combinations(range(m), k):
                losses = self.losses_of(members)
                if losses:
                    yield make_candidate(tuple(self.tasks[i] for i in members), self.width, losses, self.cost_fn,
                                         stage=self.stage, estimated=True)

    def __len__(self) -> int:
        return self.size

    @property
    def size(self) -> int:
        """How many networks the family describes (groups of 3+ tasks with a pair inside)."""
        m = len(self.tasks)
        if m < 3:
            return 0
        edge = self.available | self.available.T
        if edge[~np.eye(m, dtype=bool)].all():
            return 2 ** m - 1 - m - m * (m - 1) // 2
        # Groups with no pair inside are independent sets of the pair graph: count those of 3+ tasks.
        nbr = [sum(1 << j for j in range(m) if edge[i, j]) for i in range(m)]
        independent = _count_independent_sets(nbr, m, min_size=3)
        return 2 ** m - 1 - m - m * (m - 1) // 2 - independent


def _count_independent_sets(nbr: list[int], m: int, min_size: int) -> int:
    """Independent sets of at least `min_size` vertices (a small recursion; m is at most a few dozen)."""
    def count(allowed: int, size: int) -> int:
        if not allowed:
            return int(size >= min_size)
        v = (allowed & -allowed).bit_length() - 1
        rest = allowed & ~(1 << v)
        return count(rest, size) + count(rest & ~nbr[v], size + 1)
    return count((1 << m) - 1, 0)


Part = Union[tuple[Candidate, ...], PairMeanFamily]


class CandidatePool(Sequence):
    """Listed candidates and families of estimated ones, read as one sequence of candidates."""

    def __init__(self, parts: Sequence[Union[Sequence[Candidate], PairMeanFamily]]):
        self.parts: tuple[Part, ...] = tuple(p if isinstance(p, PairMeanFamily) else tuple(p) for p in parts)

    @property
    def listed(self) -> list[Candidate]:
        """The candidates held one by one (measured networks, and any listed estimates)."""
        return [c for p in self.parts if not isinstance(p, PairMeanFamily) for c in p]

    @property
    def families(self) -> tuple[PairMeanFamily, ...]:
        return tuple(p for p in self.parts if isinstance(p, PairMeanFamily))

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __iter__(self) -> Iterator[Candidate]:
        for p in self.parts:
            yield from p

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self)[index]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("candidate index out of range")
        for p in self.parts:
            if index < len(p):
                return p[index] if not isinstance(p, PairMeanFamily) else next(itertools.islice(p, index, None))
            index -= len(p)
        raise IndexError("candidate index out of range")

    def __add__(self, other: Sequence[Candidate]) -> "CandidatePool":
        return CandidatePool(self.parts + (tuple(other),))

    def __radd__(self, other: Sequence[Candidate]) -> "CandidatePool":
        return CandidatePool((tuple(other),) + self.parts)

    def __repr__(self) -> str:
        fams = ", ".join(f"{len(f):,} at width {f.width:g}" for f in self.families)
        return f"CandidatePool({len(self.listed)} listed; estimated families: {fams or 'none'})"


def listed(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates held one by one: a pool's listed part, or the sequence itself."""
    return candidates.listed if isinstance(candidates, CandidatePool) else list(candidates)


def families(candidates: Sequence[Candidate]) -> tuple[PairMeanFamily, ...]:
    """A pool's families (none for a plain list)."""
    return candidates.families if isinstance(candidates, CandidatePool) else ()


def validate_candidates(candidates: Sequence[Candidate], tasks: Sequence[str]) -> None:
    """Check numbers and names before a search; a bad candidate is a user error, not a crash.

    Of a pool (taskgroup.search.pool), the listed candidates are checked one by one; its families'
    networks are means of listed pair losses and cost what the family's checked costs say."""
    if not tasks:
        raise TaskgroupError("no tasks to serve")
    known = set(tasks)
    for f in families(candidates):
        unknown = [t for t in f.tasks if t not in known]
        if unknown:
            raise TaskgroupError(f"estimated networks at width {f.width:g}: unknown task(s) {unknown}; "
                                 f"tasks: {list(tasks)}")
    candidates = listed(candidates)
    seen: dict[tuple, str] = {}
    for c in candidates:
        unknown = [t for t in c.tasks if t not in known]
        if unknown:
            raise TaskgroupError(f"candidate {c.name}: unknown task(s) {unknown}; tasks: {list(tasks)}")
        for t, v in c.losses.items():
            if t not in c.tasks:
                raise TaskgroupError(f"candidate {c.name}: loss for task '{t}' it is not trained on")
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise TaskgroupError(f"candidate {c.name}: loss of '{t}' must be a finite number >= 0, found {v}")
        for what, v in [("fixed cost", c.fixed_cost), *((f"head cost of '{t}'", h) for t, h in c.head_costs.items())]:
            if not (math.isfinite(v) and v >= 0):
                raise TaskgroupError(f"candidate {c.name}: {what} must be a finite number >= 0, found {v}")
        k = (frozenset(c.tasks), c.width, c.stage, c.stopped_for)
        if k in seen:
            raise TaskgroupError(f"duplicate candidate network {c.name}")
        seen[k] = c.name
