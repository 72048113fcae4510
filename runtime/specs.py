"""What a bundle's models take and give: the manifest's input, per-task outputs, networks and files.

Everything robot code needs to feed the networks and interpret their outputs: the input spec
(shape, dtype, normalisation, how other frame sizes are resized), each task's output (network,
tensor, channels, units and the transform to them), each network's files and the checks export
made of it against PyTorch. One dataclass per block with `to_json` and `from_json`, which
validates every value the runtime uses; the document that holds them, and the checks across
blocks, are `taskgroup_runtime.manifest`. Pure standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskgroup_runtime.errors import BundleError
from taskgroup_runtime.fields import (MAX_SIDE, REEXPORT, is_number, numbers, optional, positive, required, set_fields,
                                      task_names, unknown)
from taskgroup_runtime.integrity import safe_member

# The input's form decides the schema version: a uint8 frame input needs schema 2.
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

    @property
    def schema_version(self) -> int:
        """The oldest manifest schema that holds this input: a uint8 frame needs schema 2."""
        return FUSED_SCHEMA_VERSION if self.dtype == "uint8" else SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": ["N" if d is None else d for d in self.shape], "dtype": self.dtype,
                "layout": self.layout, "color_order": self.color_order,
                "value_range": list(self.value_range),
                "normalization": {"applied": self.normalization, "mean": list(self.mean), "std": list(self.std)},
                "accepted_frames": list(self.accepted_frames),
                **({"resize": {"method": self.resize, "rule": RESIZE_RULE}} if self.resize else {})}

    @classmethod
    def from_json(cls, inp: dict, schema_version: int, where: object) -> "InputSpec":
        shape = required(inp, "shape", list, "input.", where)
        # A uint8 frame (fused bundles, schema 2) is NHWC; the networks' float32 image is NCHW.
        frame = schema_version >= FUSED_SCHEMA_VERSION and inp.get("dtype") == "uint8"
        sides, channels, form = (shape[1:3], shape[3:], "['N', H, W, 3]") if frame else (shape[2:], shape[1:2], "['N', 3, H, W]")
        if (len(shape) != 4 or channels != [3]
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_SIDE for s in sides)):
            raise BundleError(f"{where}: field 'input.shape': expected {form} with H and W in 1..{MAX_SIDE}, found {shape}")
        norm = required(inp, "normalization", dict, "input.", where)
        value_range = numbers(required(inp, "value_range", list, "input.", where), 2, "input.value_range", where)
        if not value_range[0] < value_range[1]:
            raise BundleError(f"{where}: field 'input.value_range': expected [low, high] with low < high, found {value_range}")
        std = numbers(required(norm, "std", list, "input.normalization.", where), 3, "input.normalization.std", where)
        if min(std) <= 0:
            raise BundleError(f"{where}: field 'input.normalization.std': expected positive numbers, found {std}")
        frames = inp.get("accepted_frames")
        spec = cls(
            name=required(inp, "name", str, "input.", where), height=sides[0], width=sides[1],
            dtype=required(inp, "dtype", str, "input.", where), layout=required(inp, "layout", str, "input.", where),
            color_order=required(inp, "color_order", str, "input.", where), value_range=value_range,
            mean=numbers(required(norm, "mean", list, "input.normalization.", where), 3, "input.normalization.mean", where),
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


@dataclass(frozen=True)
class OutputTransform:
    """How the exported graph maps a head's trained (standardised) output to the data's units."""

    kind: str | None = None  # "affine" (output = head * std + mean per channel) or "none" (logits)
    mean: tuple[float, ...] | None = None  # per channel (affine)
    std: tuple[float, ...] | None = None  # per channel (affine)
    origin: str | None = None  # how mean and std were chosen (measured on the training split, or fixed constants)
    applied: str | None = None  # where and how it is applied (for people)
    extra: dict[str, Any] = field(default_factory=dict)  # other fields, as written

    _KEYS = ("kind", "mean", "std", "origin", "applied")

    def to_json(self) -> dict[str, Any]:
        doc = set_fields(self, self._KEYS)
        return {k: list(v) if k in ("mean", "std") else v for k, v in doc.items()}

    @classmethod
    def from_json(cls, doc: dict, field_name: str, where: object) -> "OutputTransform":
        per_channel = {}
        for key in ("mean", "std"):
            values = doc.get(key)
            if values is not None and not (isinstance(values, list) and all(is_number(v) for v in values)):
                raise BundleError(f"{where}: field '{field_name}.{key}': expected a list of finite numbers or null, "
                                  f"found {values!r}; {REEXPORT}")
            per_channel[key] = tuple(values) if values is not None else None
        return cls(optional(doc, "kind", str, field_name, where, REEXPORT), per_channel["mean"], per_channel["std"],
                   optional(doc, "origin", str, field_name, where, REEXPORT),
                   optional(doc, "applied", str, field_name, where, REEXPORT), unknown(doc, cls._KEYS))


@dataclass(frozen=True)
class TaskOutput:
    task: str  # task name
    network: int  # index into Manifest.networks of the network that serves it
    output: str  # output tensor name in that network's model file(s)
    channels: int  # C of the (N, C, H, W) output
    dtype: str  # output dtype
    meaning: str  # what the values mean (from the task registry)
    units: str | None = None  # the dataset's units the outputs are in (None: a bundle from before units were recorded)
    transform: OutputTransform | None = None  # how the graph maps the trained head to those units (None: not recorded)
    shape: tuple[Any, ...] = ()  # ['N', C, H, W] as exported (H, W: integers, or names of dynamic axes)
    loss: str | None = None  # the loss the head was trained with
    value_range: list[float] | None = None  # the range of the data's values, where the encoding bounds it
    tolerance: float | None = None  # base tolerance the export held it to (x max(1, max |PyTorch output|))

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "output": self.output, "shape": list(self.shape) or ["N", self.channels],
                "dtype": self.dtype, "meaning": self.meaning, "loss": self.loss, "value_range": self.value_range,
                "units": self.units, "transform": self.transform.to_json() if self.transform is not None else None,
                "tolerance": self.tolerance}

    @classmethod
    def from_json(cls, name: str, t: Any, networks: list["NetworkFiles"], where: object) -> "TaskOutput":
        f = f"tasks.{name}."
        idx = required(t, "network", int, f, where)
        if not 0 <= idx < len(networks):
            raise BundleError(f"{where}: field '{f}network': index {idx} out of range (0..{len(networks) - 1})")
        out = required(t, "output", str, f, where)
        if name not in networks[idx].tasks:
            raise BundleError(f"{where}: field '{f}network': network {idx} does not serve '{name}'")
        oshape = required(t, "shape", list, f, where)
        if len(oshape) != 4 or isinstance(oshape[1], bool) or not isinstance(oshape[1], int) or oshape[1] < 1:
            raise BundleError(f"{where}: field '{f}shape': expected ['N', C, H, W], found {oshape}")
        units, transform, tolerance = t.get("units"), t.get("transform"), t.get("tolerance")
        if units is not None and not isinstance(units, str):
            raise BundleError(f"{where}: field '{f}units': expected a string, found {type(units).__name__}")
        if transform is not None and not isinstance(transform, dict):
            raise BundleError(f"{where}: field '{f}transform': expected an object, found {type(transform).__name__}")
        if tolerance is not None and not positive(tolerance):
            raise BundleError(f"{where}: field '{f}tolerance': expected a positive number, found {tolerance!r}")
        loss, value_range = t.get("loss"), t.get("value_range")
        return cls(name, idx, out, oshape[1], required(t, "dtype", str, f, where), required(t, "meaning", str, f, where),
                   units, OutputTransform.from_json(transform, f + "transform", where) if transform is not None else None,
                   tuple(oshape), loss if isinstance(loss, str) else None,
                   list(value_range) if isinstance(value_range, list) else None,
                   float(tolerance) if tolerance is not None else None)


@dataclass(frozen=True)
class OutputCheck:
    """One output of an exported file checked against PyTorch on the verification frames."""

    max_abs_error: float  # max |exported - PyTorch| over the frames
    tolerance: float  # what it was held to: the base tolerance x max(1, max |PyTorch output|)
    extra: dict[str, Any] = field(default_factory=dict)  # other fields, as written

    def to_json(self) -> dict[str, Any]:
        return {"max_abs_error": self.max_abs_error, "tolerance": self.tolerance, **self.extra}

    @classmethod
    def from_json(cls, doc: Any, field_name: str, where: object) -> "OutputCheck":
        if not isinstance(doc, dict):
            raise BundleError(f"{where}: field '{field_name}': expected an object with max_abs_error and tolerance, "
                              f"found {doc!r}; {REEXPORT}")
        values = {}
        for key in ("max_abs_error", "tolerance"):
            if not (is_number(doc.get(key)) and doc[key] >= 0):
                raise BundleError(f"{where}: field '{field_name}.{key}': expected a number >= 0, "
                                  f"found {doc.get(key)!r}; {REEXPORT}")
            values[key] = doc[key]
        return cls(**values, extra=unknown(doc, values))


def checks_from_json(doc: Any, field_name: str, where: object) -> dict[str, OutputCheck]:
    """A network's `verification`: task -> OutputCheck (null or absent: none recorded)."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: field '{field_name}': expected an object")
    return {task: OutputCheck.from_json(check, f"{field_name}.{task}", where) for task, check in doc.items()}


@dataclass(frozen=True)
class FusedPart:
    """One network inside a fused graph, as `NetworkFiles` records a separate one."""

    name: str  # its name as a separate network (net0, ...)
    tasks: tuple[str, ...]  # tasks it serves
    tasks_trained: tuple[str, ...] | None = None  # tasks its checkpoint was trained on
    width: float | None = None  # width multiplier
    stage: str | None = None  # training stage of the checkpoint
    checkpoint: str | None = None  # the checkpoint's file name
    epoch: float | None = None  # the training epoch its weights are from (None: not recorded)
    stopped_for: str | None = None  # a per-task stop: the task whose best validation epoch the weights are from
    predicted_latency: float | None = None  # the grouping's cost for it
    verification: dict[str, OutputCheck] = field(default_factory=dict)  # its own file checked against PyTorch
    extra: dict[str, Any] = field(default_factory=dict)  # other fields, as written

    _KEYS = ("name", "tasks", "tasks_trained", "width", "stage", "checkpoint", "epoch", "stopped_for",
             "predicted_latency", "verification")

    def to_json(self) -> dict[str, Any]:
        """As export writes it: every field, null included, except a `stopped_for` that is not set."""
        return {"name": self.name, "tasks": list(self.tasks),
                "tasks_trained": list(self.tasks_trained) if self.tasks_trained is not None else None,
                "width": self.width, "stage": self.stage, "checkpoint": self.checkpoint, "epoch": self.epoch,
                **({"stopped_for": self.stopped_for} if self.stopped_for is not None else {}),
                "predicted_latency": self.predicted_latency,
                "verification": {t: c.to_json() for t, c in self.verification.items()}, **self.extra}

    @classmethod
    def from_json(cls, doc: Any, field_name: str, where: object) -> "FusedPart":
        if not isinstance(doc, dict):
            raise BundleError(f"{where}: field '{field_name}': expected an object, found {doc!r}; {REEXPORT}")
        for key, check in (("width", positive), ("epoch", lambda v: is_number(v) and v >= 0),
                           ("predicted_latency", lambda v: is_number(v) and v >= 0)):
            if doc.get(key) is not None and not check(doc[key]):
                raise BundleError(f"{where}: field '{field_name}.{key}': expected a {'positive ' if key == 'width' else ''}"
                                  f"number{' >= 0' if key != 'width' else ''} or null, found {doc[key]!r}; {REEXPORT}")
        text = {k: optional(doc, k, str, field_name, where, REEXPORT) for k in ("stage", "checkpoint", "stopped_for")}
        return cls(required(doc, "name", str, field_name + ".", where),
                   task_names(doc.get("tasks"), f"{field_name}.tasks", where),
                   task_names(doc.get("tasks_trained"), f"{field_name}.tasks_trained", where, nullable=True),
                   doc.get("width"), text["stage"], text["checkpoint"], doc.get("epoch"), text["stopped_for"],
                   doc.get("predicted_latency"), checks_from_json(doc.get("verification"), f"{field_name}.verification",
                                                                  where), unknown(doc, cls._KEYS))


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
    verification: dict[str, OutputCheck] = field(default_factory=dict)  # task -> measured error against PyTorch
    fused_from: tuple[FusedPart, ...] | None = None  # a fused graph: the networks inside it
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
                   verification={t: c.to_json() for t, c in self.verification.items()})
        if self.fused_from is not None:
            doc["fused_from"] = [p.to_json() for p in self.fused_from]
        return doc

    @classmethod
    def from_json(cls, net: Any, i: int, files: dict, bundle_dir: Path, where: object) -> "NetworkFiles":
        """networks[i]; every file it names must be inside the bundle and listed in `files`."""
        f = f"networks[{i}]."
        fdoc = required(net, "files", dict, f, where)
        entries = {"onnx": required(fdoc, "onnx", str, f + "files.", where),
                   "onnx_data": fdoc.get("onnx_data"), "engine": fdoc.get("engine")}
        for key, rel in entries.items():
            if rel is None:
                continue
            safe_member(bundle_dir, rel, f"{f}files.{key}", where)
            if rel not in files:
                raise BundleError(f"{where}: field '{f}files.{key}': {rel!r} has no sha256 in 'files'")
        tasks = required(net, "tasks", list, f, where)
        if not all(isinstance(t, str) for t in tasks):
            raise BundleError(f"{where}: field '{f}tasks': expected a list of task names, found {tasks}")
        latency = net.get("predicted_latency")
        if latency is not None and not positive(latency):
            raise BundleError(f"{where}: field '{f}predicted_latency': expected a positive finite number or null, "
                              f"found {latency!r}")
        trained, width, fused_from = net.get("tasks_trained"), net.get("width"), net.get("fused_from")
        if trained is not None and not (isinstance(trained, list) and all(isinstance(t, str) for t in trained)):
            raise BundleError(f"{where}: field '{f}tasks_trained': expected a list of task names, found {trained!r}")
        if width is not None and not positive(width):
            raise BundleError(f"{where}: field '{f}width': expected a positive number, found {width!r}")
        if fused_from is not None and not (isinstance(fused_from, list) and all(isinstance(p, dict) for p in fused_from)):
            raise BundleError(f"{where}: field '{f}fused_from': expected a list of networks")
        stage, checkpoint, epoch, stopped_for = net.get("stage"), net.get("checkpoint"), net.get("epoch"), net.get("stopped_for")
        if epoch is not None and not (is_number(epoch) and epoch >= 0):
            raise BundleError(f"{where}: field '{f}epoch': expected a number >= 0 or null, found {epoch!r}")
        if stopped_for is not None and not isinstance(stopped_for, str):
            raise BundleError(f"{where}: field '{f}stopped_for': expected a task name or null, found {stopped_for!r}")
        return cls(required(net, "name", str, f, where), tuple(tasks), entries["onnx"], entries["onnx_data"],
                   entries["engine"], latency, tuple(trained) if trained is not None else None,
                   float(width) if width is not None else None, stage if isinstance(stage, str) else None,
                   checkpoint if isinstance(checkpoint, str) else None,
                   checks_from_json(net.get("verification"), f + "verification", where),
                   None if fused_from is None else tuple(FusedPart.from_json(p, f"{f}fused_from[{k}]", where)
                                                         for k, p in enumerate(fused_from)),
                   float(epoch) if epoch is not None else None, stopped_for)


@dataclass(frozen=True)
class FileEntry:
    sha256: str  # hex digest of the file's bytes
    bytes: int | None = None  # its size
