"""What a profile's timings were measured with, as typed records: the device (CPU model and cores, or
GPU, memory and driver), the library versions, the ONNX export and its numerics check, and the timing
settings. A timing means little without them, and a reader compares them across profiles.

Each record keeps the document's fields exactly: a field written as null (a driver nvidia-smi could
not report, an unknown core count) stays null (`nulls`), one a newer writer added stays in `extra`, so
a profile is written back byte for byte. A field of the wrong type is refused with the file and the
field named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, TypeVar

from taskgroup.errors import SchemaError

R = TypeVar("R", bound="_Record")
_FIX = "; correct the field, or measure the device again with `taskgroup profile`"


def optional_field(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str,
                   name: str | None = None, fix: str = "") -> Any:
    """An optional descriptive field: absent or null (None), or of its type (a bool is no number).
    `name`: the field as the error names it (default `key`); `fix`: what to do, appended to the error."""
    value = doc.get(key)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if value is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
        names = " or ".join(k.__name__ for k in kinds)
        raise SchemaError(where, name or key, f"expected {names} or null, found {value!r}{fix}")
    return value


class _Record:
    """Shared reading and writing of a flat record of optional fields (see the module doc)."""

    KEY: ClassVar[str]  # the record's field in the profile document
    TYPES: ClassVar[Mapping[str, type | tuple[type, ...]]]  # field -> JSON type(s), in the order written

    def to_json(self) -> dict[str, Any]:
        doc = {k: getattr(self, k) for k in self.TYPES if getattr(self, k) is not None or k in self.nulls}
        return {**doc, **self.extra}

    @classmethod
    def from_json(cls: type[R], doc: Any, where: str) -> R:
        if not isinstance(doc, dict):
            raise SchemaError(where, cls.KEY, f"expected dict or null, found {doc!r}")
        values = {k: optional_field(doc, k, t, where, f"{cls.KEY}.{k}", _FIX) for k, t in cls.TYPES.items()}
        return cls(**{k: v for k, v in values.items() if v is not None},
                   nulls=tuple(k for k in cls.TYPES if k in doc and doc[k] is None),
                   extra={k: v for k, v in doc.items() if k not in cls.TYPES})

    @classmethod
    def written(cls: type[R], **values: Any) -> R:
        """A record that writes every field given, a None as null (as a writer that always writes them)."""
        return cls(**values, nulls=tuple(k for k, v in values.items() if v is None))


@dataclass(frozen=True)
class DeviceRecord(_Record):
    """What the timings ran on (descriptive: selection does not compute with it)."""

    kind: str | None = None  # cpu or cuda (what really ran: cpu after a GPU provider fell back)
    name: str | None = None  # the device name, e.g. cpu or cuda:0
    cpu_model: str | None = None  # /proc/cpuinfo's model name
    cpu_cores: int | None = None  # os.cpu_count()
    platform: str | None = None  # platform.platform()
    gpu_name: str | None = None
    gpu_memory_mb: int | None = None
    compute_capability: str | None = None  # e.g. 9.0
    cuda_runtime: str | None = None  # torch.version.cuda
    driver: str | None = None  # NVIDIA driver (null: nvidia-smi could not tell)
    note: str | None = None  # e.g. "requested cuda:0; ran on the CPU"
    nulls: tuple[str, ...] = ()  # fields written as null
    extra: Mapping[str, Any] = field(default_factory=dict)  # other fields, as written

    KEY: ClassVar[str] = "device"
    TYPES: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "kind": str, "name": str, "cpu_model": str, "cpu_cores": int, "platform": str, "gpu_name": str,
        "gpu_memory_mb": int, "compute_capability": str, "cuda_runtime": str, "driver": str, "note": str}

    @property
    def label(self) -> str:
        """A short name for printed summaries: the CPU model or the GPU's name."""
        return self.cpu_model or self.gpu_name or self.name or self.kind or "device"


@dataclass(frozen=True)
class OnnxExport(_Record):
    """How the timed graphs were exported, and how far their outputs were from PyTorch's."""

    exporter: str | None = None  # the torch.onnx.export call, in words
    opset: int | None = None
    max_abs_diff_vs_torch: int | float | None = None  # largest difference over every timed graph
    nulls: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    KEY: ClassVar[str] = "onnx"
    TYPES: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "exporter": str, "opset": int, "max_abs_diff_vs_torch": (int, float)}


@dataclass(frozen=True)
class ProfileTiming(_Record):
    """How the timings were taken: runtime.timing.TimingConfig's settings, and the statistic and clock."""

    warmup_runs: int | None = None
    min_runs: int | None = None
    min_seconds: int | float | None = None
    rounds: int | None = None  # interleaved rounds (their medians give each latency's noise)
    max_runs: int | None = None
    statistic_for_costs: str | None = None  # p50
    interleaved: bool | None = None
    clock: str | None = None
    nulls: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    KEY: ClassVar[str] = "timing"
    TYPES: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "warmup_runs": int, "min_runs": int, "min_seconds": (int, float), "rounds": int, "max_runs": int,
        "statistic_for_costs": str, "interleaved": bool, "clock": str}


@dataclass(frozen=True, eq=False)  # equality of a Mapping: equal to a dict of the same versions
class LibraryVersions(Mapping[str, "str | None"]):
    """Versions of everything that affects a timing, by distribution (and `python`), in the order written;
    None: not installed. Read as the mapping it is: `libraries["onnxruntime"]`."""

    versions: Mapping[str, str | None]

    KEY: ClassVar[str] = "libraries"

    def __getitem__(self, name: str) -> str | None:
        return self.versions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.versions)

    def __len__(self) -> int:
        return len(self.versions)

    def to_json(self) -> dict[str, str | None]:
        return dict(self.versions)

    @classmethod
    def from_json(cls, doc: Any, where: str) -> "LibraryVersions":
        if not isinstance(doc, dict):
            raise SchemaError(where, "libraries", f"expected dict or null, found {doc!r}")
        return cls({k: optional_field(doc, k, str, where, f"libraries.{k}", _FIX) for k in doc})

