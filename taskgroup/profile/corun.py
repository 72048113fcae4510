"""The co-run measurement: networks run back to back each frame cost more than the sum of each alone
(each starts with the others' data in cache). The profiler times sequences of whole networks and fits
one slope; this module holds what was fitted (`CorunFit`, one `CorunSequence` per timed sequence) and
how far the slope may move from one profile to the next (`corun_standard_error`), which selection
allows for. The factor a slope gives is the cost model's (`costmodel.corun_factor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from taskgroup.errors import SchemaError
from taskgroup.fileio import require, require_finite
from taskgroup.profile.provenance import optional_field


@dataclass(frozen=True)
class CorunSequence:
    networks: tuple[str, ...]  # the networks run back to back, in order
    p50_ms: float | None = None  # the sequence measured as one call
    sum_alone_p50_ms: float | None = None  # the sum of each alone
    ratio: float | None = None  # p50_ms / sum_alone_p50_ms (what the fit and its uncertainty read)

    def to_json(self) -> dict[str, Any]:
        return {"networks": list(self.networks), **{k: getattr(self, k) for k in ("p50_ms", "sum_alone_p50_ms", "ratio")
                                                     if getattr(self, k) is not None}}


@dataclass(frozen=True)
class CorunFit:
    """The co-run model: N networks per frame cost their sum x (1 + per_extra_network x (N - 1))."""

    per_extra_network: float  # the fitted slope, clamped at 0
    sequences: tuple[CorunSequence, ...] = ()  # what it was fitted on (absent: not stored)
    fit_unclamped: float | None = None  # the slope before clamping
    model: str | None = None  # the model in words
    execution: str | None = None  # fused (one graph per frame) or separate sessions
    extra: dict[str, Any] = field(default_factory=dict)  # other fields, as written

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {} if self.model is None else {"model": self.model}
        doc["per_extra_network"] = self.per_extra_network
        if self.fit_unclamped is not None:
            doc["fit_unclamped"] = self.fit_unclamped
        doc["sequences"] = [q.to_json() for q in self.sequences]
        if self.execution is not None:
            doc["execution"] = self.execution
        return {**doc, **self.extra}

    @classmethod
    def from_json(cls, block: Any, where: str) -> "CorunFit":
        """The profile's `corun` object (its slope checked finite and >= 0)."""
        if not isinstance(block, dict):
            raise SchemaError(where, "corun", "expected an object")
        slope = require_finite(require(block, "per_extra_network", (int, float), f"{where}: corun"),
                               "corun.per_extra_network", where, minimum=0.0)
        sequences = []
        for i, q in enumerate(block.get("sequences") or []):
            f = f"corun.sequences[{i}]"
            if not isinstance(q, dict) or not isinstance(q.get("networks"), list):
                raise SchemaError(where, f, "expected an object with networks, p50_ms, sum_alone_p50_ms, ratio")
            sequences.append(CorunSequence(tuple(str(k) for k in q["networks"]),
                                           *(None if q.get(k) is None else
                                             require_finite(q[k], f"{f}.{k}", where, minimum=0.0)
                                             for k in ("p50_ms", "sum_alone_p50_ms", "ratio"))))
        unclamped = block.get("fit_unclamped")
        return cls(slope, tuple(sequences),
                   None if unclamped is None else require_finite(unclamped, "corun.fit_unclamped", where),
                   optional_field(block, "model", str, where), optional_field(block, "execution", str, where),
                   {k: v for k, v in block.items()
                    if k not in ("per_extra_network", "sequences", "fit_unclamped", "model", "execution")})

# Between-profile standard deviation of the fused co-run slope on the reference 2-core machine:
# seven profiles of the full-encoder preset (`wide`) back to back fitted 0.000-0.025 (std 0.0107) while each
# profile's own fit claimed standard errors of 0.0016-0.0104 (benchmarks/results/corun_repeatability.md).
# The within-profile figures understate run-to-run variation, so the uncertainty never goes below this.
CORUN_NOISE_FLOOR = 0.011


def corun_standard_error(block: Mapping[str, Any], slope: float) -> float:
    """Uncertainty of the co-run slope between profiles: the largest of the profile's own errors
    (`corun_fit_errors`) and CORUN_NOISE_FLOOR; 0 when no sequences are stored. A choice whose cost
    depends on the co-run factor by less than this would flip from one profile to the next."""
    errors = corun_fit_errors(block, slope)
    if errors is None:
        return 0.0
    return max(*errors, CORUN_NOISE_FLOOR)


def corun_fit_errors(block: Mapping[str, Any], slope: float) -> tuple[float, float] | None:
    """(the fit's standard error, least squares through the origin; the standard deviation of the
    sequences' own slopes (ratio - 1) / (N - 1), a deliberately conservative figure that does not
    shrink with more sequences), both 0 with one sequence; None when no sequences are stored."""
    rows = [r for r in block.get("sequences") or [] if isinstance(r, dict)]
    points = []
    for r in rows:
        ratio, nets = r.get("ratio"), r.get("networks")
        if isinstance(ratio, (int, float)) and math.isfinite(ratio) and isinstance(nets, list) and len(nets) > 1:
            points.append((len(nets) - 1, float(ratio) - 1))
    if not points:
        return None
    if len(points) == 1:  # one sequence: no fit residual, no spread; the floor is all that is known
        return 0.0, 0.0
    residual = sum((y - slope * x) ** 2 for x, y in points) / (len(points) - 1)
    fit = math.sqrt(residual / sum(x * x for x, _ in points))
    slopes = [y / x for x, y in points]
    mean = sum(slopes) / len(slopes)
    spread = math.sqrt(sum((v - mean) ** 2 for v in slopes) / (len(slopes) - 1))
    return fit, spread
