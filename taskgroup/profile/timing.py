"""Latency measurement: warm-up, adaptive number of timed runs, percentiles.

Everything to be timed in one profile is measured in interleaved rounds (each callable
runs a short block in turn, several times over), so a burst of load from another process
on a shared machine hits the trunk, the heads and the whole networks alike instead of
skewing one of them. The number of runs is adaptive: each callable runs until it has both
`min_runs` calls and `min_seconds` of timed work, and the count is recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from taskgroup.profile.costmodel import LatencyStats


@dataclass(frozen=True)
class TimingConfig:
    warmup_runs: int = 10  # untimed calls first (caches, lazy allocation, kernel selection)
    min_runs: int = 50  # at least this many timed calls per callable
    min_seconds: float = 0.3  # and at least this much timed work per callable
    rounds: int = 5  # interleaved rounds the runs are split over
    max_runs: int = 20000  # cap for very fast callables


def stats_from_samples(samples_s: list[float] | np.ndarray,
                       rounds: list[list[float]] | None = None) -> LatencyStats:
    """Percentiles (ms) of per-call durations given in seconds; with `rounds` (the same samples
    split by interleaved round), each round's median too: their spread is the measurement's noise."""
    from runtime.stats import summarize_ms

    s = summarize_ms(samples_s)
    per_round = tuple(float(np.median(r)) * 1e3 for r in rounds if r) if rounds else None
    return LatencyStats(p50=s["p50_ms"], p90=s["p90_ms"], p99=s["p99_ms"], mean=s["mean_ms"], runs=s["runs"],
                        rounds_p50=per_round)


def measure(callables: Mapping[str, Callable[[], object]], config: TimingConfig = TimingConfig(),
            on_round: Callable[[int], None] | None = None) -> dict[str, LatencyStats]:
    """Time each callable (one call = one inference, already synchronised) in interleaved rounds."""
    names = list(callables)
    for name in names:
        for _ in range(config.warmup_runs):
            callables[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    spent: dict[str, float] = {n: 0.0 for n in names}
    rounds = max(1, config.rounds)
    by_round: dict[str, list[list[float]]] = {n: [[] for _ in range(rounds)] for n in names}
    for r in range(rounds):
        for name in names:
            fn = callables[name]
            # Each round covers its share of both targets; the last round tops up whatever is missing.
            want_runs = config.min_runs * (r + 1) // rounds
            want_secs = config.min_seconds * (r + 1) / rounds
            timed = samples[name]
            this_round = by_round[name][r]
            while (len(timed) < want_runs or spent[name] < want_secs) and len(timed) < config.max_runs:
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                timed.append(dt)
                this_round.append(dt)
                spent[name] += dt
        if on_round is not None:
            on_round(r)
    return {n: stats_from_samples(samples[n], by_round[n]) for n in names}
