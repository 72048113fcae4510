"""What a device profile measured, as typed records: latency over timed calls, each piece of a network
(trunk, head) with its parameters and MACs, everything at one width, and the whole networks timed to
check the additive cost model.

Each record writes its part of the profile document (`to_json`) and reads it back with the file's
checks (`from_json`, raising a SchemaError naming the file and the field), so the document has one
writer and one reader per part. No torch here: `taskgroup select` reads profiles without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from taskgroup.errors import SchemaError
from taskgroup.fileio import require, require_finite
from taskgroup.stats import sample_std

# Widths are stored as floats; two widths closer than this are the same width.
WIDTH_TOL = 1e-9


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one thing (trunk, head, network) over `runs` timed calls, in ms."""

    p50: float  # median, the statistic costs use by default
    p90: float
    p99: float
    mean: float
    runs: int  # number of timed calls (after warm-up)
    rounds_p50: tuple[float, ...] | None = None  # the median of each interleaved round (absent in old profiles)

    def get(self, statistic: str) -> float:
        return float(getattr(self, statistic))

    @property
    def noise(self) -> float:
        """How much this latency moves between rounds: the standard deviation of the per-round medians
        (each round times everything once, minutes apart at most). 0 when unknown."""
        r = self.rounds_p50
        return sample_std(r) if r and len(r) > 1 else 0.0

    @property
    def noise_se(self) -> float:
        """How much the profile's estimate moves between profiling runs: the standard error of the
        mean of the per-round medians (noise / sqrt(rounds)). 0 when unknown."""
        r = self.rounds_p50
        return sample_std(r) / len(r) ** 0.5 if r and len(r) > 1 else 0.0

    def to_json(self) -> dict[str, Any]:
        doc = {"p50": self.p50, "p90": self.p90, "p99": self.p99, "mean": self.mean, "runs": self.runs}
        if self.rounds_p50 is not None:
            doc["rounds_p50"] = list(self.rounds_p50)
        return doc

    @classmethod
    def from_json(cls, doc: Any, field: str, where: str) -> "LatencyStats":
        if not isinstance(doc, dict):
            raise SchemaError(where, field, "expected an object with p50, p90, p99, mean, runs")
        values = {}
        for key in ("p50", "p90", "p99", "mean"):
            if key not in doc:
                raise SchemaError(where, f"{field}.{key}", "missing")
            values[key] = require_finite(doc[key], f"{field}.{key}", where, minimum=0.0)
        runs = doc.get("runs")
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise SchemaError(where, f"{field}.runs", f"expected a positive integer, found {runs!r}")
        if not values["p50"] <= values["p90"] <= values["p99"]:
            raise SchemaError(where, field, f"percentiles out of order: p50={values['p50']}, p90={values['p90']}, "
                                            f"p99={values['p99']}")
        rounds = doc.get("rounds_p50")  # optional: profiles written before the noise was stored lack it
        if rounds is not None:
            if not isinstance(rounds, list) or not rounds:
                raise SchemaError(where, f"{field}.rounds_p50",
                                  f"expected a non-empty list of numbers, found {rounds!r}")
            rounds = tuple(require_finite(v, f"{field}.rounds_p50[{i}]", where, minimum=0.0)
                           for i, v in enumerate(rounds))
        return cls(runs=runs, rounds_p50=rounds, **values)


@dataclass(frozen=True)
class Component:
    """One measured piece of a network: the trunk, or one task's head, at one width."""

    params: int  # number of parameters
    macs: int  # multiply-adds counted by fvcore (one multiply-add = one flop)
    latency: LatencyStats  # measured alone (a head is fed the trunk's output features)
    macs_by_operator: Mapping[str, int] = field(default_factory=dict)  # fvcore operator -> multiply-adds

    def to_json(self) -> dict[str, Any]:
        return {"params": self.params, "macs": self.macs, "macs_by_operator": dict(self.macs_by_operator),
                "latency_ms": self.latency.to_json()}

    @classmethod
    def from_json(cls, doc: Any, field: str, where: str) -> "Component":
        if not isinstance(doc, dict):
            raise SchemaError(where, field, "expected an object")
        params = _count(doc, "params", field, where)
        macs = _count(doc, "macs", field, where)
        if "latency_ms" not in doc:
            raise SchemaError(where, f"{field}.latency_ms", "missing")
        by_op = doc.get("macs_by_operator") or {}
        if not isinstance(by_op, dict):
            raise SchemaError(where, f"{field}.macs_by_operator", "expected an object operator -> multiply-adds")
        return cls(params, macs, LatencyStats.from_json(doc["latency_ms"], f"{field}.latency_ms", where),
                   {op: _count(by_op, op, f"{field}.macs_by_operator", where) for op in by_op})


@dataclass(frozen=True)
class WidthCosts:
    """Everything measured at one width multiplier."""

    width: float
    trunk: Component
    heads: Mapping[str, Component]
    session_overhead: LatencyStats | None  # fixed cost of one backend call; None when not separable

    def to_json(self) -> dict[str, Any]:
        return {"width": self.width, "trunk": self.trunk.to_json(),
                "heads": {t: c.to_json() for t, c in self.heads.items()},
                "session_overhead": self.session_overhead.to_json() if self.session_overhead else None}

    @classmethod
    def from_json(cls, entry: Any, tasks: Sequence[str], field: str, where: str,
                  seen: Iterable[float] = ()) -> "WidthCosts":
        """One entry of the profile's `widths`, with a head measured for each of `tasks`; its width must
        differ from those `seen` before it."""
        if not isinstance(entry, dict):
            raise SchemaError(where, field, "expected an object")
        w = require_finite(require(entry, "width", (int, float), f"{where}: {field}"), f"{field}.width", where)
        if not 0 < w <= 4:
            raise SchemaError(where, f"{field}.width", f"expected a width in (0, 4], found {w}")
        if any(abs(w - v) <= WIDTH_TOL for v in seen):
            raise SchemaError(where, f"{field}.width", f"width {w:g} appears twice")
        trunk = _component(entry, "trunk", f"{field}.trunk", where)
        heads_doc = require(entry, "heads", dict, f"{where}: {field}")
        missing = [t for t in tasks if t not in heads_doc]
        if missing:
            raise SchemaError(where, f"{field}.heads", f"no measurement for task(s) {missing}")
        heads = {t: _component(heads_doc, t, f"{field}.heads.{t}", where) for t in tasks}
        overhead = entry.get("session_overhead")
        return cls(w, trunk, heads,
                   None if overhead is None else LatencyStats.from_json(overhead, f"{field}.session_overhead", where))


@dataclass(frozen=True)
class ValidatedNetwork:
    """One whole network timed directly, against the cost model's prediction for it."""

    width: float
    served: tuple[str, ...]  # the heads it kept
    params: int
    macs: int
    latency: LatencyStats  # measured as one network
    predicted_ms: float | None = None  # trunk + heads at the validation's statistic
    relative_error: float | None = None  # (predicted - measured) / measured

    def to_json(self) -> dict[str, Any]:
        doc = {"width": self.width, "served": list(self.served), "params": self.params, "macs": self.macs,
               "latency_ms": self.latency.to_json()}
        if self.predicted_ms is not None:
            doc.update(predicted_ms=self.predicted_ms, relative_error=self.relative_error)
        return doc

    @classmethod
    def from_json(cls, n: Any, f: str, where: str) -> "ValidatedNetwork":
        if not isinstance(n, dict):
            raise SchemaError(where, f, "expected an object")
        served = n.get("served")
        if not isinstance(served, list) or not all(isinstance(t, str) for t in served):
            raise SchemaError(where, f"{f}.served", "expected a list of task names")
        predicted, error = n.get("predicted_ms"), n.get("relative_error")
        return cls(
            require_finite(n.get("width"), f"{f}.width", where, minimum=0.0), tuple(served),
            _count(n, "params", f, where), _count(n, "macs", f, where),
            LatencyStats.from_json(n.get("latency_ms"), f"{f}.latency_ms", where),
            None if predicted is None else require_finite(predicted, f"{f}.predicted_ms", where),
            None if error is None else require_finite(error, f"{f}.relative_error", where))


@dataclass(frozen=True)
class Validation:
    """How well the additive cost model predicts directly measured whole networks."""

    statistic: str
    networks: tuple[ValidatedNetwork, ...]

    @property
    def max_abs_relative_error(self) -> float:
        return max((abs(n.relative_error) for n in self.networks if n.relative_error is not None), default=0.0)

    @property
    def mean_abs_relative_error(self) -> float:
        errors = [abs(n.relative_error) for n in self.networks if n.relative_error is not None]
        return sum(errors) / len(errors) if errors else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "networks": [n.to_json() for n in self.networks],
                "max_abs_relative_error": self.max_abs_relative_error,
                "mean_abs_relative_error": self.mean_abs_relative_error}

    @classmethod
    def from_json(cls, doc: Any, where: str) -> "Validation | None":
        """The profile's `validation` (None when absent)."""
        if doc is None:
            return None
        if not isinstance(doc, dict):
            raise SchemaError(where, "validation", "expected an object")
        networks = require(doc, "networks", list, f"{where}: validation")
        return cls(str(doc.get("statistic", "p50")),
                   tuple(ValidatedNetwork.from_json(n, f"validation.networks[{i}]", where)
                         for i, n in enumerate(networks)))


def _component(parent: Mapping[str, Any], key: str, field: str, where: str) -> Component:
    if key not in parent:
        raise SchemaError(where, field, "missing")
    return Component.from_json(parent[key], field, where)


def _count(doc: Mapping[str, Any], key: str, field: str, where: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SchemaError(where, f"{field}.{key}", f"expected a non-negative integer, found {value!r}")
    return value
