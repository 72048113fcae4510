"""Latency summaries shared by Bundle.benchmark, the CLI and the benchmark scripts."""

from __future__ import annotations

import numpy as np


def summarize_ms(samples_s: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean/min in milliseconds from per-call durations in seconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no timing samples")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min()), "runs": int(ms.size)}
