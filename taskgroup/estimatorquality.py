"""How good each estimator was on a preset's benchmark, for the report to state beside the choice.

benchmarks/grouping_quality.py trains every subset of a preset's tasks over several seeds and scores
each selection method against exhaustive selection; its record (one JSON file per preset in
taskgroup/data/estimator_quality/, naming its source and machine) keeps, per method, the worst
regret over the budgets and the training compute as a share of exhaustive's. It applies to runs
trained with the recipe it measured, on the same tasks (taskgroup.train.recipes decides).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from taskgroup.errors import SchemaError
from taskgroup.fileio import read_json

KIND = "estimator_quality"
RECORDS = Path(__file__).resolve().parent / "data" / "estimator_quality"
# grouping_quality's method names -> what a run does to get that method: (`--candidates`, `--estimate`, `--top-k`).
# ESA and adaptive rounds there are scored from snapshots of every subset, not as a pipeline runs them.
METHODS = {"HOA (pairs)": ("pairs", "hoa", 0), "HOA + top-3": ("pairs", "hoa", 3),
           "TAG affinity": ("affinity", "tag", 0), "TAG affinity + top-3": ("affinity", "tag", 3),
           "TAG without momentum": ("affinity", "tag-nomomentum", 0),
           "TAG without momentum + top-3": ("affinity", "tag-nomomentum", 3),
           "gradient cosine": ("affinity", "cosine", 0), "gradient cosine + top-3": ("affinity", "cosine", 3),
           "base model": ("base", "base", 0), "base model + top-3": ("base", "base", 3),
           "exhaustive": ("all", None, 0)}


@dataclass(frozen=True)
class MethodQuality:
    method: str  # the benchmark's name for it
    worst_regret_pct: float  # largest regret against exhaustive over the budgets, mean over seeds, in %
    compute_max_pct: float  # training compute over exhaustive's, the largest over the budgets, in %


@dataclass(frozen=True)
class EstimatorQuality:
    preset: str
    source: str  # results file, machine and date
    tasks: tuple[str, ...]
    seeds: int
    budgets: str  # the SNT range scored, e.g. "1.25-3"
    objective: str  # the selection objective regret was measured in: reference (normalised) or none
    run_config: dict[str, Any]
    methods: dict[str, MethodQuality]

    def for_choice(self, candidates: str, estimate: str | None, top_k: int = 0) -> MethodQuality | None:
        """The method a run with these settings is (None: one the benchmark did not score)."""
        wanted = (candidates, estimate or None, top_k if top_k > 1 else 0)
        return next((m for m in self.methods.values() if METHODS.get(m.method) == wanted), None)

    def sentence(self, candidates: str, estimate: str | None, top_k: int = 0) -> str | None:
        """One sentence for the report, or None when the benchmark did not score this choice."""
        m = self.for_choice(candidates, estimate, top_k)
        if m is None:
            return None
        return (f"On this preset's benchmark ({self.source}; {len(self.tasks)} tasks, {self.seeds} seeds, "
                f"budgets {self.budgets} SNT), the selection method used here ({m.method}) was at worst "
                f"{m.worst_regret_pct:+.2f}% from selecting among every subset trained, for at most "
                f"{m.compute_max_pct:.0f}% of that training.")

    def to_json(self) -> dict[str, Any]:
        return {"kind": KIND, "schema_version": 1, "preset": self.preset, "source": self.source,
                "tasks": list(self.tasks), "seeds": self.seeds, "budgets": self.budgets, "objective": self.objective,
                "run_config": self.run_config,
                "methods": {k: {"worst_regret_pct": m.worst_regret_pct, "compute_max_pct": m.compute_max_pct}
                            for k, m in self.methods.items()}}

    @classmethod
    def from_json(cls, doc: Any, path: str = "") -> "EstimatorQuality":
        where = path or "estimator quality record"
        if not isinstance(doc, Mapping) or doc.get("kind") != KIND or doc.get("schema_version") != 1:
            raise SchemaError(where, "kind", f"expected '{KIND}' with schema_version 1")
        try:
            methods = {}
            for name, m in doc["methods"].items():
                regret, compute = float(m["worst_regret_pct"]), float(m["compute_max_pct"])
                if not (math.isfinite(regret) and math.isfinite(compute) and compute >= 0):
                    raise ValueError(f"method '{name}': non-finite or negative numbers")
                methods[name] = MethodQuality(name, regret, compute)
            return cls(str(doc["preset"]), str(doc["source"]), tuple(map(str, doc["tasks"])), int(doc["seeds"]),
                       str(doc["budgets"]), str(doc["objective"]), dict(doc["run_config"]), methods)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(where, "methods", f"malformed estimator quality record ({exc})") from None


def for_preset(preset: str) -> EstimatorQuality | None:
    path = RECORDS / f"{preset}.json"
    if "/" in preset or "\\" in preset or not path.is_file():
        return None
    return EstimatorQuality.from_json(read_json(path, KIND), str(path))
