"""Seed statistics: how sure a loss, or a difference between two groupings, is.

A grouping's loss depends on the seed its networks were trained with (initial weights and
batch order). With several seeds, each loss is reported as mean ± standard deviation over
seeds, with the standard error of the mean (std / sqrt(n)). Two groupings are compared seed by
seed (paired: both were trained with the same seeds, so their shared luck cancels), and one is
called better than the other only when the mean difference is beyond what chance gives at the
stated confidence (95%, two-sided): Student's t with n - 1 degrees of freedom times the
standard error of the difference. With two or three seeds that is 12.7 or 4.3 standard errors,
not 2: two standard errors would call a difference that is not there 30% (2 seeds) or 18%
(3 seeds) of the time. Otherwise the two are indistinguishable at this number of seeds.

With one seed there is no spread in the run itself; `compare_with_noise` decides against a
spread measured elsewhere (the preset's, taskgroup.seednoise), with the t quantile of that
measurement's degrees of freedom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

CONFIDENCE = 0.95  # two-sided confidence of every verdict unless a rule states otherwise


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided critical value of Student's t: |T| exceeds it with probability 1 - confidence."""
    from scipy.stats import t

    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(t.ppf(0.5 + confidence / 2, df))


def confidence_words(confidence: float = CONFIDENCE) -> str:
    """'95% confidence (two-sided)': how every verdict states its level."""
    return f"{100 * confidence:g}% confidence (two-sided)"


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


def sample_variance(values: Sequence[float]) -> float:
    """Unbiased variance about the values' own mean (n - 1 in the denominator; at least two values)."""
    mean = math.fsum(values) / len(values)
    return math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)


def sample_std(values: Sequence[float]) -> float:
    return math.sqrt(sample_variance(values))


def estimate(values: Sequence[float]) -> Estimate:
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return Estimate(mean, None, len(values))
    return Estimate(mean, sample_std(values), len(values))


@dataclass(frozen=True)
class Comparison:
    """a - b: negative means a is lower (better for a loss). The verdict is called when |mean| is
    beyond `threshold`, the t critical value at `confidence` times the difference's standard error."""

    difference: Estimate
    verdict: str  # "lower", "higher", "indistinguishable", or "unknown" (one seed: no noise estimate)
    confidence: float = CONFIDENCE
    threshold: float | None = None  # |difference| beyond which a verdict is called (None: unknown)
    df: float | None = None  # degrees of freedom of the t quantile
    p_value: float | None = None  # two-sided: the chance of a difference this large if there were none
    basis: str = ""  # where the spread comes from, in words

    def text(self, digits: int = 4) -> str:
        """'+0.0123 ± 0.0045 se; 95% confidence (two-sided) needs beyond ±0.0194 (t with 2 degrees of freedom,
        paired over 3 seeds), p = 0.11'."""
        d = self.difference
        if self.threshold is None:
            return f"{d.mean:+.{digits}f} (one seed: no standard error)"
        spread = f" ± {d.stderr:.{digits}f} se" if d.stderr is not None else ""
        return f"{d.mean:+.{digits}f}{spread}; {self.rule_text(digits)}"

    def rule_text(self, digits: int = 4) -> str:
        """'95% confidence (two-sided) needs beyond ±0.0194 (t with 2 degrees of freedom, paired over 3 seeds), p = 0.11'."""
        if self.threshold is None:
            return "no spread to judge it by"
        p = "" if self.p_value is None else f", p = {self.p_value:.2g}"
        basis = f", {self.basis}" if self.basis else ""
        return (f"{confidence_words(self.confidence)} needs beyond ±{self.threshold:.{digits}f} (t with {self.df:g} "
                f"degrees of freedom{basis}){p}")


def _verdict(mean: float, spread: float, df: float, confidence: float) -> tuple[str, float, float]:
    """(verdict, threshold, p) for a difference `mean` whose standard error is `spread`."""
    from scipy.stats import t

    if spread == 0.0:
        verdict = "indistinguishable" if mean == 0 else ("lower" if mean < 0 else "higher")
        return verdict, 0.0, 1.0 if mean == 0 else 0.0
    threshold = t_quantile(df, confidence) * spread
    p = float(2 * t.sf(abs(mean) / spread, df))
    if abs(mean) <= threshold:
        return "indistinguishable", threshold, p
    return ("lower" if mean < 0 else "higher"), threshold, p


def compare(a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE) -> Comparison:
    """Paired comparison of two per-seed values (seed -> loss) over their common seeds: a t test of
    the mean difference with n - 1 degrees of freedom."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two results share no seed")
    diff = estimate([a[s] - b[s] for s in common])
    if diff.stderr is None:
        return Comparison(diff, "unknown", confidence)
    verdict, threshold, p = _verdict(diff.mean, diff.stderr, diff.n - 1, confidence)
    return Comparison(diff, verdict, confidence, threshold, diff.n - 1, p, f"paired over {diff.n} seeds")


def compare_with_noise(difference: float, spread: float, df: float, basis: str,
                       confidence: float = CONFIDENCE) -> Comparison:
    """One difference (one seed) against a standard deviation of such differences measured elsewhere
    with `df` degrees of freedom: d / s then follows t with `df` degrees of freedom."""
    if not (spread >= 0 and math.isfinite(spread)):
        raise ValueError(f"spread must be a finite number >= 0, got {spread}")
    verdict, threshold, p = _verdict(difference, spread, df, confidence)
    return Comparison(Estimate(difference, None, 1), verdict, confidence, threshold, df, p, basis)


def pooled_std(series: Iterable[Sequence[float]]) -> tuple[float, int]:
    """Standard deviation pooled over several series (each about its own mean) and its degrees of freedom:
    the seed noise of one quantity measured on several groupings or pairs."""
    squares, df = 0.0, 0
    for values in series:
        mean = math.fsum(values) / len(values)
        squares += math.fsum((v - mean) ** 2 for v in values)
        df += len(values) - 1
    return math.sqrt(squares / df), df


def within_noise(values: Sequence[float], confidence: float = CONFIDENCE) -> bool | None:
    """Whether the mean of `values` cannot be told from 0 at `confidence` (one-sample t, n - 1 degrees
    of freedom); None with one value."""
    e = estimate(values)
    if e.stderr is None:
        return None
    return _verdict(e.mean, e.stderr, e.n - 1, confidence)[0] == "indistinguishable"
