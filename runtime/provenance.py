"""Where a bundle came from: the manifest's descriptive blocks, typed.

What the bundle was selected for (grouping, budget, profile, predicted latency, how the profile
ran its sessions), whether TensorRT engines were built, how its outputs were verified, and the
libraries that made it. The runtime does not act on most of this, but bench, the report and
people read it, so each block is a dataclass with `to_json` and `from_json`; fields a block does
not know stay in its `extra`, so a manifest round-trips. Pure standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskgroup_runtime.errors import BundleError
from taskgroup_runtime.fields import MAX_THREADS, REEXPORT, is_number, object_field, optional, positive, set_fields, unknown


@dataclass(frozen=True)
class BackendSettings:
    """How a device profile ran its sessions, carried from the profile through the grouping's budget into
    the manifest: export ships at its precision and fusion and bench runs at its thread count, so what
    ships, and how it is measured, is what was costed. One record for all three files."""

    precision: str | None = None  # fp32 | fp16 of the timed graphs (absent in profiles from before fp16 profiling)
    fused: bool | None = None  # co-run sequences timed as one fused graph (absent in profiles from before fusing)
    intra_op_num_threads: int | None = None  # ONNX Runtime intra-op threads per session (0: one per core)
    extra: dict[str, Any] = field(default_factory=dict)  # the backend's other settings (spinning, engine facts), as recorded
    order: tuple[str, ...] = field(default=(), compare=False)  # the keys in the order read (written back so)

    def to_json(self) -> dict[str, Any]:
        typed = {k: getattr(self, k) for k in ("intra_op_num_threads", "precision", "fused")
                 if getattr(self, k) is not None}
        # A record read from a file writes its keys back in the file's order (writers have put the thread
        # count first or after the others); a new one in the order ONNX Runtime's runner and the profiler
        # write them: threads, the runner's other settings, then precision and fusion.
        doc = {k: typed[k] if k in typed else self.extra[k] for k in self.order if k in typed or k in self.extra}
        if "intra_op_num_threads" in typed:
            doc.setdefault("intra_op_num_threads", typed["intra_op_num_threads"])
        for k, v in self.extra.items():
            doc.setdefault(k, v)
        for k in ("precision", "fused"):
            if k in typed:
                doc.setdefault(k, typed[k])
        return doc

    @classmethod
    def parse(cls, doc: Any, field_name: str, fail: Any) -> "BackendSettings":
        """Validate a settings object; `fail(field, problem)` builds the caller's error (the runtime's
        BundleError or the toolkit's SchemaError), so each file names its own field."""
        if not isinstance(doc, dict):
            raise fail(field_name, f"expected an object, found {type(doc).__name__}")
        precision, fused, threads = doc.get("precision"), doc.get("fused"), doc.get("intra_op_num_threads")
        if precision is not None and precision not in ("fp32", "fp16"):
            raise fail(f"{field_name}.precision", f"expected 'fp32' or 'fp16', found {precision!r}")
        if fused is not None and not isinstance(fused, bool):
            raise fail(f"{field_name}.fused", f"expected true or false, found {fused!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or not 0 <= threads <= MAX_THREADS):
            raise fail(f"{field_name}.intra_op_num_threads",
                       f"expected an integer in 0..{MAX_THREADS} (0: one per core), found {threads!r}")
        return cls(precision, fused, threads,
                   {k: v for k, v in doc.items() if k not in ("precision", "fused", "intra_op_num_threads")},
                   order=tuple(doc))


@dataclass(frozen=True)
class SelectionBudget:
    value: float | None = None  # the grouping's budget (positive), None: unlimited
    unit: str | None = None  # ms or snt
    extra: dict[str, Any] = field(default_factory=dict)  # other fields, as written

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, **set_fields(self, ("unit",))}


@dataclass(frozen=True)
class PredictedLatency:
    value: float  # the profile's prediction for one frame (positive)
    unit: str | None = "ms"
    corun_factor: float | None = None  # the co-run factor it includes
    note: str | None = None  # how it was computed (for people)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, **set_fields(self, ("unit", "corun_factor", "note"))}


@dataclass(frozen=True)
class BundleSelection:
    """What the bundle was selected for: the grouping file, its budget, the profile and device that costed
    it and their prediction, and how the profile ran its sessions (bench repeats it)."""

    grouping_file: str | None = None
    grouping_sha256: str | None = None
    budget: SelectionBudget | None = None
    profile: str | None = None  # the profile file the costs came from, as the grouping names it
    device: dict[str, Any] | None = None  # the profile's device record (descriptive)
    predicted_latency: PredictedLatency | None = None  # None: selected in SNT, or costs unknown
    objective: float | None = None  # the grouping's predicted objective
    profiled_backend_settings: BackendSettings | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other fields, as written

    _KEYS = ("grouping_file", "grouping_sha256", "budget", "profile", "device", "predicted_latency", "objective",
             "profiled_backend_settings")

    def to_json(self) -> dict[str, Any]:
        if not set_fields(self, self._KEYS):  # a bundle from before the record, or a hand-made one
            return {}
        return {**{k: (v.to_json() if hasattr(v, "to_json") else v) for k in self._KEYS for v in [getattr(self, k)]},
                **self.extra}  # as export writes it: every field, null included

    @classmethod
    def from_json(cls, doc: Any, where: object) -> "BundleSelection":
        selection = object_field(doc, "selection", where)
        f = "selection"
        predicted = selection.get("predicted_latency")
        if predicted is not None and not (isinstance(predicted, dict) and positive(predicted.get("value"))):
            raise BundleError(f"{where}: field 'selection.predicted_latency.value': expected a positive finite number, "
                              f"found {predicted.get('value') if isinstance(predicted, dict) else predicted!r}")
        settings = selection.get("profiled_backend_settings")
        budget = selection.get("budget")
        if budget is not None:
            value = budget.get("value") if isinstance(budget, dict) else budget
            if not isinstance(budget, dict) or (value is not None and not positive(value)):
                raise BundleError(f"{where}: field 'selection.budget.value': expected a positive finite number or null, "
                                  f"found {value!r}")
        objective = selection.get("objective")
        if objective is not None and not is_number(objective):
            raise BundleError(f"{where}: field 'selection.objective': expected a finite number or null, "
                              f"found {objective!r}")
        return cls(
            optional(selection, "grouping_file", str, f, where), optional(selection, "grouping_sha256", str, f, where),
            None if budget is None else SelectionBudget(budget.get("value"), optional(budget, "unit", str, f + ".budget", where),
                                                        unknown(budget, ("value", "unit"))),
            optional(selection, "profile", str, f, where), optional(selection, "device", dict, f, where),
            None if predicted is None else PredictedLatency(
                float(predicted["value"]), optional(predicted, "unit", str, f + ".predicted_latency", where),
                optional(predicted, "corun_factor", (int, float), f + ".predicted_latency", where),
                optional(predicted, "note", str, f + ".predicted_latency", where),
                unknown(predicted, ("value", "unit", "corun_factor", "note"))),
            objective,
            None if settings is None else BackendSettings.parse(
                settings, "selection.profiled_backend_settings", lambda name, problem: BundleError(
                    f"{where}: field '{name}': {problem}")),
            unknown(selection, cls._KEYS))


@dataclass(frozen=True)
class TensorRTRecord:
    built: bool | None = None  # whether engines were built
    reason: str | None = None  # why not
    build: dict[str, Any] | None = None  # the build's facts (TensorRT version, GPU, flags; descriptive)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        if self.built is None:  # a bundle from before the record, or a hand-made one
            return set_fields(self, ("reason", "build"))
        return {"built": self.built, "reason": self.reason, "build": self.build, **self.extra}  # as export writes it

    @classmethod
    def from_json(cls, doc: Any, where: object) -> "TensorRTRecord":
        block = object_field(doc, "tensorrt", where)
        return cls(optional(block, "built", bool, "tensorrt", where), optional(block, "reason", str, "tensorrt", where),
                   optional(block, "build", dict, "tensorrt", where), unknown(block, ("built", "reason", "build")))


@dataclass(frozen=True)
class VerificationRecord:
    frames: int | None = None  # how many frames every output was checked on
    source: str | None = None  # where the frames came from
    against: str | None = None  # the reference (PyTorch eager)
    runtime: str | None = None  # what ran the exported files
    fused: str | None = None  # how a fused graph was checked
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = ("frames", "source", "against", "runtime", "fused")

    def to_json(self) -> dict[str, Any]:
        return set_fields(self, self._KEYS)

    @classmethod
    def from_json(cls, doc: Any, where: object) -> "VerificationRecord":
        block = object_field(doc, "verification", where)
        frames = optional(block, "frames", int, "verification", where)
        return cls(frames, *(optional(block, k, str, "verification", where) for k in cls._KEYS[1:]),
                   extra=unknown(block, cls._KEYS))


@dataclass(frozen=True)
class CreatedWith:
    """The libraries and exporter that made the bundle (what to install to reproduce it)."""

    torch: str | None = None  # PyTorch version
    onnx: str | None = None  # onnx version
    onnxruntime: str | None = None  # ONNX Runtime version the files were checked with
    python: str | None = None  # Python version
    exporter: str | None = None  # e.g. "torch.onnx.export (dynamo)"
    opset_requested: int | None = None  # the ONNX opset asked for (the dynamo exporter may raise it)
    extra: dict[str, Any] = field(default_factory=dict)  # other fields, as written

    _KEYS = ("torch", "onnx", "onnxruntime", "python", "exporter", "opset_requested")

    def to_json(self) -> dict[str, Any]:
        return set_fields(self, self._KEYS)  # the exporter's order; it never writes nulls here

    @classmethod
    def from_json(cls, doc: Any, where: object) -> "CreatedWith":
        block = object_field(doc, "created_with", where)
        names = {k: optional(block, k, str, "created_with", where, REEXPORT) for k in cls._KEYS[:-1]}
        return cls(**names, opset_requested=optional(block, "opset_requested", int, "created_with", where, REEXPORT),
                   extra=unknown(block, cls._KEYS))
