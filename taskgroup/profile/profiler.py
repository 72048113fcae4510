"""Measure a device profile: MACs and latency of trunk and heads per width, checked on whole networks.

Reads straight through: build the preset's network at each width, count MACs per module,
turn trunk / heads / sampled whole networks into timed callables on the chosen backend,
time them all in interleaved rounds, then write the additive cost model and how well it
predicts the directly measured whole networks.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import write_json_atomic
from taskgroup_runtime.provenance import BackendSettings
from taskgroup.profile.corun import CorunFit, CorunSequence
from taskgroup.profile.costmodel import DeviceProfile
from taskgroup.profile.measurements import Component, LatencyStats, Validation, ValidatedNetwork, WidthCosts
from taskgroup.profile.provenance import DeviceRecord, LibraryVersions, OnnxExport, ProfileTiming
from taskgroup_runtime.timing import Timing, TimingConfig, measure
from taskgroup.tasks import TASKS
from taskgroup.presets import get_arch_preset
from taskgroup.profile.device import describe_device, library_versions, parse_device, resolve_backend, slug
from taskgroup.profile.pieces import PieceRunners
from taskgroup.tasks import parse_task_list
from taskgroup.models import create_model
from taskgroup.profile import onnxgraphs
from taskgroup.profile.macs import component_macs
from taskgroup_exporters.bundle import DEFAULT_ATOL

MAC_CONVENTION = (
    "fvcore 0.1.5 defaults: one multiply-add = one flop (reported as MACs); conv = N*prod(weight shape)*H_out*W_out "
    "(depthwise: C*k*k*H_out*W_out), bias not counted; eval batch norm = 2 per element (folded into conv by "
    "ONNX Runtime); nearest upsample = 1 per output element; ReLU, residual add and input normalisation not counted"
)
COST_MODEL = (
    "network_ms(width, served) = trunk_ms(width) + sum(head_ms(width, t) for t in served); trunk_ms is the trunk "
    "measured alone (one backend call); head_ms is the head measured alone on the trunk's features minus "
    "session_overhead (the fixed cost of one backend call, measured on an Identity graph or module), as a "
    "deployed network is one call"
)


@dataclass(frozen=True)
class ProfileConfig:
    device: str = "cpu"  # cpu, cuda or cuda:N
    backend: str = "auto"  # auto | torch | onnxruntime | onnxruntime-tensorrt | tensorrt (auto: onnxruntime on CPU, TensorRT on CUDA)
    preset: str = "default"  # architecture and input size (taskgroup.presets)
    tasks: tuple[str, ...] = tuple(TASKS)  # heads to profile
    widths: tuple[float, ...] = (1.0, 0.5)  # width multipliers to profile (1.0 is required: the SNT reference)
    batch: int = 1  # images per inference
    threads: int = 1  # intra-op threads per session (ONNX Runtime) or torch.set_num_threads (torch, CPU)
    allow_fallback: bool = False  # accept a GPU provider falling back to the CPU (recorded as such)
    precision: str = "fp32"  # fp32 | fp16: graphs converted as `export --precision fp16` converts them (not torch)
    fuse: bool = True  # time co-run sequences as one fused graph taking the uint8 frame, as export ships by default
    validation_networks: int = 4  # whole networks per width measured directly to check the cost model
    seed: int = 0  # random input and choice of validation networks
    timing: TimingConfig = field(default_factory=TimingConfig)  # warm-up and run counts
    arch: Any = None  # an ArchPreset overriding the preset's (a run whose --config changes [arch]); None: the preset's


def validate_config(config: ProfileConfig) -> None:
    if not config.tasks:
        raise TaskgroupError("no tasks to profile")
    if not config.widths or not any(math.isclose(w, 1.0) for w in config.widths):
        raise TaskgroupError(f"widths {list(config.widths)} must include 1.0 (the standard network, the SNT reference)")
    if any(not (0 < w <= 4) for w in config.widths) or len(set(config.widths)) != len(config.widths):
        raise TaskgroupError(f"widths must be distinct numbers in (0, 4], got {list(config.widths)}")
    if config.precision not in ("fp32", "fp16"):
        raise TaskgroupError(f"unknown precision '{config.precision}'; valid options: fp32, fp16")
    if config.precision == "fp16" and config.backend == "torch":
        raise TaskgroupError("--precision fp16 profiles the fp16 ONNX graphs export ships; use an ONNX backend "
                             "(onnxruntime, onnxruntime-tensorrt, tensorrt), not torch")
    if config.batch < 1 or config.threads < 1:
        raise TaskgroupError("batch and threads must be >= 1")
    if config.timing.min_runs < 1 or config.timing.min_seconds < 0 or config.timing.warmup_runs < 0:
        raise TaskgroupError("timing: need min_runs >= 1, min_seconds >= 0, warmup_runs >= 0")


def sample_served(tasks: tuple[str, ...], count: int, rng: random.Random) -> list[tuple[str, ...]]:
    """Whole networks to measure directly: all heads, one head, then random subsets of sizes in between."""
    chosen: list[tuple[str, ...]] = [tasks]
    if len(tasks) > 1 and count > 1:
        chosen.append(tasks[:1])
    sizes = list(range(2, len(tasks)))
    remaining = count - len(chosen)
    for i in range(max(0, remaining) * 10):  # a few retries in case a random subset repeats
        if len(chosen) >= count or not sizes:
            break
        k = sizes[((len(chosen) - 2) * len(sizes)) // max(1, remaining) % len(sizes)]
        picked = set(rng.sample(tasks, k))
        subset = tuple(t for t in tasks if t in picked)
        if subset not in chosen:
            chosen.append(subset)
    return chosen[:max(1, count)]


def run_profile(config: ProfileConfig, report: Callable[[str], None] | None = None) -> DeviceProfile:
    """Measure and return the profile (not yet written; `write_profile` writes it)."""

    say = report or (lambda msg: None)
    validate_config(config)
    tasks = parse_task_list(list(config.tasks))
    device = parse_device(config.device)
    backend_name = resolve_backend(config.backend, device)
    preset = config.arch if config.arch is not None else get_arch_preset(config.preset)
    pieces = PieceRunners(backend_name, device, config.threads, config.allow_fallback, config.precision)
    try:
        return _profile(config, tasks, device, backend_name, preset, pieces, say)
    finally:
        pieces.close()


def _profile(config: ProfileConfig, tasks, device, backend_name: str, preset, pieces, say) -> DeviceProfile:
    """Build, check and time every piece with `pieces`, then assemble the profile."""
    import torch

    started = time.perf_counter()
    gen = torch.Generator().manual_seed(config.seed)
    rng = random.Random(config.seed)
    shape = (config.batch, 3, preset.resolution, preset.resolution)

    per_width: list[dict[str, Any]] = []
    numerics: dict[str, float] = {}
    network_graphs: dict[str, bytes] = {}  # whole networks' graphs, fused into co-run sequences
    opset = None
    for width in config.widths:
        say(f"width {width:g}: building and counting MACs")
        torch.manual_seed(config.seed)
        model = create_model(preset.model, tasks, width, **preset.model_config).eval()
        image = torch.rand(shape, generator=gen)
        with torch.no_grad():
            features = model.trunk(image)
        trunk_macs, head_macs = component_macs(model, image)
        served_sets = sample_served(tasks, config.validation_networks, rng)
        key = f"w{width:g}"
        with torch.no_grad():
            reference = {t: h(features).numpy() for t, h in model.heads.items()}

        img, feat = image.numpy(), features.numpy()
        if backend_name == "torch":
            pieces.add_module(f"{key}/trunk", model.trunk, {onnxgraphs.IMAGE: img})
            for t in tasks:
                pieces.add_module(f"{key}/head/{t}", model.heads[t], {onnxgraphs.FEATURES: feat})
            for served in served_sets:
                pieces.add_module(f"{key}/net/{'+'.join(served)}", model.with_heads(served), {onnxgraphs.IMAGE: img})
            pieces.add_module(f"{key}/overhead", torch.nn.Identity(), {"x": feat})
        else:
            say(f"width {width:g}: exporting to ONNX and checking numerics")
            exported = onnxgraphs.export_network(model, image)
            opset = exported.opset
            tol = 1e-2 if backend_name == "tensorrt" else 1e-3  # TensorRT may use TF32 on recent GPUs
            if config.precision == "fp16":
                tol = DEFAULT_ATOL["fp16"]  # export's own tolerance for fp16 files

            def checked(name: str, graph: bytes, feed: dict, want: list, what: str) -> None:
                pieces.add_graph(name, graph, feed)
                numerics[name] = onnxgraphs.max_abs_diff(pieces.outputs(name), want, what, tol)

            checked(f"{key}/trunk", exported.trunk(), {onnxgraphs.IMAGE: img}, [feat], f"width {width:g} trunk")
            for t in tasks:
                checked(f"{key}/head/{t}", exported.head(t), {onnxgraphs.FEATURES: feat}, [reference[t]],
                        f"width {width:g} head '{t}'")
            for served in served_sets:
                network_graphs[f"{key}/net/{'+'.join(served)}"] = graph = exported.network(served)
                checked(f"{key}/net/{'+'.join(served)}", graph, {onnxgraphs.IMAGE: img},
                        [reference[t] for t in tasks if t in served], f"width {width:g} network {'+'.join(served)}")
            pieces.add_graph(f"{key}/overhead", onnxgraphs.identity_graph(features.shape, exported.opset), {"x": feat})
        per_width.append({"width": float(width), "key": key, "trunk_macs": trunk_macs, "head_macs": head_macs,
                          "served_sets": served_sets})

    # Co-run: whole networks called back to back, as a bundle runs them each frame. Each network
    # then starts with the others' data in cache, which the sum of standalone timings misses.
    net_keys = _corun_order([[f"{w['key']}/net/{'+'.join(s)}" for s in w["served_sets"]] for w in per_width])
    sequences = [net_keys[:k] for k in range(2, min(len(net_keys), CORUN_MAX_NETWORKS) + 1)]
    fused = config.fuse and backend_name != "torch"
    if fused:  # as `export --fuse` ships them: one graph per frame, taking the uint8 frame
        say(f"fusing {len(sequences)} co-run sequences")
        for seq in sequences:
            pieces.add_fused("corun/" + ",".join(seq), [network_graphs[k] for k in seq], config.seed)
    callables: dict[str, Callable[[], Any]] = {key: pieces.call(key) for key in pieces.runners}
    if not fused:  # as separate sessions, called back to back
        for seq in sequences:
            fns = [callables[k] for k in seq]
            callables["corun/" + ",".join(seq)] = lambda fns=fns: [fn() for fn in fns]

    say(f"timing {len(callables)} graphs ({config.timing.rounds} interleaved rounds)")
    timed = measure(callables, config.timing,
                    on_round=lambda r: say(f"timing round {r + 1}/{config.timing.rounds} done"))
    stats = {k: latency_stats(t) for k, t in timed.items()}

    widths: dict[float, WidthCosts] = {}
    measured_networks: list[ValidatedNetwork] = []
    for w in per_width:
        key = w["key"]
        trunk = Component(w["trunk_macs"].params, w["trunk_macs"].macs, stats[f"{key}/trunk"],
                          dict(w["trunk_macs"].by_operator))
        heads = {t: Component(m.params, m.macs, stats[f"{key}/head/{t}"], dict(m.by_operator))
                 for t, m in w["head_macs"].items()}
        widths[w["width"]] = WidthCosts(w["width"], trunk, heads, stats.get(f"{key}/overhead"))
        for served in w["served_sets"]:
            measured_networks.append(ValidatedNetwork(
                w["width"], tuple(served), trunk.params + sum(heads[t].params for t in served),
                trunk.macs + sum(heads[t].macs for t in served), stats[f"{key}/net/{'+'.join(served)}"]))

    fallback = device.kind == "cuda" and pieces.execution_provider == "CPUExecutionProvider"
    if fallback:  # never label a CPU timing as GPU: describe what really ran
        described = DeviceRecord.written(**describe_device(parse_device("cpu")),
                                         note=f"requested {device}; ran on the CPU")
    else:
        described = DeviceRecord.written(**describe_device(device))
    fit = corun_fit([
        {"networks": seq, "p50_ms": stats["corun/" + ",".join(seq)].p50,
         "sum_alone_p50_ms": sum(stats[k].p50 for k in seq)} for seq in sequences])
    profile = DeviceProfile(
        "", described, tuple(tasks), config.preset, tuple(shape), backend_name, pieces.execution_provider, widths,
        corun=fit["per_extra_network"],
        backend_settings=BackendSettings.parse({**pieces.settings(), "fused": fused}, "backend_settings",
                                               lambda f, problem: TaskgroupError(f"profiler: {f}: {problem}")),
        model=preset.model,
        model_config={k: list(v) if isinstance(v, tuple) else v for k, v in preset.model_config.items()},
        corun_fit=CorunFit(fit["per_extra_network"], tuple(CorunSequence(tuple(q["networks"]), q["p50_ms"],
                                                                         q["sum_alone_p50_ms"], q["ratio"])
                                                           for q in fit["sequences"]),
                           fit["fit_unclamped"], fit["model"],
                           "fused: the networks merged into one graph taking the uint8 frame, one call" if fused
                           else "separate: one call per network, back to back"),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), requested_device=str(device),
        fallback=fallback, libraries=LibraryVersions(library_versions()),
        onnx=None if backend_name == "torch" else OnnxExport.written(
            exporter="torch.onnx.export(dynamo=True, external_data=False, optimize=True)",
            opset=opset, max_abs_diff_vs_torch=max(numerics.values()) if numerics else None),
        timing=ProfileTiming.written(**asdict(config.timing), statistic_for_costs="p50", interleaved=True,
                                     clock="time.perf_counter around one synchronised inference"),
        notes={"input": "float32 RGB in [0, 1], NCHW (normalisation is inside the network)",
               "mac_convention": MAC_CONVENTION, "cost_model": COST_MODEL})
    # Check the cost model against the directly measured networks, using the loader's own arithmetic.
    checked = []
    for v in measured_networks:
        predicted = profile.network_ms(v.width, v.served)
        checked.append(replace(v, predicted_ms=predicted, relative_error=(predicted - v.latency.p50) / v.latency.p50))
    return replace(profile, validation=Validation("p50", tuple(checked)),
                   recorded_standard_network_ms=profile.standard_network_ms(),
                   duration_s=round(time.perf_counter() - started, 2))


def latency_stats(timing: Timing) -> LatencyStats:
    """Percentiles (ms) of the timed calls, and each interleaved round's median: their spread is the noise."""
    s = timing.summary()
    return LatencyStats(p50=s["p50_ms"], p90=s["p90_ms"], p99=s["p99_ms"], mean=s["mean_ms"], runs=s["runs"],
                        rounds_p50=tuple(timing.round_medians_ms()))


CORUN_MAX_NETWORKS = 5  # longest back-to-back sequence timed for the co-run fit


def _corun_order(keys_by_width: list[list[str]]) -> list[str]:
    """Whole networks alternating between widths (full, half, full, ...), so sequences mix sizes."""
    out = []
    for i in range(max((len(k) for k in keys_by_width), default=0)):
        out += [keys[i] for keys in keys_by_width if i < len(keys)]
    return out


def corun_fit(sequences: list[dict[str, Any]]) -> dict[str, Any]:
    """Fit latency(N networks run back to back) = sum of each alone x (1 + per_extra_network x (N - 1)).

    Least squares through the origin on (ratio - 1) against (N - 1), clamped at 0 (running
    networks together is never assumed to save time).
    """
    rows = []
    for seq in sequences:
        ratio = seq["p50_ms"] / seq["sum_alone_p50_ms"]
        rows.append({**seq, "ratio": ratio})
    num = sum((r["ratio"] - 1) * (len(r["networks"]) - 1) for r in rows)
    den = sum((len(r["networks"]) - 1) ** 2 for r in rows)
    return {"model": "grouping_ms = sum of network_ms x (1 + per_extra_network x (N - 1)), N = networks per frame",
            "per_extra_network": max(0.0, num / den) if den else 0.0, "fit_unclamped": num / den if den else 0.0,
            "sequences": rows}


def write_profile(profile: DeviceProfile, path: str | os.PathLike) -> None:
    """Write the profile atomically, as its contract writes it (`DeviceProfile.to_json`), after reading the
    document back through the contract's reader, so a profile that could not be loaded is never written."""
    doc = profile.to_json()
    DeviceProfile.from_json(doc, str(path))
    write_json_atomic(path, doc)


def default_profile_name(profile: DeviceProfile) -> str:
    """e.g. cpu-intel-r-xeon-r-processor-default (suffix -torch for a non-default backend)."""

    dev = profile.device
    what = dev.gpu_name if dev.kind == "cuda" else dev.cpu_model
    name = f"{dev.kind}-{slug(str(what))}-{profile.preset}"
    default_backend = "onnxruntime" if dev.kind == "cpu" else "tensorrt"
    return name if profile.backend == default_backend else f"{name}-{profile.backend}"
