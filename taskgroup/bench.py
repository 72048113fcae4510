"""The bench result (bench.json): a bundle's measured latency, the one type `taskgroup bench --json`
and the pipeline's bench stage write and the report reads.

Both measure with `measure_bundle`, which loads the bundle as a robot would (the profile's thread
count, from the manifest) and times it with `Bundle.measure`, i.e. `taskgroup_runtime.timing.measure`, the
profiler's own timing function: the whole bundle per frame and each of its networks alone, in
the same interleaved rounds. The prediction and the budget come from the manifest, which
carries them from the grouping.

Its latency records are the runtime's own (`taskgroup_runtime.measurement`: what `Bundle.measure`
returns is what is written); this module only reads them back with the toolkit's file errors.

Schema 2. Schema-1 files of both earlier layouts load: the pipeline's (`predicted_ms`,
`budget_ms`, `execution`) and `bench --json`'s (`bundle`, `budget`, `predicted_latency_ms`,
`runtime`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.fileio import read_json, require, require_number, write_json_atomic
from taskgroup_runtime import BackendUnavailableError, BundleError, load_bundle
from taskgroup_runtime.measurement import PERCENTILES, LatencySummary, NetworkLatency
from taskgroup_runtime.provenance import SelectionBudget

KIND = "bundle_benchmark"
SCHEMA_VERSION = 2
SUPPORTED_VERSIONS = (1, SCHEMA_VERSION)


def latency_from_json(doc: Any, where: object, prefix: str) -> LatencySummary:
    """The runtime's latency record, read from a bench file (min_ms is absent in files from before it was
    recorded: the p50 stands in)."""
    if not isinstance(doc, dict):
        raise SchemaError(where, prefix.rstrip("."), "expected an object with p50_ms, p90_ms, p99_ms, mean_ms, runs")
    values = {k: require_number(doc, k, where, prefix=prefix, minimum=0.0, optional=k == "min_ms")
              for k in PERCENTILES}
    if values["min_ms"] is None:  # files from before the minimum was recorded
        values["min_ms"] = values["p50_ms"]
    if not values["min_ms"] <= values["p50_ms"] <= values["p90_ms"] <= values["p99_ms"]:
        raise SchemaError(where, prefix.rstrip("."), f"percentiles out of order: {values}")
    return LatencySummary(runs=require_number(doc, "runs", where, prefix=prefix, minimum=1, integer=True), **values)


@dataclass(frozen=True)
class BenchResult:
    """What one bench of a bundle measured, and what it is compared with."""

    whole: LatencySummary  # Bundle.run per frame (uint8 frame, pre-processing included)
    standalone: tuple[NetworkLatency, ...]  # each network alone, timed in the same rounds
    bundle: str | None = None  # the bundle directory measured
    execution: str | None = None  # sequential | concurrent (separate networks; one network: sequential)
    backend: str | None = None  # what ran: onnxruntime, onnxruntime-tensorrt, tensorrt
    device: str | None = None  # where it ran (cpu after an allowed fallback, never labelled as a GPU)
    batch: int = 1  # frames per call
    budget_value: float | None = None  # the grouping's budget...
    budget_unit: str | None = None  # ...and its unit (ms, or snt: no latency comparison)
    predicted_ms: float | None = None  # the profile's prediction for the bundle (budgets in ms)
    timing: dict[str, Any] = field(default_factory=dict)  # the timing settings (runtime.timing.TimingConfig)
    runtime: dict[str, Any] = field(default_factory=dict)  # Bundle.describe(): runners, load report

    @property
    def standalone_p50_sum_ms(self) -> float:
        return sum(n.latency.p50_ms for n in self.standalone)

    @property
    def ratio_to_standalone_sum(self) -> float | None:
        total = self.standalone_p50_sum_ms
        return self.whole.p50_ms / total if total > 0 else None

    @property
    def measured_over_predicted(self) -> float | None:
        return self.whole.p50_ms / self.predicted_ms if self.predicted_ms else None

    @property
    def budget_ms(self) -> float | None:
        return self.budget_value if self.budget_unit == "ms" else None

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": KIND, "bundle": self.bundle,
                "whole": {**self.whole.to_json(), "execution": self.execution, "backend": self.backend,
                          "device": self.device, "batch": self.batch},
                "standalone": [n.to_json() for n in self.standalone],
                "standalone_p50_sum_ms": self.standalone_p50_sum_ms,  # derived, for readers of the file
                "ratio_to_standalone_sum": self.ratio_to_standalone_sum,
                "budget": {"value": self.budget_value, "unit": self.budget_unit},
                "predicted_ms": self.predicted_ms, "measured_over_predicted": self.measured_over_predicted,
                "timing": self.timing, "runtime": self.runtime}

    def save(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BenchResult":
        return cls.from_json(read_json(path, KIND, SUPPORTED_VERSIONS), path)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: object = "bench result") -> "BenchResult":
        if doc.get("kind") != KIND:
            raise SchemaError(where, "kind", f"expected '{KIND}', found {doc.get('kind')!r}")
        if doc.get("schema_version") not in SUPPORTED_VERSIONS:
            raise SchemaError(where, "schema_version", f"unsupported version {doc.get('schema_version')!r}; "
                                                       f"supported: {list(SUPPORTED_VERSIONS)}")
        whole_doc = require(dict(doc), "whole", dict, where)
        standalone = []
        for i, n in enumerate(require(dict(doc), "standalone", list, where)):
            f = f"standalone[{i}]"
            if not isinstance(n, dict):
                raise SchemaError(where, f, "expected an object")
            tasks = require(n, "tasks", list, f"{where}: {f}")
            if not all(isinstance(t, str) for t in tasks):
                raise SchemaError(where, f + ".tasks", "expected a list of task names")
            standalone.append(NetworkLatency(require(n, "network", str, f"{where}: {f}"), tuple(tasks),
                                             latency_from_json(n, where, f + ".")))
        budget = doc.get("budget")
        if isinstance(budget, dict):  # schema 2 and bench --json's schema 1
            value, unit = require_number(budget, "value", where, prefix="budget.", positive=True, optional=True), \
                budget.get("unit")
        else:  # the pipeline's schema 1: a budget in ms
            value = require_number(dict(doc), "budget_ms", where, positive=True, optional=True)
            unit = "ms" if value is not None else None
        if unit is not None and not isinstance(unit, str):
            raise SchemaError(where, "budget.unit", f"expected a unit name, found {unit!r}")
        predicted = require_number(dict(doc), "predicted_ms", where, positive=True, optional=True)
        if predicted is None:  # bench --json's schema 1
            predicted = require_number(dict(doc), "predicted_latency_ms", where, positive=True, optional=True)
        runtime = doc.get("runtime") or {}
        timing = doc.get("timing") or {}
        for name, value_ in (("runtime", runtime), ("timing", timing)):
            if not isinstance(value_, dict):
                raise SchemaError(where, name, f"expected an object, found {type(value_).__name__}")
        bundle = doc.get("bundle")
        if bundle is not None and not isinstance(bundle, str):
            raise SchemaError(where, "bundle", f"expected a path, found {type(bundle).__name__}")
        labels = {k: whole_doc.get(k, doc.get(k)) for k in ("execution", "backend", "device")}
        for k, v in labels.items():
            if v is not None and not isinstance(v, str):
                raise SchemaError(where, f"whole.{k}", f"expected a string, found {type(v).__name__}")
        batch = require_number(whole_doc, "batch", where, prefix="whole.", minimum=1, integer=True, optional=True)
        return cls(latency_from_json(whole_doc, where, "whole."), tuple(standalone), bundle,
                   labels["execution"], labels["backend"], labels["device"], batch or 1, value, unit, predicted,
                   dict(timing), dict(runtime))


def measure_bundle(bundle_dir: str | os.PathLike, *, device: str = "cpu", backend: str = "auto",
                   execution: str = "auto", threads: int | None = None, allow_fallback: bool = False,
                   runs: int = 300) -> BenchResult:
    """Load a bundle as a robot would and measure it (the whole bundle per frame and each network alone)."""

    try:
        bundle = load_bundle(bundle_dir, backend=backend, device=device, execution=execution,
                             allow_fallback=allow_fallback, threads=threads)
    except (BundleError, BackendUnavailableError, ValueError) as exc:
        raise TaskgroupError(str(exc)) from exc
    with bundle:
        try:
            measured = bundle.measure(runs)
        except (BundleError, BackendUnavailableError) as exc:
            raise TaskgroupError(f"{bundle_dir}: {exc}") from exc
        info = bundle.describe()
    selection = bundle.manifest.selection
    budget = selection.budget or SelectionBudget()
    predicted = selection.predicted_latency.value if selection.predicted_latency else None
    return BenchResult(measured.whole, measured.standalone, str(Path(bundle_dir)), measured.execution,
                       measured.backend, measured.device, measured.batch, budget.value, budget.unit, predicted,
                       measured.timing_json(), info)
