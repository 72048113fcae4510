"""The column space of column generation: every network's columns, priced under the master's duals.

A column is a network and the set of tasks it serves. Networks are the listed candidates (rows of
a pruned `Problem`) and the groups of each family of estimated networks (`PairMeanFamily`), read
block by block from tables over the low task bits, never listed. Given the restricted master's
duals, pricing finds the columns of most negative reduced cost (score - sum of the served tasks'
pi - mu cost - nu), and the exact finish needs every column within a reduced cost: both live here,
apart from the master LP and the search driver (`taskgroup.search.colgen`), which only see columns
through `ColumnPool` and `Duals`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.search.candidates import Candidate
from taskgroup.search.pool import PairMeanFamily
from taskgroup.search.problem import Problem, _per_task

MAX_FAMILY_TASKS = 24  # a pricing pass reads every group of a family's tasks: 2^m x m values
LOW_BITS = 14  # a block is every group with the same high task bits: 2^14 groups x m values
CACHE_BYTES = 256 << 20  # a family's estimates are kept between pricing passes while they fit in this

class _Family:
    """A family's arrays in the search's units: tasks as the problem's columns, scores weighted and
    normalised. Groups are bit masks over the family's own tasks (bit i = family.tasks[i])."""

    def __init__(self, family: PairMeanFamily, glob: np.ndarray, factor: np.ndarray):
        self.family = family
        self.glob = glob  # (m,) the problem's column of each family task
        self.factor = factor  # (m,) weight / scale of each task
        avail = family.available
        self.pair = np.where(avail, family.pair_loss, 0.0)  # (m, m) pair losses, 0 where none
        self.avail = avail.astype(np.float64)
        self.heads = np.asarray(family.head_costs, dtype=np.float64)
        self.fixed = family.fixed_cost
        m = len(glob)
        self.low = min(m, LOW_BITS)
        bits = (np.arange(1 << self.low)[None, :] >> np.arange(self.low)[:, None]) & 1  # (low, 2^low)
        self.low_in = np.zeros((m, 1 << self.low), dtype=bool)  # tasks of each low pattern (task-major)
        self.low_in[:self.low] = bits
        self.low_sum = self.pair[:, :self.low] @ bits  # (m, 2^low) pair losses summed over the low tasks
        self.low_count = self.avail[:, :self.low] @ bits  # ... and how many of them each task has
        self.low_size = bits.sum(axis=0)
        self.n_blocks = 1 << (m - self.low)
        # The estimates do not depend on the duals: kept after they are first computed while they fit in
        # `CACHE_BYTES` (20 tasks: 168 MB), else recomputed on every pass.
        self.cache: list | None = [None] * self.n_blocks if (1 << m) * m * 8 <= CACHE_BYTES else None

    def __len__(self) -> int:
        return len(self.family)

    def block(self, high: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The groups whose high task bits are `high`: (groups, valid, scores). `valid` marks the
        family's networks (3+ tasks, one with a pair inside); scores[i, g] is task i's weighted
        estimate in group g (task-major, so that per-group sums run down contiguous rows), inf where
        the group cannot serve it."""
        if self.cache is not None and self.cache[high] is not None:
            return self.cache[high]
        m, low = len(self.glob), self.low
        hb = ((high >> np.arange(m - low)) & 1).astype(np.float64)
        sums = self.low_sum + (self.pair[:, low:] @ hb)[:, None]
        counts = self.low_count + (self.avail[:, low:] @ hb)[:, None]
        inside = self.low_in.copy()
        inside[low:] = (hb > 0)[:, None]
        ok = inside & (counts > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = np.where(ok, sums / counts * self.factor[:, None], np.inf)
        valid = (self.low_size + int(hb.sum()) >= 3) & ok.any(axis=0)
        groups = (np.int64(high) << low) | np.arange(1 << low, dtype=np.int64)
        out = (groups, valid, scores)
        if self.cache is not None:
            self.cache[high] = out
        return out

    def scores_of(self, group: int) -> np.ndarray:
        """(m,) weighted estimates of one group, inf where it cannot serve."""
        inside = ((group >> np.arange(len(self.glob))) & 1).astype(np.float64)
        counts = self.avail @ inside
        ok = (inside > 0) & (counts > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(ok, (self.pair @ inside) / counts * self.factor, np.inf)


class ColumnPool:
    """Columns: (owner, served set as a bit mask over the problem's tasks) with score, cost, estimated."""

    def __init__(self):
        self.owner: list[int] = []
        self.mask: list[int] = []
        self.score: list[float] = []
        self.cost: list[float] = []
        self.estimated: list[bool] = []
        self.seen: dict[tuple[int, int], int] = {}

    def add(self, owner: int, mask: int, score: float, cost: float, estimated: bool) -> None:
        if (owner, mask) not in self.seen:
            self.seen[(owner, mask)] = len(self.mask)
            self.owner.append(owner)
            self.mask.append(mask)
            self.score.append(score)
            self.cost.append(cost)
            self.estimated.append(estimated)

    def extend(self, other: "ColumnPool") -> None:
        for row in zip(other.owner, other.mask, other.score, other.cost, other.estimated):
            self.add(*row)

    def __len__(self) -> int:
        return len(self.mask)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(mask, owner, score, cost, estimated) as arrays."""
        return (np.array(self.mask, dtype=np.int64), np.array(self.owner, dtype=np.int64),
                np.array(self.score), np.array(self.cost), np.array(self.estimated, dtype=bool))


@dataclass
class Duals:
    task: np.ndarray  # pi_t (free)
    budget: float  # mu <= 0 (0 without a budget)
    count: float  # nu <= 0 (0 without a network limit)

    def bound(self, budget: float | None, k: int | None) -> float:
        """D = sum pi + mu B + nu K: with every reduced cost >= 0, no grouping scores below it."""
        return float(self.task.sum()) + self.budget * (budget or 0.0) + self.count * (k or 0)


def _reduced(d: np.ndarray, const, axis: int = 1) -> np.ndarray:
    """Per network (a row of d; a column with axis=0) the least reduced cost over its nonempty served
    sets: the constant plus its negative terms, or plus its least term when none is negative (inf: it
    can serve nothing)."""
    if not d.shape[axis]:
        return np.full(d.shape[1 - axis], np.inf)
    least = d.min(axis=axis)
    return const + np.where(least < 0, np.minimum(d, 0.0).sum(axis=axis), least)


def _best_set(d: np.ndarray) -> np.ndarray:
    """The served set of `_reduced` for one row: its negative terms, or its least one."""
    neg = np.nonzero(d < 0)[0]
    return neg if len(neg) else np.array([int(np.argmin(d))])


def bit_mask(cols) -> int:
    return int(sum(1 << int(j) for j in cols))


def served_sets(serve: Sequence[int]) -> dict[int, int]:
    """owner -> bit mask of the tasks it serves."""
    out: dict[int, int] = {}
    for j, o in enumerate(serve):
        out[o] = out.get(o, 0) | (1 << j)
    return out


class ColumnSpace:
    """Every network of a selection problem, listed (a pruned `Problem`) or described by a family of
    estimated ones, and its columns: their scores and costs, pricing under the master's duals, and the
    enumeration of every column within a reduced cost (the exact finish). `LazyModel` adds the master."""

    def __init__(self, problem: Problem, families: Sequence[PairMeanFamily], weights=None, scales=None):
        self.problem = problem
        self.tasks = problem.tasks
        self.weights, self.scales = weights, scales
        col = {t: j for j, t in enumerate(self.tasks)}
        factor = np.array(_per_task(weights, self.tasks, "weight")) / np.array(
            _per_task(scales, self.tasks, "normalisation scale"))
        self.families: list[_Family] = []
        for f in families:
            if len(f.tasks) > MAX_FAMILY_TASKS:
                raise TaskgroupError(f"estimated networks over {len(f.tasks)} tasks at width {f.width:g}: the search "
                                     f"reads every group of a width's tasks, at most {MAX_FAMILY_TASKS} tasks")
            unknown = [t for t in f.tasks if t not in col]
            if unknown:
                raise TaskgroupError(f"estimated networks at width {f.width:g}: unknown task(s) {unknown}")
            glob = np.array([col[t] for t in f.tasks], dtype=np.int64)
            self.families.append(_Family(f, glob, factor[glob]))
        self.n_listed = problem.n_candidates
        self.listed_estimated = np.array([c.estimated for c in problem.candidates], dtype=bool)
        self.owner_key: list[tuple[int, int]] = []  # owner n_listed + i: (family index, group)
        self.owner_id: dict[tuple[int, int], int] = {}
        # The worst total score (tolerances, the MILP's scaling): per task its worst serving score.
        worst = np.zeros(len(self.tasks))
        ok = np.isfinite(problem.score)
        if self.n_listed:
            worst = np.where(ok, problem.score, 0.0).max(axis=0)
        for fam in self.families:
            top = np.where(fam.avail > 0, fam.pair, 0.0).max(axis=1) * fam.factor
            worst[fam.glob] = np.maximum(worst[fam.glob], top)
        self.score_top = float(worst.sum()) or 1.0
        self._next_block = [0] * len(self.families)  # where each family's next pricing round starts

    @property
    def family_networks(self) -> int:
        """Networks the families describe (searched without listing them)."""
        return sum(len(f) for f in self.families)

    # ----- owners and their columns ----------------------------------------------------------
    def _family_owner(self, fi: int, group: int) -> int:
        key = (fi, int(group))
        if key not in self.owner_id:
            self.owner_id[key] = self.n_listed + len(self.owner_key)
            self.owner_key.append(key)
        return self.owner_id[key]

    def candidate(self, owner: int) -> Candidate:
        if owner < self.n_listed:
            return self.problem.candidates[owner]
        fi, group = self.owner_key[owner - self.n_listed]
        fam = self.families[fi]
        return fam.family.member([i for i in range(len(fam.glob)) if (group >> i) & 1])

    def _listed_column(self, i: int, cols) -> tuple[float, float, bool]:
        p = self.problem
        return (float(p.score[i, cols].sum()), float(p.fixed[i] + p.head[i, cols].sum()),
                bool(self.listed_estimated[i]))

    def _family_column(self, fam: _Family, scores: np.ndarray, local) -> tuple[int, float, float]:
        """(served mask over the problem's tasks, score, cost) of a family network serving `local`."""
        return bit_mask(fam.glob[local]), float(scores[local].sum()), float(fam.fixed + fam.heads[local].sum())

    def _column(self, owner: int, mask: int) -> tuple[float, float, bool]:
        """(score, cost, estimated) of `owner` serving the tasks of `mask`."""
        cols = [j for j in range(len(self.tasks)) if (mask >> j) & 1]
        if owner < self.n_listed:
            return self._listed_column(owner, cols)
        fi, group = self.owner_key[owner - self.n_listed]
        fam = self.families[fi]
        local = [int(np.nonzero(fam.glob == j)[0][0]) for j in cols]
        _, score, cost = self._family_column(fam, fam.scores_of(group), local)
        return score, cost, True

    def _listed_terms(self, lam: float, duals: Duals) -> tuple[np.ndarray, np.ndarray]:
        """(d, const) of the listed networks: per network and task its reduced-cost term (inf where it
        cannot serve), and per network its constant part (lam fixed - nu)."""
        p = self.problem
        with np.errstate(invalid="ignore"):
            d = p.score + lam * p.head - duals.task
        return np.where(np.isfinite(p.score), d, np.inf), lam * p.fixed - duals.count

    # ----- pricing -------------------------------------------------------------------------
    def _price(self, duals: Duals, limit: int, full: bool = False) -> tuple[float | None, list[tuple]]:
        """Columns of negative reduced cost, the most negative first, up to `limit` (each network's
        best served set): (rc, owner, mask, score, cost, estimated). A family's blocks are read from
        where the last round stopped, and unless `full` the round stops once `limit` negative columns
        are found (partial pricing: early rounds find many). Also returns the least reduced cost of
        any column when every column was read (a round that finds none reads them all), else None."""
        lam = -duals.budget
        found: list[tuple] = []
        r_min = math.inf
        if self.n_listed:
            d, const = self._listed_terms(lam, duals)
            rc = _reduced(d, const)
            r_min = float(rc.min())
            for i in np.argsort(rc, kind="stable")[:limit]:
                cols = _best_set(d[i])
                found.append((float(rc[i]), int(i), bit_mask(cols), *self._listed_column(int(i), cols)))
        tol = self._tol()
        negative = sum(c[0] < -tol for c in found)
        partial = False
        for fi, fam in enumerate(self.families):
            h = (lam * fam.heads - duals.task[fam.glob])[:, None]
            const = lam * fam.fixed - duals.count
            best: list[tuple] = []
            for step in range(fam.n_blocks):
                high = (self._next_block[fi] + step) % fam.n_blocks
                groups, valid, scores = fam.block(high)
                d = scores + h
                rc = np.where(valid, _reduced(d, const, axis=0), np.inf)
                r_min = min(r_min, float(rc.min()))
                top = np.argpartition(rc, limit)[:limit] if len(rc) > limit else np.arange(len(rc))
                top = top[rc[top] < -tol]
                best += [(float(rc[i]), int(groups[i]), d[:, i].copy(), scores[:, i].copy()) for i in top]
                if len(best) > 4 * limit:
                    best = sorted(best, key=lambda b: b[:2])[:limit]
                if not full and negative + len(best) >= limit:
                    self._next_block[fi] = (high + 1) % fam.n_blocks
                    partial = True
                    break
            for rc_i, group, d_i, scores_i in sorted(best, key=lambda b: b[:2])[:limit]:
                mask, score, cost = self._family_column(fam, scores_i, _best_set(d_i))
                found.append((rc_i, self._family_owner(fi, group), mask, score, cost, True))
            negative += len(best)
        found.sort(key=lambda c: c[:3])
        found = [c for c in found if c[0] < -tol]
        return (None if partial else r_min), found[:limit]

    def _tol(self) -> float:
        """Reduced costs above -tol count as nonnegative (the LP's own tolerances are ~1e-9)."""
        return 1e-9 * max(1.0, self.score_top)

    # ----- every column within a reduced cost (what the exact finish reads) ----------------
    def _within(self, duals: Duals, delta: float, cap: int) -> ColumnPool | None:
        """Every column of reduced cost <= delta (per family and served set only the best-scoring
        group, as they all cost the same; on a score tie the smaller group), or None past `cap`."""
        lam = -duals.budget
        out = ColumnPool()
        try:
            if self.n_listed:
                p = self.problem
                d, const = self._listed_terms(lam, duals)
                rc = _reduced(d, const)
                task_bits = 1 << np.arange(len(self.tasks), dtype=np.int64)
                for i in np.nonzero(rc <= delta)[0]:
                    for mask, score, head in _subsets_within(d[i], delta - const[i], cap - len(out), task_bits,
                                                             p.score[i], p.head[i]):
                        out.add(int(i), mask, score, float(p.fixed[i]) + head, bool(self.listed_estimated[i]))
            for fi, fam in enumerate(self.families):
                h = lam * fam.heads - duals.task[fam.glob]
                const = lam * fam.fixed - duals.count
                best: dict[int, tuple] = {}  # served mask -> ((score, group size, group), cost)
                h = h[:, None]
                for high in range(fam.n_blocks):
                    groups, valid, scores = fam.block(high)
                    d = scores + h
                    rc = np.where(valid, _reduced(d, const, axis=0), np.inf)
                    task_bits = 1 << fam.glob
                    for i in np.nonzero(rc <= delta)[0]:
                        g = int(groups[i])
                        size = bin(g).count("1")
                        for mask, score, head in _subsets_within(d[:, i], delta - const, cap - len(out) - len(best),
                                                                 task_bits, scores[:, i], fam.heads):
                            key = (score, size, g)
                            if mask not in best or key < best[mask][0]:
                                best[mask] = (key, fam.fixed + head)
                for mask, ((score, _, g), cost) in best.items():
                    out.add(self._family_owner(fi, g), mask, score, cost, True)
        except _TooMany:
            return None
        return out

class _TooMany(Exception):
    """The exact finish would enumerate more columns than allowed."""


def _subsets_within(d: np.ndarray, threshold: float, cap: int, bits: np.ndarray, score: np.ndarray,
                    head: np.ndarray) -> list[tuple[int, float, float]]:
    """Every nonempty set of the finite entries of `d` whose sum is <= threshold, as (bit mask, summed
    score, summed head cost) with the entries' `bits`, `score` and `head` (depth-first over the entries
    in increasing order, cut where even the negative rest cannot bring the sum under the threshold).
    Raises _TooMany past `cap` sets."""
    idx = np.nonzero(np.isfinite(d))[0]
    idx = idx[np.argsort(d[idx], kind="stable")]
    vals, b, sc, hd = d[idx].tolist(), bits[idx].tolist(), score[idx].tolist(), head[idx].tolist()
    m = len(vals)
    rest = [0.0] * (m + 1)  # the least the entries from i on can still add
    for i in range(m - 1, -1, -1):
        rest[i] = rest[i + 1] + min(0.0, vals[i])
    out: list[tuple[int, float, float]] = []

    def visit(i: int, total: float, mask: int, s: float, h: float) -> None:
        if total + rest[i] > threshold:
            return
        if i == m or (vals[i] >= 0 and total + vals[i] > threshold):  # nothing more fits: the set as it is
            if mask:
                if len(out) >= cap:
                    raise _TooMany
                out.append((mask, s, h))
            return
        visit(i + 1, total + vals[i], mask | b[i], s + sc[i], h + hd[i])
        visit(i + 1, total, mask, s, h)

    visit(0, 0.0, 0, 0.0, 0.0)
    return out
