"""Write a deployment bundle from a grouping: ONNX files (+ TensorRT engines) and manifest.json.

Everything is written into a temporary directory beside the destination and renamed into
place only after every file passed its checks (ONNX checker, ONNX Runtime vs PyTorch on
the verification frames, and a final round trip through the deployment runtime reading
the finished manifest). A failed export never leaves a partial bundle behind.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import write_bytes_atomic, write_json_atomic
from taskgroup.grouping import Grouping, GroupingNetwork
from taskgroup.models import load_checkpoint
from taskgroup.tasks import get_task
from taskgroup_exporters.checkpoints import grouping_checkpoint_sha256, require_trained_checkpoints
from taskgroup_exporters.frames import synthetic_frames
from taskgroup_exporters.fuse import FRAME as FUSED_INPUT
from taskgroup_exporters.fuse import fuse_models
from taskgroup_exporters.onnx_export import (INPUT_NAME, OnnxExportConfig, check_onnx, compare_outputs, convert_fp16,
                                             export_onnx, ort_outputs, torch_outputs)
from taskgroup_exporters.publish import check_replaceable, make_publishable, move_into_place
from taskgroup_runtime import load_bundle
from taskgroup_runtime.backends import backend_status
from taskgroup_runtime.errors import BackendUnavailableError, EngineBuildError
from taskgroup_runtime.integrity import sha256_file
from taskgroup_runtime.manifest import MANIFEST_NAME, Manifest
from taskgroup_runtime.provenance import (BundleSelection, CreatedWith, PredictedLatency, SelectionBudget,
                                          TensorRTRecord, VerificationRecord)
from taskgroup_runtime.specs import (FRAME_FORMS, FileEntry, FusedPart, InputSpec, NetworkFiles, OutputCheck,
                                     OutputTransform, TaskOutput)
from taskgroup_runtime.trt import EngineConfig, build_engine

FORMATS = ("onnx", "tensorrt", "all")
PRECISIONS = ("fp32", "fp16")
# Base tolerance per precision: max |runtime - PyTorch| <= atol * max(1, max |PyTorch output|).
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 3e-2}
FUSED_NAME = "fused"  # the fused graph's file stem and network name
# `export --fuse` is the default: measured side by side (benchmarks/results/runtime_overhead.json), one
# fused graph per frame is faster than the networks' separate sessions, sequential or concurrent.
DEFAULT_FUSE = True


def _formats(formats: str | Iterable[str]) -> tuple[bool, str]:
    """(build TensorRT engines?, 'required' | 'if-available' | 'no')."""
    items = [formats] if isinstance(formats, str) else list(formats)
    for f in items:
        if f not in FORMATS:
            raise TaskgroupError(f"unknown format {f!r}; valid options: {', '.join(FORMATS)}")
    if "tensorrt" in items:
        return True, "required"
    if "all" in items:
        return True, "if-available"
    return False, "no"


def _selection_block(grouping: Grouping) -> BundleSelection:
    """What the grouping was selected for: budget, profile, device and the predicted latency.

    The device is the one the grouping's budget recorded from its profile (selection copies it there),
    so the profile file itself is not read here (export sits below profiling in the layers)."""
    costs = [n.cost for n in grouping.networks]
    predicted = None
    factor = grouping.corun_factor
    if grouping.unit == "ms" and all(c is not None for c in costs):
        predicted = PredictedLatency(float(sum(costs)) * factor, "ms", factor,
                                     "sum of the chosen networks' profiled costs x the profile's measured co-run "
                                     "factor for this many networks run back to back")
    return BundleSelection(grouping.path.name, sha256_file(grouping.path),
                           SelectionBudget(grouping.budget.value, grouping.unit), grouping.profile,
                           grouping.budget.device, predicted, grouping.objective,
                           # How the profile ran its sessions: measure the bundle the same way to compare.
                           grouping.budget.backend_settings)


def _task_description(task: str, transform) -> dict[str, Any]:
    """A task's meaning, loss, units and output transform as the manifest states them."""
    spec = get_task(task)
    if transform is None:  # a checkpoint trained before standardisation: its heads answer in the data's values
        return {"meaning": spec.meaning, "loss": spec.loss,
                "value_range": list(spec.value_range) if spec.value_range else None,
                "units": "the training data's values (checkpoint written before target standardisation)",
                "transform": None}
    if transform.regression:
        how = OutputTransform("affine", tuple(transform.mean), tuple(transform.std), transform.origin,
                              "inside the network: output = head * std + mean per channel (the head is trained on "
                              "(target - mean) / std)")
    else:
        how = OutputTransform("none", applied="outputs are logits of the labels; no transform")
    return {"meaning": spec.meaning, "loss": spec.loss,
            "value_range": list(transform.value_range) if transform.value_range else None,
            "units": transform.units, "transform": how}


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version()}


def export_bundle(grouping_path: str | os.PathLike, out_dir: str | os.PathLike,
                  formats: str | Iterable[str] = "onnx", precision: str = "fp32",
                  frames: np.ndarray | None = None, *, resolution: int | None = None,
                  frames_source: str | None = None, tolerances: dict[str, float] | None = None,
                  overwrite: bool = False, onnx_config: OnnxExportConfig = OnnxExportConfig(),
                  engine_max_batch: int = 8, timing_cache: str | os.PathLike | None = None,
                  fuse: bool | None = None, log: Callable[[str], None] | None = None,
                  verify_checkpoint: Callable[[Grouping, int], str] = grouping_checkpoint_sha256) -> Path:
    """Export the networks of a grouping into a verified bundle directory; returns its path.

    frames: float32 (N, 3, H, W) RGB in [0, 1] to verify numerics on (real validation frames
        preferred); None uses deterministic synthetic frames at `resolution`.
    tolerances: per-task base tolerance overriding DEFAULT_ATOL[precision].
    fuse: merge the networks into one graph taking the uint8 frame (one session per frame), or
        ship one model per network. None: as the grouping's profile timed them (its recorded
        `fused` setting), else DEFAULT_FUSE.
    verify_checkpoint: returns a network's checkpoint sha256 after checking it against a recorded
        digest, or raises; the default trusts only the grouping's own records.
    """
    say = log or (lambda _msg: None)
    if precision not in PRECISIONS:
        raise TaskgroupError(f"unknown precision {precision!r}; valid options: {', '.join(PRECISIONS)}")
    want_trt, trt_mode = _formats(formats)
    grouping = Grouping.load(grouping_path)
    settings = grouping.budget.backend_settings
    profiled = settings.precision if settings is not None else None
    if profiled is not None and profiled != precision:
        raise TaskgroupError(f"{grouping.path}: the grouping's costs were measured at {profiled} (profile "
                             f"{grouping.profile}); export with --precision {profiled}, or profile with --precision "
                             f"{precision} and select again, so that what ships is what was costed")
    profiled_fuse = settings.fused if settings is not None else None
    if fuse is None:
        fuse = profiled_fuse if isinstance(profiled_fuse, bool) else DEFAULT_FUSE
    elif isinstance(profiled_fuse, bool) and fuse != profiled_fuse:
        say(f"note: the grouping's profile timed its networks {'fused into one graph' if profiled_fuse else 'as separate sessions'}; "
            f"this bundle {'fuses them' if fuse else 'runs them separately'}, so its latency will differ from the prediction")
    require_trained_checkpoints(grouping)
    digests = [verify_checkpoint(grouping, i) for i in range(len(grouping.networks))]
    if frames is None:
        if resolution is None:
            raise TaskgroupError("export needs verification frames or an input resolution")
        frames = synthetic_frames(12, resolution)
        frames_source = frames_source or f"synthetic (12 deterministic random and structured frames, {resolution}px)"
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[2] != frames.shape[3] or len(frames) == 0:
        raise TaskgroupError(f"verification frames must be float32 (N, 3, R, R), got shape {frames.shape}")
    if not np.isfinite(frames).all() or frames.min() < 0 or frames.max() > 1:
        raise TaskgroupError("verification frames must be finite and in [0, 1]")
    res = frames.shape[2]
    if resolution is not None and resolution != res:
        raise TaskgroupError(f"resolution {resolution} does not match the verification frames ({res}px)")
    trt_reason = None
    if want_trt:
        ok, why = backend_status("tensorrt", "cuda")
        if not ok:
            if trt_mode == "required":
                raise TaskgroupError(f"--format tensorrt: {why}. Engines must be built on the target machine "
                                     "with TensorRT installed; use --format onnx here.")
            want_trt, trt_reason = False, why
            say(f"no TensorRT engines built: {why}")

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise TaskgroupError(f"{out} already exists; choose another --out or pass --overwrite")
    if out.exists():
        check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        exported = [_export_network(grouping, i, digests[i], tmp, frames, precision, tolerances, onnx_config, say)
                    for i in range(len(grouping.networks))]
        build = _EngineBuild(out.parent, timing_cache, engine_max_batch) if want_trt else None
        if fuse:
            frames = quantized_frames(frames)  # the fused graph takes 8-bit frames: verify on exactly those
            networks, task_entries, references = _fused_network(grouping, exported, tmp, frames, precision, build, say)
        else:
            networks, task_entries, references = _separate_networks(exported, tmp, frames, precision, build, say)
        engine_facts = build.facts if build else None
        trunk = exported[-1].deploy.trunk
        mean = [float(v) for v in getattr(trunk, "mean").flatten()]
        std = [float(v) for v in getattr(trunk, "std").flatten()]

        missing = [t for t in grouping.tasks if t not in task_entries]
        if missing:
            raise TaskgroupError(f"{grouping.path}: no exported network serves {missing}")
        manifest = Manifest(
            path=None, input=_input_spec(fuse, res, mean, std), tasks=task_entries, networks=tuple(networks),
            files={p.name: FileEntry(sha256_file(p), p.stat().st_size) for p in sorted(tmp.iterdir()) if p.is_file()},
            precision=precision, selection=_selection_block(grouping), graph="fused" if fuse else "separate",
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            created_with=CreatedWith(**_versions(), exporter=f"torch.onnx.export ({onnx_config.exporter})",
                                     opset_requested=onnx_config.opset),
            tensorrt=TensorRTRecord(want_trt, trt_reason if not want_trt else None, engine_facts),
            verification=VerificationRecord(int(len(frames)), frames_source or "frames given by the caller",
                                            "PyTorch eager (CPU)", "ONNX Runtime CPU",
                                            "the fused graph on the frames rounded to 8 bits, fed as uint8; each "
                                            "network first on the frames as given" if fuse else None))
        write_json_atomic(tmp / MANIFEST_NAME, manifest.to_json())
        make_publishable(tmp)
        _round_trip(tmp, frames, references, task_entries, want_trt, engine_max_batch)
        say("all outputs match PyTorch within tolerance")
        move_into_place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@dataclass
class _Exported:
    """One network exported to an fp32 ONNX file and checked against PyTorch at fp32."""

    name: str  # net0, net1, ...
    net: GroupingNetwork  # the grouping's entry
    checkpoint: Path  # its checkpoint file
    deploy: Any  # the MultiTaskNet as shipped (served heads only, outputs in the data's units)
    onnx_path: Path
    data_path: Path | None  # external weights file, if any
    reference: dict[str, np.ndarray]  # PyTorch outputs on the verification frames
    errors: dict[str, dict[str, float]]  # measured error per task
    atol: dict[str, float]  # base tolerance per task at the export precision
    epoch: float | None  # the training epoch its weights are from (None: not recorded)
    stopped_for: str | None  # a per-task stop: the task whose best validation epoch it is


def _export_network(grouping: Grouping, index: int, digest: str, tmp: Path, frames: np.ndarray, precision: str,
                    tolerances: dict[str, float] | None, onnx_config: OnnxExportConfig, say) -> _Exported:

    net, name, checkpoint = grouping.networks[index], f"net{index}", grouping.checkpoint_path(grouping.networks[index])
    say(f"{name}: {'+'.join(net.served)} (trained on {'+'.join(net.tasks)}, width {net.width:g})")
    model = load_checkpoint(checkpoint, sha256=digest)
    if getattr(model, "checkpoint_extra", {}).get("stage") == "early":
        raise TaskgroupError(f"{checkpoint}: an early-stopped (ESA) checkpoint; only fully trained "
                             "networks are exported. Train it fully (taskgroup train --networks ... --resume) "
                             "and re-run selection")
    if set(model.tasks) != set(net.tasks) or abs(model.width - net.width) > 1e-9:
        raise TaskgroupError(f"{checkpoint}: checkpoint has tasks {list(model.tasks)} at width "
                             f"{model.width:g}, the grouping says {list(net.tasks)} at {net.width:g}")
    res = frames.shape[2]
    if res % model.input_multiple:
        raise TaskgroupError(f"resolution {res} is not a multiple of {model.input_multiple} required by {name}")
    deploy = model.with_heads(net.served) if set(net.served) != set(model.tasks) else model
    deploy = deploy.in_dataset_units()  # outputs in the dataset's units, not the standardised training space
    atol = {t: (tolerances or {}).get(t, DEFAULT_ATOL[precision]) for t in deploy.tasks}
    onnx_path, data_path = export_onnx(deploy, tmp / f"{name}.onnx", res, onnx_config)
    check_onnx(onnx_path)
    ref = torch_outputs(deploy, frames)
    # The fp32 file is always held to the fp32 tolerance, also when fp16 is produced from it.
    fp32_atol = atol if precision == "fp32" else {t: DEFAULT_ATOL["fp32"] for t in ref}
    errors = compare_outputs(ref, ort_outputs(onnx_path, frames), fp32_atol, f"{onnx_path.name} (ONNX Runtime CPU)")
    return _Exported(name, net, checkpoint, deploy, onnx_path, data_path, ref, errors, atol,
                     _extra(model, "best_epoch", float), _extra(model, "stopped_for", str))


def _extra(model, key: str, kind: type) -> Any:
    """A value the checkpoint recorded beside its weights (None when absent or not of `kind`)."""
    extra = getattr(model, "checkpoint_extra", None)
    value = extra.get(key) if isinstance(extra, dict) else None
    if kind is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return value if isinstance(value, kind) else None


class _EngineBuild:
    """Builds engines with one configuration and keeps the timing cache beside the bundle."""

    def __init__(self, parent: Path, timing_cache: str | os.PathLike | None, max_batch: int):
        self.cache = Path(timing_cache) if timing_cache else parent / "tensorrt-timing.cache"
        self.max_batch = max_batch
        self.facts: dict[str, Any] | None = None

    def __call__(self, onnx_path: Path, precision: str, say) -> Path:
        engine = onnx_path.parent / f"{onnx_path.name.split('.')[0]}.{precision}.engine"
        say(f"{engine.stem}: building TensorRT engine")
        config = EngineConfig(max_batch=self.max_batch,
                              timing_cache=self.cache.read_bytes() if self.cache.is_file() else None)
        try:
            blob, cache_bytes, self.facts = build_engine(onnx_path, config, what=onnx_path.name)
        except (BackendUnavailableError, EngineBuildError) as exc:
            raise TaskgroupError(str(exc)) from exc
        write_bytes_atomic(engine, blob)
        write_bytes_atomic(self.cache, cache_bytes)  # kept beside the bundle for later builds, also if export fails
        return engine


def _to_fp16(onnx_path: Path, data_path: Path | None, reference, atol, frames, what: str):
    """Convert a checked fp32 file to fp16 (replacing it) and check it again at the fp16 tolerance."""
    if data_path is not None:
        raise TaskgroupError(f"{what}: fp16 conversion of a model with external weights is not supported")
    half = onnx_path.with_name(onnx_path.name.replace(".onnx", ".fp16.onnx"))
    convert_fp16(onnx_path, half)
    onnx_path.unlink()
    check_onnx(half)
    feed = frames if not half.name.startswith(FUSED_NAME) else _nhwc_uint8(frames)
    errors = compare_outputs(reference, ort_outputs(half, feed), atol, f"{half.name} (ONNX Runtime CPU, fp16)")
    return half, errors


def _checks(errors: dict[str, dict[str, float]]) -> dict[str, OutputCheck]:
    """compare_outputs' report per task, as the manifest records it."""
    return {t: OutputCheck(e["max_abs_error"], e["tolerance"]) for t, e in errors.items()}


def _task_entry(t: str, network: int, e: _Exported) -> TaskOutput:
    ref = e.reference[t]
    d = _task_description(t, e.deploy.target_transforms.get(t))
    return TaskOutput(t, network, t, int(ref.shape[1]), "float32", d["meaning"], d["units"], d["transform"],
                      ("N", int(ref.shape[1]), int(ref.shape[2]), int(ref.shape[3])), d["loss"], d["value_range"],
                      e.atol[t])


def _separate_networks(exported: list[_Exported], tmp: Path, frames: np.ndarray, precision: str,
                       build: "_EngineBuild | None", say):
    """One model file (and engine) per network: the networks run as separate sessions."""
    networks, tasks, references = [], {}, {}
    for e in exported:
        onnx_path, errors = e.onnx_path, e.errors
        if precision == "fp16":
            onnx_path, errors = _to_fp16(onnx_path, e.data_path, e.reference, e.atol, frames, e.name)
        engine = build(onnx_path, precision, say) if build else None
        networks.append(NetworkFiles(e.name, tuple(e.deploy.tasks), onnx_path.name,
                                     e.data_path.name if e.data_path else None, engine.name if engine else None,
                                     e.net.cost, tuple(e.net.tasks), e.net.width, e.net.stage, e.checkpoint.name,
                                     _checks(errors), epoch=e.epoch, stopped_for=e.stopped_for))
        tasks.update({t: _task_entry(t, len(networks) - 1, e) for t in e.deploy.tasks})
        references.update(e.reference)
    return networks, tasks, references


def quantized_frames(frames: np.ndarray) -> np.ndarray:
    """float32 NCHW frames in [0, 1] rounded to 8 bits (k / 255): what a fused bundle's uint8 input can hold."""
    return (np.rint(frames * 255.0) / np.float32(255.0)).astype(np.float32)


def _nhwc_uint8(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.rint(frames * 255.0).astype(np.uint8).transpose(0, 2, 3, 1))


def _fused_network(grouping: Grouping, exported: list[_Exported], tmp: Path, frames: np.ndarray, precision: str,
                   build: "_EngineBuild | None", say):
    """All networks merged into one graph taking the uint8 frame (exporters.fuse): one session per frame.

    The per-network files were checked on the original frames; the fused graph is checked on the
    frames rounded to 8 bits, against PyTorch on the same rounded frames. Only the fused file ships.
    """
    import onnx


    say(f"fusing {len(exported)} network(s) into one graph")
    reference = {t: v for e in exported for t, v in torch_outputs(e.deploy, frames).items()}
    atol = {t: a for e in exported for t, a in e.atol.items()}
    fused = fuse_models([onnx.load(str(e.onnx_path)) for e in exported], height=frames.shape[2], width=frames.shape[3])
    path = tmp / f"{FUSED_NAME}.onnx"
    weights = sum(init.ByteSize() for init in fused.graph.initializer)
    external = weights > OnnxExportConfig().max_embedded_bytes
    onnx.save(fused, str(path), save_as_external_data=external, location=f"{FUSED_NAME}.onnx.data")
    for e in exported:
        e.onnx_path.unlink()
        if e.data_path is not None:
            e.data_path.unlink()
    data_path = tmp / f"{FUSED_NAME}.onnx.data" if external else None
    check_onnx(path)
    fp32_atol = atol if precision == "fp32" else {t: DEFAULT_ATOL["fp32"] for t in reference}
    errors = compare_outputs(reference, ort_outputs(path, _nhwc_uint8(frames)), fp32_atol,
                             f"{path.name} (ONNX Runtime CPU, uint8 frames)")
    if precision == "fp16":
        path, errors = _to_fp16(path, data_path, reference, atol, frames, FUSED_NAME)
    engine = build(path, precision, say) if build else None
    costs = [e.net.cost for e in exported]
    factor = grouping.corun_factor
    network = NetworkFiles(
        FUSED_NAME, tuple(t for e in exported for t in e.deploy.tasks), path.name,
        data_path.name if data_path else None, engine.name if engine else None,
        float(sum(costs)) * factor if all(c is not None for c in costs) else None, verification=_checks(errors),
        fused_from=tuple(FusedPart(e.name, tuple(e.deploy.tasks), tuple(e.net.tasks), e.net.width, e.net.stage,
                                   e.checkpoint.name, e.epoch, e.stopped_for or None, e.net.cost, _checks(e.errors))
                         for e in exported))
    tasks = {t: _task_entry(t, 0, e) for e in exported for t in e.deploy.tasks}
    return [network], tasks, reference


def _input_spec(fuse: bool, res: int, mean: list[float], std: list[float]) -> InputSpec:
    """The manifest's input: the networks' float32 NCHW image, or a fused graph's uint8 NHWC frame."""
    if fuse:
        return InputSpec(FUSED_INPUT, res, res, "uint8", "NHWC", "RGB", (0.0, 255.0), tuple(mean), tuple(std),
                         "inside the graph: float32(frame) * (1/255), NHWC -> NCHW, then (x - mean) / std per channel",
                         FRAME_FORMS, resize="area")
    return InputSpec(INPUT_NAME, res, res, "float32", "NCHW", "RGB", (0.0, 1.0), tuple(mean), tuple(std),
                     "inside the network: (x - mean) / std per channel", FRAME_FORMS, resize="area")


def _round_trip(bundle_dir: Path, frames: np.ndarray, references: dict[str, np.ndarray],
                task_entries: dict[str, TaskOutput], engines: bool, max_batch: int = 8) -> None:
    """Load the finished bundle with the deployment runtime and compare every task again."""

    checks = [("onnxruntime", "cpu")] + ([("tensorrt", "cuda")] if engines else [])
    for backend, device in checks:
        with load_bundle(bundle_dir, backend=backend, device=device, execution="sequential", warmup=0) as bundle:
            outs = {t: [] for t in bundle.tasks}
            step = min(8, max_batch)  # an engine accepts batches up to its optimisation profile's maximum
            for i in range(0, len(frames), step):
                for t, v in bundle.run(frames[i:i + step]).items():
                    outs[t].append(v)
        tol = {t: e.tolerance if backend == "onnxruntime" else max(e.tolerance, DEFAULT_ATOL["fp16"])
               for t, e in task_entries.items()}
        compare_outputs({t: references[t] for t in task_entries}, {t: np.concatenate(v) for t, v in outs.items()},
                        tol, f"the bundle loaded by the runtime ({backend}, {device})")
