"""The one latency measurement: warm-up, interleaved rounds, an adaptive number of timed calls.

The profiler, `Bundle.benchmark` / `Bundle.measure` (and so `taskgroup bench` and the
pipeline), the execution-mode choice at load and the benchmark scripts all time with
`measure`, so a predicted latency and a measured one are taken the same way.

Everything measured together is timed in interleaved rounds (each callable runs a block of
calls in turn, several times over), so a burst of load from another process on a shared
machine hits every callable alike instead of skewing one of them. The number of calls is
adaptive: each callable runs until it has both `min_runs` calls and `min_seconds` of timed
work (capped at `max_runs`), and the count is recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np


MAX_RUNS = 20000  # timed calls per callable at most: the cap for very fast callables, and for --runs / --min-runs


@dataclass(frozen=True)
class TimingConfig:
    warmup_runs: int = 10  # untimed calls first (caches, lazy allocation, kernel selection)
    min_runs: int = 50  # at least this many timed calls per callable
    min_seconds: float = 0.3  # and at least this much timed work per callable
    rounds: int = 5  # interleaved rounds the calls are split over (each callable runs a block per round)
    max_runs: int = MAX_RUNS  # cap for very fast callables

    def check(self) -> None:
        if (self.warmup_runs < 0 or self.min_runs < 1 or self.rounds < 1 or self.max_runs < self.min_runs
                or not self.min_seconds >= 0):
            raise ValueError(f"timing: need warmup_runs >= 0, min_runs >= 1, rounds >= 1, max_runs >= min_runs and "
                             f"min_seconds >= 0, got {self}")


def summarize_ms(samples_s: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean/min in milliseconds and the count, from per-call durations in seconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no timing samples")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min()), "runs": int(ms.size)}


@dataclass(frozen=True)
class Timing:
    """The timed calls of one callable, in the order they ran."""

    samples_s: np.ndarray  # seconds per call
    round_ends: tuple[int, ...] = field(default=())  # index after the last call of each round

    def summary(self) -> dict[str, float]:
        return summarize_ms(self.samples_s)

    @property
    def p50_ms(self) -> float:
        return float(np.median(self.samples_s)) * 1e3

    def round_medians_ms(self) -> list[float]:
        """The median of each round: how much the latency moved while it was measured."""
        starts = (0, *self.round_ends[:-1])
        return [float(np.median(self.samples_s[a:b])) * 1e3 for a, b in zip(starts, self.round_ends) if b > a]


def measure(callables: Mapping[str, Callable[[], object]], config: TimingConfig = TimingConfig(),
            on_round: Callable[[int], None] | None = None) -> dict[str, Timing]:
    """Time each callable (one call = one synchronised inference) in interleaved rounds."""
    config.check()
    names = list(callables)
    for name in names:
        for _ in range(config.warmup_runs):
            callables[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    spent: dict[str, float] = {n: 0.0 for n in names}
    ends: dict[str, list[int]] = {n: [] for n in names}
    clock = time.perf_counter
    for r in range(config.rounds):
        for name in names:
            fn = callables[name]
            timed = samples[name]
            # Each round covers its share of both targets; the last round tops up whatever is missing.
            want_runs = config.min_runs * (r + 1) // config.rounds
            want_secs = config.min_seconds * (r + 1) / config.rounds
            while (len(timed) < want_runs or spent[name] < want_secs) and len(timed) < config.max_runs:
                t0 = clock()
                fn()
                dt = clock() - t0
                timed.append(dt)
                spent[name] += dt
            ends[name].append(len(timed))
        if on_round is not None:
            on_round(r)
    return {n: Timing(np.asarray(samples[n], dtype=np.float64), tuple(ends[n])) for n in names}
