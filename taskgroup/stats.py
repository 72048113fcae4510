"""Seed statistics: how sure a loss, or a difference between two groupings, is.

A grouping's loss depends on the seed its networks were trained with (initial weights and
batch order). With several seeds, each loss is reported as mean ± standard deviation over
seeds, with the standard error of the mean (std / sqrt(n)). Two groupings are compared
seed by seed (paired: both were trained with the same seeds, so their shared luck cancels),
and one is called better than the other only when the mean difference exceeds `Z` standard
errors of the difference; otherwise they are indistinguishable at this number of seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

Z = 2.0  # differences within Z standard errors are "within noise"


@dataclass(frozen=True)
class Estimate:
    """Mean over seeds, sample standard deviation and count."""

    mean: float
    std: float | None  # None with one seed
    n: int

    @property
    def stderr(self) -> float | None:
        return None if self.std is None else self.std / math.sqrt(self.n)

    def text(self, digits: int = 4) -> str:
        """'1.2345 ± 0.0123 (se 0.0071, 3 seeds)', or just the value with one seed."""
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} (se {self.stderr:.{digits}f}, {self.n} seeds)"

    def short(self, digits: int = 4) -> str:
        return f"{self.mean:.{digits}f}" if self.std is None else f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def estimate(values: Sequence[float]) -> Estimate:
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return Estimate(mean, None, len(values))
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return Estimate(mean, std, len(values))


@dataclass(frozen=True)
class Comparison:
    """a - b over the seeds both have: negative means a is lower (better for a loss)."""

    difference: Estimate
    verdict: str  # "lower", "higher", "indistinguishable", or "unknown" (one seed: no noise estimate)

    def text(self, digits: int = 4) -> str:
        d = self.difference
        if d.stderr is None:
            return f"{d.mean:+.{digits}f} (one seed: no standard error)"
        return f"{d.mean:+.{digits}f} ± {d.stderr:.{digits}f} se"


def compare(a: Mapping[int, float], b: Mapping[int, float], z: float = Z) -> Comparison:
    """Paired comparison of two per-seed values (seed -> loss) over their common seeds."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two results share no seed")
    diff = estimate([a[s] - b[s] for s in common])
    if diff.stderr is None:
        verdict = "unknown"
    elif diff.stderr == 0.0:
        verdict = "indistinguishable" if diff.mean == 0 else ("lower" if diff.mean < 0 else "higher")
    elif abs(diff.mean) <= z * diff.stderr:
        verdict = "indistinguishable"
    else:
        verdict = "lower" if diff.mean < 0 else "higher"
    return Comparison(diff, verdict)


def within_noise(values: Sequence[float], z: float = Z) -> bool | None:
    """Whether the mean of `values` is within z standard errors of 0 (None with one value)."""
    e = estimate(values)
    if e.stderr is None:
        return None
    return abs(e.mean) <= z * e.stderr
