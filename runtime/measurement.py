"""What timing a bundle gives: one latency record for the runtime and the toolkit's bench.

`Bundle.benchmark` returns a `FrameLatency`, `Bundle.measure` a `Measurement`; the toolkit's
bench result (`taskgroup.bench.BenchResult`, bench.json) holds the same `LatencySummary` and
`NetworkLatency` records and reads them back, so a latency has one shape wherever it is
measured, written or read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskgroup_runtime.timing import Timing, TimingConfig

PERCENTILES = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms")


@dataclass(frozen=True)
class LatencySummary:
    """Latency of one callable over `runs` timed calls, in ms (`taskgroup_runtime.timing.summarize_ms`)."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    runs: int

    @classmethod
    def of(cls, timing: Timing) -> "LatencySummary":
        return cls(**timing.summary())

    def to_json(self) -> dict[str, Any]:
        return {"p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms, "mean_ms": self.mean_ms,
                "min_ms": self.min_ms, "runs": self.runs}


@dataclass(frozen=True)
class NetworkLatency:
    network: str  # the manifest's network name (net0, ..., or fused)
    tasks: tuple[str, ...]  # tasks it serves
    latency: LatencySummary  # alone, in its own session, configured as a lone one

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "tasks": list(self.tasks), **self.latency.to_json()}


@dataclass(frozen=True)
class FrameLatency:
    """`Bundle.benchmark`: the latency of `Bundle.run` per call, and how the bundle ran."""

    latency: LatencySummary  # per call, pre-processing included
    execution: str  # sequential | concurrent: how the bundle ran its networks
    backend: str  # what ran them
    device: str  # where they ran (the effective device: a fallback is labelled as the CPU)
    batch: int  # frames per call

    def to_json(self) -> dict[str, Any]:
        return {**self.latency.to_json(), "execution": self.execution, "backend": self.backend, "device": self.device,
                "batch": self.batch}


@dataclass(frozen=True)
class Measurement:
    """`Bundle.measure`: the whole bundle per frame next to each network alone, timed in the same rounds."""

    whole: LatencySummary  # `Bundle.run` per frame, pre-processing included
    execution: str  # sequential | concurrent: how the bundle ran its networks
    backend: str  # what ran them
    device: str  # where they ran (the effective device: a fallback is labelled as the CPU)
    batch: int  # frames per call
    standalone: tuple[NetworkLatency, ...]  # each network alone, in manifest order
    timing: TimingConfig  # how they were timed (interleaved rounds)

    @property
    def standalone_p50_sum_ms(self) -> float:
        return sum(a.latency.p50_ms for a in self.standalone)

    @property
    def ratio_to_standalone_sum(self) -> float:
        """The bundle per frame over the sum of its networks alone: above 1, running them together costs."""
        return self.whole.p50_ms / self.standalone_p50_sum_ms

    def timing_json(self) -> dict[str, Any]:
        """The timing settings as bench.json records them."""
        return {"warmup_runs": self.timing.warmup_runs, "min_runs": self.timing.min_runs,
                "min_seconds": self.timing.min_seconds, "rounds": self.timing.rounds, "interleaved": True}

    def to_json(self) -> dict[str, Any]:
        return {"whole": FrameLatency(self.whole, self.execution, self.backend, self.device, self.batch).to_json(),
                "standalone": [a.to_json() for a in self.standalone],
                "standalone_p50_sum_ms": self.standalone_p50_sum_ms,
                "ratio_to_standalone_sum": self.ratio_to_standalone_sum,
                "timing": self.timing_json()}
