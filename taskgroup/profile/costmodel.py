"""Reading a device profile and turning it into costs for the grouping search.

A profile measures the shared trunk at each width and each task's head at each width on
one device and backend. The cost model is additive, as the search needs it to be: a
network serving tasks S at width w costs `trunk_ms(w) + sum(head_ms(w, t) for t in S)`.
Heads of auxiliary tasks are dropped at deployment and cost nothing.

With ONNX Runtime a head measured alone runs in its own session and so pays one session's
fixed cost of `run()` (input binding, output allocation, scheduling) that it does not pay
inside a whole network. The profile measures that per-session cost on a graph that does
no work and subtracts it from each head; the trunk keeps it, because every deployed
network is one session. The profile records how well the sum predicts directly measured
whole networks.

The document's parts are typed records beside it: what was measured (measurements.py), the
co-run fit (corun.py) and what it was measured with (provenance.py); this module holds the
profile that assembles them, its arithmetic and its one reader and writer. It does not import
torch: `taskgroup select` reads profiles without it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from taskgroup_runtime.provenance import BackendSettings
from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.fileio import read_json, require, require_finite
from taskgroup.profile.corun import CorunFit, corun_standard_error
from taskgroup.profile.measurements import WIDTH_TOL, Validation, WidthCosts
from taskgroup.profile.provenance import DeviceRecord, LibraryVersions, OnnxExport, ProfileTiming, optional_field

KIND = "device_profile"
SCHEMA_VERSION = 1
STATISTICS = ("p50", "p90", "p99")  # latency statistics a cost can be read at


def corun_factor(per_extra_network: float, networks: int) -> float:
    """How much N networks run back to back cost relative to the sum of each alone: the co-run
    model the profiler fits (`corun`) and selection, baselines and reports apply."""
    return 1.0 + per_extra_network * max(0, networks - 1)


@dataclass(frozen=True)
class DeviceProfile:
    """A loaded device profile; costs in milliseconds at the chosen latency statistic."""

    path: str  # file it was read from ("" if built in memory)
    device: DeviceRecord  # what was measured on: kind, CPU model and cores or GPU and driver
    tasks: tuple[str, ...]  # tasks whose heads were profiled
    preset: str  # architecture preset (taskgroup.presets) the networks were built from
    input_shape: tuple[int, int, int, int]  # (batch, 3, H, W) the networks were timed at
    backend: str  # torch | onnxruntime | tensorrt
    execution_provider: str  # what really ran (e.g. CPUExecutionProvider)
    widths: Mapping[float, WidthCosts]  # width -> measured costs
    statistic: str = "p50"  # latency statistic costs are read at
    corun: float = 0.0  # extra fraction per additional network run in the same frame (0: not measured)
    corun_se: float = 0.0  # uncertainty of `corun` between profiles (corun_standard_error; 0: not measured)
    noise_sigmas: float = 0.0  # cost_fn adds this many noise standard deviations (0: costs at the statistic)
    noise_relative: bool = False  # noise of costs relative to the standard network (budgets in SNT), not absolute
    backend_settings: BackendSettings | None = None  # how the sessions ran (export and bench repeat it)
    model: str | None = None  # the model registry name the networks were built with
    model_config: Mapping[str, Any] | None = None  # its keyword arguments (compared with the training run's)
    validation: Validation | None = None  # the cost model against directly measured networks
    corun_fit: CorunFit | None = None  # the co-run fit (`corun` is its slope)
    created: str | None = None  # when it was measured (UTC, ISO 8601)
    requested_device: str | None = None  # the device asked for (`device` is what ran)
    fallback: bool | None = None  # a GPU provider fell back to the CPU
    libraries: LibraryVersions | None = None  # library versions
    onnx: OnnxExport | None = None  # the exporter, opset and numerics check (None: torch backend)
    timing: ProfileTiming | None = None  # timing configuration, statistic and clock
    recorded_standard_network_ms: float | None = None  # the file's standard_network_ms: the SNT reference when measured
    duration_s: float | None = None  # how long profiling took
    notes: Mapping[str, str] = field(default_factory=dict)  # input, mac_convention, cost_model: conventions in words
    extra: Mapping[str, Any] = field(default_factory=dict)  # other fields of the document, as written

    # ----- costs -------------------------------------------------------------------------
    def trunk_ms(self, width: float) -> float:
        """Fixed cost of running a network of this width at all (includes one backend call)."""
        return self._width(width).trunk.latency.get(self.statistic)

    def head_ms(self, width: float, task: str) -> float:
        """Extra cost of serving `task` from a network of this width."""
        wc = self._width(width)
        if task not in wc.heads:
            raise TaskgroupError(f"{self._where()}: task '{task}' was not profiled; profiled tasks: "
                                 f"{', '.join(self.tasks)}")
        raw = wc.heads[task].latency.get(self.statistic)
        overhead = wc.session_overhead.get(self.statistic) if wc.session_overhead else 0.0
        return max(0.0, raw - overhead)

    def network_ms(self, width: float, served_tasks: Iterable[str]) -> float:
        """Predicted latency of one network serving exactly `served_tasks` (= trunk + heads)."""
        served = list(served_tasks)
        return self.trunk_ms(width) + sum(self.head_ms(width, t) for t in served)

    def trunk_noise_ms(self, width: float) -> float:
        """Uncertainty of the trunk's profiled cost (0 if the profile stores no rounds); see `_relative_se`."""
        return self._relative_se(width) * self.trunk_ms(width)

    def head_noise_ms(self, width: float, task: str) -> float:
        return self._relative_se(width) * self.head_ms(width, task)

    def _relative_se(self, width: float) -> float:
        """How far a part's profiled cost may move on the next profiling run, as a fraction of it.

        Each part (trunk, head) at this width has its median in every timing round. Its deviation
        in a round is that median over the part's mean over rounds, minus 1; with `noise_relative` (a
        budget in SNT, i.e. relative to the standard network profiled in the same run) it is taken of
        the part's median divided by the standard network's in the same round, so load that slows the
        whole machine moves both and cancels, as it does between the budget and the costs. The
        deviations of every part at the width are pooled (a handful of rounds per part gives a
        spread that itself varies run to run; pooled, it is stable), and the standard error is that
        spread / sqrt(rounds). 0 when the profile stores no rounds."""
        wc = self._width(width)
        parts = [wc.trunk.latency.rounds_p50, *(h.latency.rounds_p50 for h in wc.heads.values())]
        parts = [list(r) for r in parts if r and len(r) > 1]
        if not parts:
            return 0.0
        standard = self._standard_rounds() if self.noise_relative else None
        squares, dof, rounds = 0.0, 0, []
        for r in parts:
            if standard is not None and len(standard) == len(r):
                r = [v / s for v, s in zip(r, standard)]
            mean = sum(r) / len(r)
            if mean <= 0:
                continue
            squares += sum((v / mean - 1) ** 2 for v in r)
            dof += len(r) - 1
            rounds.append(len(r))
        if not dof:
            return 0.0
        return math.sqrt(squares / dof) / math.sqrt(sum(rounds) / len(rounds))

    def _standard_rounds(self) -> list[float] | None:
        """The standard network's cost in each timing round (trunk + every head at full width)."""
        wc = self.widths.get(1.0)
        if wc is None:
            return None
        parts = [wc.trunk.latency.rounds_p50, *(wc.heads[t].latency.rounds_p50 for t in self.tasks if t in wc.heads)]
        if any(not r for r in parts) or len({len(r) for r in parts}) != 1:
            return None
        return [sum(r[k] for r in parts) for k in range(len(parts[0]))]

    def network_noise_ms(self, width: float, served_tasks: Iterable[str]) -> float:
        """Noise of one network's predicted cost. The parts are timed in the same rounds, so load moves
        them together: their spreads add (an upper bound), which keeps the margin additive for the search."""
        return self.trunk_noise_ms(width) + sum(self.head_noise_ms(width, t) for t in served_tasks)

    @property
    def has_noise(self) -> bool:
        """True if the profile stores per-round medians (profiles written before that did not)."""
        return any(wc.trunk.latency.rounds_p50 for wc in self.widths.values())

    def with_noise_margin(self, sigmas: float) -> "DeviceProfile":
        """The same profile whose `cost_fn` costs every part at its latency + `sigmas` x its noise."""
        return replace(self, noise_sigmas=float(sigmas))

    def with_relative_noise(self, relative: bool = True) -> "DeviceProfile":
        """The same profile with noise measured relative to its standard network (for budgets in SNT)."""
        return replace(self, noise_relative=bool(relative))

    def fit_corun(self, sigmas: float) -> float:
        """The co-run slope a grouping is fitted with under the noise rule: the fit + `sigmas` x its
        uncertainty, so a grouping of many networks does not slip under the budget by one profile's luck."""
        return self.corun + sigmas * self.corun_se

    def corun_factor(self, networks: int) -> float:
        """How much more N networks run back to back cost than the sum of each alone (measured)."""
        return corun_factor(self.corun, networks)

    def standard_network_ms(self) -> float:
        """The SNT reference: the full-width network serving every profiled task."""
        return self.network_ms(1.0, self.tasks)

    def network_macs(self, width: float, served_tasks: Iterable[str]) -> int:
        """Multiply-adds of a network serving `served_tasks` (exactly additive)."""
        wc = self._width(width)
        served = list(served_tasks)
        for t in served:
            self.head_ms(width, t)  # validates the task name
        return wc.trunk.macs + sum(wc.heads[t].macs for t in served)

    def network_params(self, width: float, served_tasks: Iterable[str]) -> int:
        wc = self._width(width)
        served = list(served_tasks)
        for t in served:
            self.head_ms(width, t)
        return wc.trunk.params + sum(wc.heads[t].params for t in served)

    def cost_fn(self, width: float, tasks: tuple[str, ...]) -> tuple[float, dict[str, float]]:
        """Adaptor for the search API (`taskgroup.search.candidates.CostFn`).

        Returns (fixed cost, {task: head cost}) in ms; the search adds a head's cost only
        for the tasks a network serves. With `noise_sigmas` z > 0 each part costs its latency
        + z x its noise (an upper confidence bound; see `with_noise_margin`).
        """
        z = self.noise_sigmas
        if not z:
            return self.trunk_ms(width), {t: self.head_ms(width, t) for t in tasks}
        return (self.trunk_ms(width) + z * self.trunk_noise_ms(width),
                {t: self.head_ms(width, t) + z * self.head_noise_ms(width, t) for t in tasks})

    def at_statistic(self, statistic: str) -> "DeviceProfile":
        """The same profile with costs read at another latency statistic (p50, p90, p99)."""
        if statistic not in STATISTICS:
            raise TaskgroupError(f"unknown latency statistic '{statistic}'; choose one of {', '.join(STATISTICS)}")
        return replace(self, statistic=statistic)

    # ----- the file ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The profile document: the typed costs, and the descriptive records (device, libraries, timing,
        validation, co-run sequences) as they were read or measured. The statistic and noise margin a reader chose
        are ways of reading it, not part of it."""
        doc: dict[str, Any] = {"kind": KIND, "schema_version": SCHEMA_VERSION}
        for key in ("created", "preset", "model", "model_config"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        doc.update(input_shape=list(self.input_shape), **{k: v for k, v in self.notes.items() if k == "input"},
                   tasks=list(self.tasks), device=self.device.to_json())
        for key in ("requested_device", "backend", "execution_provider", "fallback", "backend_settings", "libraries",
                    "onnx", "timing"):
            value = getattr(self, key)
            if value is not None or (key == "onnx" and self.backend == "torch"):  # torch: no ONNX, said as null
                doc[key] = value.to_json() if hasattr(value, "to_json") else value
        doc.update({k: v for k, v in self.notes.items() if k != "input"})
        doc["widths"] = [wc.to_json() for wc in self.widths.values()]
        for key, value in (("validation", self.validation), ("corun", self.corun_fit),
                           ("standard_network_ms", self.recorded_standard_network_ms), ("duration_s", self.duration_s)):
            if value is not None:
                doc[key] = value.to_json() if hasattr(value, "to_json") else value
        return {**doc, **self.extra}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], path: str = "") -> "DeviceProfile":
        return profile_from_doc(doc, path)

    # ----- checks ------------------------------------------------------------------------
    def check(self, tasks: Sequence[str] | None = None, widths: Sequence[float] | None = None,
              input_size: int | tuple[int, int] | None = None, preset: str | None = None) -> None:
        """Raise TaskgroupError unless this profile can cost the networks selection needs.

        `tasks`: every task that may be served must have a profiled head; `widths`: every
        candidate width must be profiled; `input_size`: H (or (H, W)) must match the timed
        input; `preset`: the architecture preset must match.
        """
        where = self._where()
        if preset is not None and preset != self.preset:
            raise TaskgroupError(f"{where}: profile was measured on preset '{self.preset}', but '{preset}' is "
                                 f"needed; re-run `taskgroup profile --preset {preset}`")
        if input_size is not None:
            hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
            if tuple(self.input_shape[2:]) != tuple(hw):
                raise TaskgroupError(f"{where}: profile was measured at input {self.input_shape[2]}x"
                                     f"{self.input_shape[3]}, but {hw[0]}x{hw[1]} is needed")
        if tasks is not None:
            missing = [t for t in tasks if t not in self.tasks]
            if missing:
                raise TaskgroupError(f"{where}: no profiled head for task(s) {missing}; profiled tasks: "
                                     f"{', '.join(self.tasks)}; re-run `taskgroup profile --tasks ...`")
        if widths is not None:
            missing_w = sorted({float(w) for w in widths if self._find_width(float(w)) is None})
            if missing_w:
                raise TaskgroupError(f"{where}: width(s) {missing_w} were not profiled; profiled widths: "
                                     f"{self._width_list()}; re-run `taskgroup profile --widths ...`")

    # ----- helpers -----------------------------------------------------------------------
    def _find_width(self, width: float) -> WidthCosts | None:
        for w, wc in self.widths.items():
            if abs(w - width) <= WIDTH_TOL:
                return wc
        return None

    def _width(self, width: float) -> WidthCosts:
        wc = self._find_width(float(width))
        if wc is None:
            raise TaskgroupError(f"{self._where()}: width {width:g} was not profiled; profiled widths: "
                                 f"{self._width_list()}")
        return wc

    def _width_list(self) -> str:
        return ", ".join(f"{w:g}" for w in sorted(self.widths))

    def _where(self) -> str:
        return self.path or "device profile"


def load_profile(path: str | os.PathLike, statistic: str = "p50") -> DeviceProfile:
    """Read and validate a device profile written by `taskgroup profile`."""
    doc = read_json(path, KIND, (SCHEMA_VERSION,))
    return profile_from_doc(doc, str(path)).at_statistic(statistic)


def profile_from_doc(doc: Mapping[str, Any], path: str = "") -> DeviceProfile:
    """Validate a profile document (already parsed) and build the DeviceProfile: the profile's one reader
    (`DeviceProfile.from_json`; `DeviceProfile.to_json` is its one writer)."""
    where = path or "device profile"
    if doc.get("kind") != KIND:
        raise SchemaError(where, "kind", f"expected '{KIND}', found {doc.get('kind')!r}")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise SchemaError(where, "schema_version", f"unsupported version {doc.get('schema_version')!r}; "
                                                   f"supported: [{SCHEMA_VERSION}]")
    tasks = require(doc, "tasks", list, where)
    if not tasks or not all(isinstance(t, str) for t in tasks) or len(set(tasks)) != len(tasks):
        raise SchemaError(where, "tasks", "expected a non-empty list of distinct task names")
    preset = require(doc, "preset", str, where)
    shape = require(doc, "input_shape", list, where)
    if len(shape) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
        raise SchemaError(where, "input_shape", f"expected 4 positive integers (N, C, H, W), found {shape!r}")
    backend = require(doc, "backend", str, where)
    provider = require(doc, "execution_provider", str, where)
    require(doc, "device", dict, where)
    entries = require(doc, "widths", list, where)
    if not entries:
        raise SchemaError(where, "widths", "expected at least one profiled width")
    widths: dict[float, WidthCosts] = {}
    for i, entry in enumerate(entries):
        wc = WidthCosts.from_json(entry, tasks, f"widths[{i}]", where, seen=widths)
        widths[wc.width] = wc
    if not any(abs(w - 1.0) <= WIDTH_TOL for w in widths):
        raise SchemaError(where, "widths", "the full width 1.0 must be profiled (it defines the standard network)")
    corun_fit = None if doc.get("corun") is None else CorunFit.from_json(doc["corun"], where)  # absent in old profiles
    settings = doc.get("backend_settings")
    described = {k: optional_field(doc, k, t, where) for k, t in (
        ("model", str), ("model_config", dict), ("created", str), ("requested_device", str), ("fallback", bool))}
    records = {r.KEY: None if doc.get(r.KEY) is None else r.from_json(doc[r.KEY], where)
               for r in (LibraryVersions, OnnxExport, ProfileTiming)}
    numbers = {k: require_finite(doc[k], k, where, minimum=0.0) if doc.get(k) is not None else None
               for k in ("standard_network_ms", "duration_s")}
    numbers["recorded_standard_network_ms"] = numbers.pop("standard_network_ms")
    return DeviceProfile(
        path, DeviceRecord.from_json(doc["device"], where), tuple(tasks), preset, tuple(shape), backend, provider,
        widths, "p50", float(corun_fit.per_extra_network) if corun_fit else 0.0,
        corun_se=corun_standard_error(doc["corun"], corun_fit.per_extra_network) if corun_fit else 0.0,
        backend_settings=None if settings is None else BackendSettings.parse(
            settings, "backend_settings", lambda f, problem: SchemaError(where, f, problem)),
        validation=Validation.from_json(doc.get("validation"), where), corun_fit=corun_fit, **described, **records,
        **numbers, notes={k: doc[k] for k in _NOTES if isinstance(doc.get(k), str)},
        extra={k: v for k, v in doc.items() if k not in _PROFILE_KEYS})


_NOTES = ("input", "mac_convention", "cost_model")
_PROFILE_KEYS = ("kind", "schema_version", "tasks", "preset", "input_shape", "backend", "execution_provider", "device",
                 "widths", "corun", "backend_settings", "validation", "model", "model_config", "created",
                 "requested_device", "fallback", "libraries", "onnx", "timing", "standard_network_ms", "duration_s",
                 *_NOTES)


def profile_name(path: str | os.PathLike) -> str:
    """Short name of a profile file, recorded in groupings and bundles."""
    return Path(path).stem
