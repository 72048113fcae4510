"""The bundle manifest (manifest.json): its typed contract, reader, writer and the safe-path rules.

The exporter builds a `Manifest` and writes `Manifest.to_json()`; the runtime reads it with
`read_manifest` (`Manifest.from_json`), which validates every value the runtime uses. One
dataclass per part (input, task outputs, networks, files); what is only descriptive
(versions, verification errors, the selection it was made for) is kept as written.
Everything a deployment needs to feed the networks and interpret their outputs is in here,
so robot code never needs taskgroup. Pure standard library, so the runtime imports without
torch or onnx.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from taskgroup_runtime.errors import BundleError
from taskgroup_runtime.integrity import file_kind, safe_member, sha256_file  # noqa: F401 (re-exported)

MANIFEST_NAME = "manifest.json"
MANIFEST_KIND = "bundle_manifest"
SCHEMA_VERSION = 1  # one model per network, each taking the float32 NCHW image
FUSED_SCHEMA_VERSION = 2  # adds fused bundles: one graph taking the uint8 NHWC frame (older runtimes refuse them)
SUPPORTED_VERSIONS = (SCHEMA_VERSION, FUSED_SCHEMA_VERSION)
FRAME_FORMS = (
    "uint8 HWC RGB (or BGR with color_order='BGR'), shape (H, W, 3) or (N, H, W, 3), values 0..255 (divided by "
    "255); any H and W where the manifest records input.resize, else the bundle's",
    "float32 NCHW RGB, shape (3, H, W) or (N, 3, H, W), values in [0, 1] (used as is; a fused bundle takes "
    "8-bit frames, so there only multiples of 1/255, as any uint8 image divided by 255 is)",
)

COLOR_ORDERS = ("RGB", "BGR")  # what Bundle.run(frame, color_order=...) takes; the networks see RGB
RESIZE_METHODS = ("area",)  # how a frame of another size becomes the input (runtime.resize)
RESIZE_RULE = ("uint8 frames of any size: the whole frame resized to the input's H x W (aspect ratio not kept) by "
               "area averaging, as the training loader resized its images: cv2.resize(frame / 255, (W, H), "
               "interpolation=cv2.INTER_AREA), computed in numpy by the runtime (runtime.resize); a uint8 model input "
               "(fused bundle) is that value x 255 rounded to the nearest integer, a float32 one that value as is")


@dataclass(frozen=True)
class BackendSettings:
    """How a device profile ran its sessions, carried from the profile through the grouping's budget into
    the manifest: export ships at its precision and fusion and bench runs at its thread count, so what
    ships, and how it is measured, is what was costed. One record for all three files."""

    precision: str | None = None  # fp32 | fp16 of the timed graphs (absent in profiles from before fp16 profiling)
    fused: bool | None = None  # co-run sequences timed as one fused graph (absent in profiles from before fusing)
    intra_op_num_threads: int | None = None  # ONNX Runtime intra-op threads per session (0: one per core)
    extra: dict[str, Any] = field(default_factory=dict)  # the backend's other settings (spinning, engine facts), as recorded

    def to_json(self) -> dict[str, Any]:
        doc = dict(self.extra)
        for key in ("intra_op_num_threads", "precision", "fused"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
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
                   {k: v for k, v in doc.items() if k not in ("precision", "fused", "intra_op_num_threads")})


def _set_fields(record: Any, keys: Iterable[str]) -> dict[str, Any]:
    """A record's fields that are set, as JSON, then its `extra` (absent fields stay absent)."""
    doc: dict[str, Any] = {}
    for key in keys:
        value = getattr(record, key)
        if value is not None:
            doc[key] = value.to_json() if hasattr(value, "to_json") else value
    return {**doc, **record.extra}


def _typed(doc: dict, key: str, types: type | tuple[type, ...], field_name: str, where: object) -> Any:
    """doc[key] if absent, null or of `types` (never a bool where a number is asked); else a BundleError."""
    value = doc.get(key)
    wants_bool = types is bool
    if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and not wants_bool)):
        raise BundleError(f"{where}: field '{field_name}.{key}': expected "
                          f"{getattr(types, '__name__', types)} or null, found {value!r}")
    return value


def _object(doc: Any, field_name: str, where: object) -> dict:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: field '{field_name}': expected an object, found {type(doc).__name__}")
    return doc


@dataclass(frozen=True)
class SelectionBudget:
    value: float | None = None  # the grouping's budget (positive), None: unlimited
    unit: str | None = None  # ms or snt
    extra: dict[str, Any] = field(default_factory=dict)  # other fields, as written

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, **_set_fields(self, ("unit",))}


@dataclass(frozen=True)
class PredictedLatency:
    value: float  # the profile's prediction for one frame (positive)
    unit: str | None = "ms"
    corun_factor: float | None = None  # the co-run factor it includes
    note: str | None = None  # how it was computed (for people)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, **_set_fields(self, ("unit", "corun_factor", "note"))}


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
        if not _set_fields(self, self._KEYS):  # a bundle from before the record, or a hand-made one
            return {}
        return {**{k: (v.to_json() if hasattr(v, "to_json") else v) for k in self._KEYS for v in [getattr(self, k)]},
                **self.extra}  # as export writes it: every field, null included


@dataclass(frozen=True)
class TensorRTRecord:
    built: bool | None = None  # whether engines were built
    reason: str | None = None  # why not
    build: dict[str, Any] | None = None  # the build's facts (TensorRT version, GPU, flags; descriptive)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        if self.built is None:  # a bundle from before the record, or a hand-made one
            return _set_fields(self, ("reason", "build"))
        return {"built": self.built, "reason": self.reason, "build": self.build, **self.extra}  # as export writes it


@dataclass(frozen=True)
class VerificationRecord:
    frames: int | None = None  # how many frames every output was checked on
    source: str | None = None  # where the frames came from
    against: str | None = None  # the reference (PyTorch eager)
    runtime: str | None = None  # what ran the exported files
    fused: str | None = None  # how a fused graph was checked
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _set_fields(self, ("frames", "source", "against", "runtime", "fused"))


@dataclass(frozen=True)
class InputSpec:
    name: str  # input tensor name in every model file
    height: int  # frame height in pixels (fixed at export)
    width: int  # frame width in pixels (fixed at export)
    dtype: str = "float32"  # dtype the models take: float32 (NCHW image), or uint8 (NHWC frame, fused bundles)
    layout: str = "NCHW"  # tensor layout the models take; the batch axis is dynamic
    color_order: str = "RGB"  # channel order
    value_range: tuple[float, float] = (0.0, 1.0)  # range of the model input values
    mean: tuple[float, ...] = ()  # per-channel mean subtracted inside the network
    std: tuple[float, ...] = ()  # per-channel std divided inside the network
    normalization: str = ""  # how and where the normalisation is applied (for people)
    accepted_frames: tuple[str, ...] = FRAME_FORMS  # the frame forms Bundle.run takes (for people)
    resize: str | None = None  # how uint8 frames of another size are resized (RESIZE_METHODS); None: refused

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The models' input shape, None for the batch axis."""
        if self.layout == "NHWC":
            return (None, self.height, self.width, 3)
        return (None, 3, self.height, self.width)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": ["N" if d is None else d for d in self.shape], "dtype": self.dtype,
                "layout": self.layout, "color_order": self.color_order,
                "value_range": list(self.value_range),
                "normalization": {"applied": self.normalization, "mean": list(self.mean), "std": list(self.std)},
                "accepted_frames": list(self.accepted_frames),
                **({"resize": {"method": self.resize, "rule": RESIZE_RULE}} if self.resize else {})}


@dataclass(frozen=True)
class TaskOutput:
    task: str  # task name
    network: int  # index into Manifest.networks of the network that serves it
    output: str  # output tensor name in that network's model file(s)
    channels: int  # C of the (N, C, H, W) output
    dtype: str  # output dtype
    meaning: str  # what the values mean (from the task registry)
    units: str | None = None  # the dataset's units the outputs are in (None: a bundle from before units were recorded)
    transform: dict[str, Any] | None = None  # how the graph maps the trained head to those units (affine mean/std)
    shape: tuple[Any, ...] = ()  # ['N', C, H, W] as exported (H, W: integers, or names of dynamic axes)
    loss: str | None = None  # the loss the head was trained with
    value_range: list[float] | None = None  # the range of the data's values, where the encoding bounds it
    tolerance: float | None = None  # base tolerance the export held it to (x max(1, max |PyTorch output|))

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "output": self.output, "shape": list(self.shape) or ["N", self.channels],
                "dtype": self.dtype, "meaning": self.meaning, "loss": self.loss, "value_range": self.value_range,
                "units": self.units, "transform": self.transform, "tolerance": self.tolerance}


@dataclass(frozen=True)
class NetworkFiles:
    name: str  # short name, e.g. "net0", or "fused"
    tasks: tuple[str, ...]  # tasks it serves (outputs present in the model)
    onnx: str  # relative path of the ONNX model
    onnx_data: str | None  # relative path of its external weights file, if not embedded
    engine: str | None  # relative path of a serialized TensorRT engine, if built
    predicted_latency: float | None  # the grouping's cost for this network (unit: Manifest.selection.budget.unit)
    tasks_trained: tuple[str, ...] | None = None  # tasks the checkpoint was trained on (separate networks)
    width: float | None = None  # width multiplier (separate networks)
    stage: str | None = None  # training stage of the checkpoint
    checkpoint: str | None = None  # the checkpoint's file name
    verification: dict[str, Any] = field(default_factory=dict)  # task -> measured error against PyTorch, tolerance
    fused_from: list[dict[str, Any]] | None = None  # a fused graph: the networks inside it
    epoch: float | None = None  # the training epoch its weights are from (separate networks)
    stopped_for: str | None = None  # a per-task stop: the task whose best validation epoch the weights are from

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "tasks": list(self.tasks)}
        for key in ("tasks_trained", "width", "stage", "checkpoint", "epoch", "stopped_for"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = list(value) if key == "tasks_trained" else value
        doc.update(predicted_latency=self.predicted_latency,
                   files={"onnx": self.onnx, "onnx_data": self.onnx_data, "engine": self.engine},
                   verification=self.verification)
        if self.fused_from is not None:
            doc["fused_from"] = self.fused_from
        return doc


@dataclass(frozen=True)
class FileEntry:
    sha256: str  # hex digest of the file's bytes
    bytes: int | None = None  # its size


@dataclass(frozen=True)
class Manifest:
    path: Path | None  # where it was read from (None: built in memory)
    input: InputSpec
    tasks: dict[str, TaskOutput]
    networks: tuple[NetworkFiles, ...]
    files: dict[str, FileEntry]  # relative path -> digest and size, every model file of the bundle
    precision: str  # "fp32" or "fp16" (of the model files; inputs/outputs stay float32)
    selection: BundleSelection = field(default_factory=BundleSelection)  # budget, profile, device, predicted latency
    graph: str = "separate"  # "fused": one graph taking the frame; "separate": one model per network
    created: str | None = None  # when it was exported (UTC, ISO 8601)
    created_with: dict[str, Any] = field(default_factory=dict)  # library versions and exporter
    tensorrt: TensorRTRecord = field(default_factory=TensorRTRecord)  # whether engines were built, why not
    verification: VerificationRecord = field(default_factory=VerificationRecord)  # frames checked on, against what
    extra: dict[str, Any] = field(default_factory=dict)  # other fields of the document, as written
    content_sha256: str | None = field(default=None, compare=False)  # the digest it was sealed with

    @property
    def path_label(self) -> str:
        return str(self.path) if self.path is not None else MANIFEST_NAME

    @property
    def schema_version(self) -> int:
        """The oldest schema that holds this manifest: a uint8 frame input needs schema 2."""
        return FUSED_SCHEMA_VERSION if self.input.dtype == "uint8" else SCHEMA_VERSION

    @property
    def profiled_threads(self) -> int | None:
        """Intra-op threads per session the grouping's latency profile was measured with, if recorded.

        Running the bundle with the same setting makes its latency comparable with the prediction.
        """
        settings = self.selection.profiled_backend_settings
        threads = settings.intra_op_num_threads if settings is not None else None
        return threads if threads is not None and threads >= 1 else None

    def to_json(self) -> dict[str, Any]:
        """The sealed document: every part, then `content_sha256` over the rest."""
        doc: dict[str, Any] = {"kind": MANIFEST_KIND, "schema_version": self.schema_version}
        if self.created is not None:
            doc["created"] = self.created
        doc.update(created_with=self.created_with, precision=self.precision, graph=self.graph,
                   input=self.input.to_json(), tasks={t: o.to_json() for t, o in self.tasks.items()},
                   networks=[n.to_json() for n in self.networks],
                   files={rel: {"sha256": e.sha256, "bytes": e.bytes} for rel, e in self.files.items()},
                   tensorrt=self.tensorrt.to_json(), selection=self.selection.to_json(),
                   verification=self.verification.to_json())
        doc.update(self.extra)
        doc["content_sha256"] = manifest_digest(doc)
        return doc

    @classmethod
    def from_json(cls, doc: Any, path: str | os.PathLike | None = None) -> "Manifest":
        """Validate a manifest document (no hashing of the files; see verify_files)."""
        return _parse(doc, Path(path) if path is not None else None)


# Files up to this size are hashed from the bytes that are then loaded (external weights files are
# passed to ONNX Runtime from memory too). ONNX's protobuf limit is 2 GiB, so every .onnx file
# qualifies; only larger weights files and engines are hashed on disk and read again by path.
IN_MEMORY_MAX_BYTES = 2 << 30
# Largest frame side a manifest may declare: far above any per-frame perception network, yet
# small enough that one frame is allocated safely (an absurd size would ask for tens of GiB).
MAX_SIDE = 8192
MAX_THREADS = 1024  # most intra-op threads per session a manifest (or a caller) may ask for


def manifest_digest(doc: dict[str, Any]) -> str:
    """sha256 of the manifest's content (canonical JSON, without the digest field itself).

    The model files are protected by their hashes in the manifest; this protects the
    manifest, so a changed task mapping or input spec is refused like a changed model.
    """
    body = {k: v for k, v in doc.items() if k != "content_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _req(doc: dict, key: str, types, where: str, path: Path):
    if not isinstance(doc, dict) or key not in doc:
        raise BundleError(f"{path}: field '{where}{key}': missing")
    value = doc[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise BundleError(f"{path}: field '{where}{key}': expected {types}, found a boolean")
    if not isinstance(value, types):
        raise BundleError(f"{path}: field '{where}{key}': expected {getattr(types, '__name__', types)}, "
                          f"found {type(value).__name__}")
    return value


def _positive(value: object) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and value > 0)


def _numbers(values: list, count: int, field_name: str, path: Path) -> tuple[float, ...]:
    """`count` finite numbers (a string or NaN here would only fail at the first frame)."""
    if len(values) != count or not all(not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
                                       for v in values):
        raise BundleError(f"{path}: field '{field_name}': expected {count} finite numbers, found {values}")
    return tuple(float(v) for v in values)


def read_manifest(bundle_dir: str | os.PathLike) -> Manifest:
    """Parse and validate manifest.json of a bundle directory (no hashing; see verify_files)."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: not a bundle directory (no such directory)")
    if not path.is_file():
        raise BundleError(f"{path}: missing; a bundle directory holds manifest.json written by `taskgroup export`")
    safe_member(bundle_dir, MANIFEST_NAME, MANIFEST_NAME, path)  # a manifest symlinked from outside is not this bundle's
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    return Manifest.from_json(doc, path)


_TYPED = ("kind", "schema_version", "content_sha256", "created", "created_with", "precision", "graph", "input",
          "tasks", "networks", "files", "tensorrt", "selection", "verification")


def _parse(doc: Any, path: Path | None) -> Manifest:
    where = path if path is not None else MANIFEST_NAME
    bundle_dir = path.parent if path is not None else Path(".")
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: field '<top level>': expected a JSON object")
    if doc.get("kind") != MANIFEST_KIND:
        raise BundleError(f"{where}: field 'kind': expected '{MANIFEST_KIND}', found {doc.get('kind')!r}")
    if doc.get("schema_version") not in SUPPORTED_VERSIONS or isinstance(doc.get("schema_version"), bool):
        raise BundleError(f"{where}: field 'schema_version': unsupported {doc.get('schema_version')!r}; "
                          f"supported: {list(SUPPORTED_VERSIONS)}")
    digest = doc.get("content_sha256")
    try:
        actual = manifest_digest(doc)
    except ValueError:  # NaN/infinity, which the exporter never writes
        actual = None
    if not isinstance(digest, str) or digest != actual:
        raise BundleError(f"{where}: field 'content_sha256': the manifest does not match its own digest "
                          "(edited or damaged after export)")
    input_spec = _input(doc, where)
    files = _req(doc, "files", dict, "", where)
    entries: dict[str, FileEntry] = {}
    for rel, entry in files.items():
        safe_member(bundle_dir, rel, f"files.{rel}", where)
        sha = _req(entry, "sha256", str, f"files.{rel}.", where) if isinstance(entry, dict) else None
        if not (isinstance(sha, str) and len(sha) == 64):
            raise BundleError(f"{where}: field 'files.{rel}.sha256': expected a 64-digit hex sha256")
        size = entry.get("bytes")
        entries[rel] = FileEntry(sha, size if isinstance(size, int) and not isinstance(size, bool) else None)
    networks = [_network(net, i, files, bundle_dir, where) for i, net in enumerate(_req(doc, "networks", list, "", where))]
    if not networks:
        raise BundleError(f"{where}: field 'networks': the bundle has no networks")
    tasks = {name: _task(name, t, networks, where) for name, t in _req(doc, "tasks", dict, "", where).items()}
    if not tasks:
        raise BundleError(f"{where}: field 'tasks': the bundle serves no tasks")
    for i, net in enumerate(networks):
        # Every network runs on every frame: one that serves no task would cost time for nothing.
        mapped = [t for t, o in tasks.items() if o.network == i]
        if not mapped:
            raise BundleError(f"{where}: field 'networks[{i}]': network {net.name} serves no task in 'tasks'")
        if sorted(mapped) != sorted(net.tasks):
            raise BundleError(f"{where}: field 'networks[{i}].tasks': lists {list(net.tasks)}, but 'tasks' maps "
                              f"{mapped} to it")
    precision = _req(doc, "precision", str, "", where)
    selection = _selection(doc.get("selection") or {}, where)
    graph = doc.get("graph", "separate")
    if graph not in ("separate", "fused"):
        raise BundleError(f"{where}: field 'graph': expected 'separate' or 'fused', found {graph!r}")
    created_with = _object(doc.get("created_with"), "created_with", where)
    created = doc.get("created")
    return Manifest(path, input_spec, tasks, tuple(networks), entries, precision, selection, graph,
                    created if isinstance(created, str) else None, created_with, _tensorrt(doc.get("tensorrt"), where),
                    _verification(doc.get("verification"), where), {k: v for k, v in doc.items() if k not in _TYPED},
                    digest)


def _input(doc: dict, where: object) -> InputSpec:
    inp = _req(doc, "input", dict, "", where)
    shape = _req(inp, "shape", list, "input.", where)
    # A uint8 frame (fused bundles, schema 2) is NHWC; the networks' float32 image is NCHW.
    frame = doc["schema_version"] >= FUSED_SCHEMA_VERSION and inp.get("dtype") == "uint8"
    sides, channels, form = (shape[1:3], shape[3:], "['N', H, W, 3]") if frame else (shape[2:], shape[1:2], "['N', 3, H, W]")
    if (len(shape) != 4 or channels != [3]
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_SIDE for s in sides)):
        raise BundleError(f"{where}: field 'input.shape': expected {form} with H and W in 1..{MAX_SIDE}, found {shape}")
    norm = _req(inp, "normalization", dict, "input.", where)
    value_range = _numbers(_req(inp, "value_range", list, "input.", where), 2, "input.value_range", where)
    if not value_range[0] < value_range[1]:
        raise BundleError(f"{where}: field 'input.value_range': expected [low, high] with low < high, found {value_range}")
    std = _numbers(_req(norm, "std", list, "input.normalization.", where), 3, "input.normalization.std", where)
    if min(std) <= 0:
        raise BundleError(f"{where}: field 'input.normalization.std': expected positive numbers, found {std}")
    frames = inp.get("accepted_frames")
    spec = InputSpec(
        name=_req(inp, "name", str, "input.", where), height=sides[0], width=sides[1],
        dtype=_req(inp, "dtype", str, "input.", where), layout=_req(inp, "layout", str, "input.", where),
        color_order=_req(inp, "color_order", str, "input.", where), value_range=value_range,
        mean=_numbers(_req(norm, "mean", list, "input.normalization.", where), 3, "input.normalization.mean", where),
        std=std, normalization=str(norm.get("applied", "")),
        accepted_frames=tuple(str(f) for f in frames) if isinstance(frames, list) else FRAME_FORMS,
        resize=_resize_method(inp.get("resize"), where),
    )
    supported = ("uint8", "NHWC", "RGB", (0.0, 255.0)) if frame else ("float32", "NCHW", "RGB", None)
    found = (spec.dtype, spec.layout, spec.color_order, value_range if frame else None)
    if found != supported:
        raise BundleError(f"{where}: field 'input': this runtime supports float32 NCHW RGB images and (schema "
                          f"{FUSED_SCHEMA_VERSION}) uint8 NHWC RGB frames with values 0..255, found "
                          f"{spec.dtype} {spec.layout} {spec.color_order} {list(value_range)}")
    return spec


def _resize_method(doc: Any, where: object) -> str | None:
    """input.resize (absent in bundles exported before frames were resized): {"method": "area", "rule": ...}."""
    if doc is None:
        return None
    method = doc.get("method") if isinstance(doc, dict) else None
    if method not in RESIZE_METHODS:
        raise BundleError(f"{where}: field 'input.resize.method': expected one of {', '.join(RESIZE_METHODS)}, "
                          f"found {method!r}")
    return method


def _network(net: Any, i: int, files: dict, bundle_dir: Path, where: object) -> NetworkFiles:
    f = f"networks[{i}]."
    fdoc = _req(net, "files", dict, f, where)
    entries = {"onnx": _req(fdoc, "onnx", str, f + "files.", where),
               "onnx_data": fdoc.get("onnx_data"), "engine": fdoc.get("engine")}
    for key, rel in entries.items():
        if rel is None:
            continue
        safe_member(bundle_dir, rel, f"{f}files.{key}", where)
        if rel not in files:
            raise BundleError(f"{where}: field '{f}files.{key}': {rel!r} has no sha256 in 'files'")
    tasks = _req(net, "tasks", list, f, where)
    if not all(isinstance(t, str) for t in tasks):
        raise BundleError(f"{where}: field '{f}tasks': expected a list of task names, found {tasks}")
    latency = net.get("predicted_latency")
    if latency is not None and not _positive(latency):
        raise BundleError(f"{where}: field '{f}predicted_latency': expected a positive finite number or null, "
                          f"found {latency!r}")
    trained, width, verification, fused_from = (net.get("tasks_trained"), net.get("width"), net.get("verification"),
                                                net.get("fused_from"))
    if trained is not None and not (isinstance(trained, list) and all(isinstance(t, str) for t in trained)):
        raise BundleError(f"{where}: field '{f}tasks_trained': expected a list of task names, found {trained!r}")
    if width is not None and not _positive(width):
        raise BundleError(f"{where}: field '{f}width': expected a positive number, found {width!r}")
    if verification is not None and not isinstance(verification, dict):
        raise BundleError(f"{where}: field '{f}verification': expected an object")
    if fused_from is not None and not (isinstance(fused_from, list) and all(isinstance(p, dict) for p in fused_from)):
        raise BundleError(f"{where}: field '{f}fused_from': expected a list of networks")
    stage, checkpoint, epoch, stopped_for = net.get("stage"), net.get("checkpoint"), net.get("epoch"), net.get("stopped_for")
    if epoch is not None and not (isinstance(epoch, (int, float)) and not isinstance(epoch, bool)
                                  and math.isfinite(epoch) and epoch >= 0):
        raise BundleError(f"{where}: field '{f}epoch': expected a number >= 0 or null, found {epoch!r}")
    if stopped_for is not None and not isinstance(stopped_for, str):
        raise BundleError(f"{where}: field '{f}stopped_for': expected a task name or null, found {stopped_for!r}")
    return NetworkFiles(_req(net, "name", str, f, where), tuple(tasks), entries["onnx"], entries["onnx_data"],
                        entries["engine"], latency, tuple(trained) if trained is not None else None,
                        float(width) if width is not None else None, stage if isinstance(stage, str) else None,
                        checkpoint if isinstance(checkpoint, str) else None, verification or {}, fused_from,
                        float(epoch) if epoch is not None else None, stopped_for)


def _task(name: str, t: Any, networks: list[NetworkFiles], where: object) -> TaskOutput:
    f = f"tasks.{name}."
    idx = _req(t, "network", int, f, where)
    if not 0 <= idx < len(networks):
        raise BundleError(f"{where}: field '{f}network': index {idx} out of range (0..{len(networks) - 1})")
    out = _req(t, "output", str, f, where)
    if name not in networks[idx].tasks:
        raise BundleError(f"{where}: field '{f}network': network {idx} does not serve '{name}'")
    oshape = _req(t, "shape", list, f, where)
    if len(oshape) != 4 or isinstance(oshape[1], bool) or not isinstance(oshape[1], int) or oshape[1] < 1:
        raise BundleError(f"{where}: field '{f}shape': expected ['N', C, H, W], found {oshape}")
    units, transform, tolerance = t.get("units"), t.get("transform"), t.get("tolerance")
    if units is not None and not isinstance(units, str):
        raise BundleError(f"{where}: field '{f}units': expected a string, found {type(units).__name__}")
    if transform is not None and not isinstance(transform, dict):
        raise BundleError(f"{where}: field '{f}transform': expected an object, found {type(transform).__name__}")
    if tolerance is not None and not _positive(tolerance):
        raise BundleError(f"{where}: field '{f}tolerance': expected a positive number, found {tolerance!r}")
    loss, value_range = t.get("loss"), t.get("value_range")
    return TaskOutput(name, idx, out, oshape[1], _req(t, "dtype", str, f, where), _req(t, "meaning", str, f, where),
                      units, transform, tuple(oshape), loss if isinstance(loss, str) else None,
                      list(value_range) if isinstance(value_range, list) else None,
                      float(tolerance) if tolerance is not None else None)


def _selection(doc: Any, where: object) -> BundleSelection:
    selection = _object(doc, "selection", where)
    f = "selection"
    predicted = selection.get("predicted_latency")
    if predicted is not None and not (isinstance(predicted, dict) and _positive(predicted.get("value"))):
        raise BundleError(f"{where}: field 'selection.predicted_latency.value': expected a positive finite number, "
                          f"found {predicted.get('value') if isinstance(predicted, dict) else predicted!r}")
    settings = selection.get("profiled_backend_settings")
    budget = selection.get("budget")
    if budget is not None:
        value = budget.get("value") if isinstance(budget, dict) else budget
        if not isinstance(budget, dict) or (value is not None and not _positive(value)):
            raise BundleError(f"{where}: field 'selection.budget.value': expected a positive finite number or null, "
                              f"found {value!r}")
    objective = selection.get("objective")
    if objective is not None and (isinstance(objective, bool) or not isinstance(objective, (int, float))
                                  or not math.isfinite(objective)):
        raise BundleError(f"{where}: field 'selection.objective': expected a finite number or null, found {objective!r}")
    return BundleSelection(
        _typed(selection, "grouping_file", str, f, where), _typed(selection, "grouping_sha256", str, f, where),
        None if budget is None else SelectionBudget(budget.get("value"), _typed(budget, "unit", str, f + ".budget", where),
                                                    {k: v for k, v in budget.items() if k not in ("value", "unit")}),
        _typed(selection, "profile", str, f, where), _typed(selection, "device", dict, f, where),
        None if predicted is None else PredictedLatency(
            float(predicted["value"]), _typed(predicted, "unit", str, f + ".predicted_latency", where),
            _typed(predicted, "corun_factor", (int, float), f + ".predicted_latency", where),
            _typed(predicted, "note", str, f + ".predicted_latency", where),
            {k: v for k, v in predicted.items() if k not in ("value", "unit", "corun_factor", "note")}),
        objective,
        None if settings is None else BackendSettings.parse(
            settings, "selection.profiled_backend_settings", lambda name, problem: BundleError(
                f"{where}: field '{name}': {problem}")),
        {k: v for k, v in selection.items() if k not in BundleSelection._KEYS})


def _tensorrt(doc: Any, where: object) -> TensorRTRecord:
    block = _object(doc, "tensorrt", where)
    return TensorRTRecord(_typed(block, "built", bool, "tensorrt", where), _typed(block, "reason", str, "tensorrt", where),
                          _typed(block, "build", dict, "tensorrt", where),
                          {k: v for k, v in block.items() if k not in ("built", "reason", "build")})


def _verification(doc: Any, where: object) -> VerificationRecord:
    block = _object(doc, "verification", where)
    keys = ("frames", "source", "against", "runtime", "fused")
    frames = _typed(block, "frames", int, "verification", where)
    return VerificationRecord(frames, *(_typed(block, k, str, "verification", where) for k in keys[1:]),
                              extra={k: v for k, v in block.items() if k not in keys})


def verify_files(manifest: Manifest, keep: Iterable[str] | None = None) -> dict[str, bytes]:
    """Check every listed file exists and matches its sha256; return the verified bytes of small files.

    Returning the bytes that were hashed lets the runtime build sessions from exactly those
    bytes (no window between checking a file and loading it). `keep` names the files whose
    bytes are wanted (default: all); the others are hashed as a stream and not held in memory.
    """
    bundle_dir = manifest.path.parent
    wanted = None if keep is None else set(keep)
    data: dict[str, bytes] = {}
    for rel, entry in manifest.files.items():
        expected = entry.sha256
        full = safe_member(bundle_dir, rel, f"files.{rel}", manifest.path)
        if not full.is_file():  # never opened: reading a FIFO or a device could block forever
            what = "is missing" if not full.exists() else f"is not a regular file ({file_kind(full)})"
            raise BundleError(f"{bundle_dir}: file '{rel}' listed in manifest.json {what}")
        if (wanted is None or rel in wanted) and full.stat().st_size <= IN_MEMORY_MAX_BYTES:
            blob = full.read_bytes()
            actual = hashlib.sha256(blob).hexdigest()
            data[rel] = blob
        else:
            actual = sha256_file(full)
        if actual != expected:
            raise BundleError(f"{bundle_dir}: file '{rel}' does not match its sha256 in manifest.json "
                              f"(expected {expected[:12]}..., found {actual[:12]}...); the bundle is damaged or "
                              "was modified after export")
    return data
