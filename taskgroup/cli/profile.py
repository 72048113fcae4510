"""`taskgroup profile`: measure the cost of every candidate architecture on this device."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app
from taskgroup.errors import TaskgroupError
from taskgroup.profile.costmodel import DeviceProfile
from taskgroup.profile.profiler import ProfileConfig, default_profile_name, run_profile, write_profile
from taskgroup_runtime.timing import MAX_RUNS, TimingConfig
from taskgroup.tasks import TASKS, parse_task_list
from taskgroup.train.config import make_run_config
from taskgroup.losstable import LossTable
from taskgroup.presets import ArchPreset


@app.command("profile", short_help="Measure MACs and latency (ms) of trunks and heads on a device.")
def profile_command(
    device: str = typer.Option("cpu", help="Device to time on: cpu, cuda or cuda:N."),
    backend: str = typer.Option(
        "auto", help="auto | torch | onnxruntime | onnxruntime-tensorrt | tensorrt. auto = ONNX Runtime on the CPU "
                     "(what the deployment runtime uses); on CUDA TensorRT when importable, else ONNX Runtime's "
                     "TensorRT provider if installed, else its CUDA provider (the runtime's own choice)."),
    tasks: Optional[str] = typer.Option(None, help="Comma-separated tasks whose heads to profile (default: all "
                                                   "built-in tasks and those --config declares)."),
    preset: str = typer.Option("default", help="Architecture and input-size preset (taskgroup.presets)."),
    config: Optional[Path] = typer.Option(None, help="The training config (TOML): its \\[arch] table and its "
                                                     "\\[tasks.NAME] declarations are used, so the profile costs "
                                                     "the networks that run trains."),
    run: Optional[Path] = typer.Option(None, "--run", help="A training run (its directory or losses.json): profile "
                                                          "the networks it trains, with its own architecture, input "
                                                          "size, preset and declared tasks (default --tasks: the "
                                                          "run's). Instead of --preset/--config."),
    widths: str = typer.Option("1.0,0.5", help="Width multipliers to profile; 1.0 (the standard network) is required."),
    batch: int = typer.Option(1, help="Images per inference."),
    threads: int = typer.Option(1, help="Intra-op threads per ONNX Runtime session (or torch threads); recorded. "
                                        "Deploy with the same setting for the costs to hold."),
    min_runs: int = typer.Option(50, help="Minimum timed runs per measured graph (after 10 warm-up runs)."),
    min_seconds: float = typer.Option(0.3, help="Minimum timed seconds per measured graph; runs are added until "
                                                "both minimums are met."),
    validation_networks: int = typer.Option(4, help="Whole networks per width timed directly to check the "
                                                    "trunk + heads cost model."),
    precision: str = typer.Option("fp32", help="fp32 | fp16. fp16 times the graphs converted as `export --precision "
                                               "fp16` converts them (weights and compute in fp16, float32 inputs and "
                                               "outputs; TensorRT engines are strongly typed, so their precision is the "
                                               "graph's). Export the grouping at the same precision."),
    fuse: bool = typer.Option(True, "--fuse/--no-fuse", help="Time the co-run sequences (networks per frame) as "
                                                          "one fused graph taking the uint8 frame, as `export` ships "
                                                          "them by default, or as separate sessions back to back "
                                                          "(`export --no-fuse`). Recorded; export follows it."),
    allow_fallback: bool = typer.Option(False, "--allow-fallback",
                                        help="Accept a GPU provider falling back to the CPU; the profile then "
                                             "records the CPU. Without it a fallback is an error."),
    out: Optional[Path] = typer.Option(None, help="Output JSON (default: profiles/<device>-<model>-<preset>.json)."),
) -> None:
    """Measure parameters, MACs (fvcore: one multiply-add = one flop) and latency in milliseconds
    (p50/p90/p99, batch 1) of the shared trunk and of every task head at each width, and check that
    trunk + served heads predicts whole networks. Selection reads the result with --profile."""
    from rich.console import Console

    if not 1 <= min_runs <= MAX_RUNS:
        raise TaskgroupError(f"--min-runs must be an integer from 1 to {MAX_RUNS}, got {min_runs}")
    if not (math.isfinite(min_seconds) and min_seconds >= 0):
        raise TaskgroupError(f"--min-seconds must be a number >= 0, got {min_seconds:g}")
    arch, run_tasks = None, None
    if run is not None:
        if config is not None:
            raise TaskgroupError("give --run RUN or --config FILE, not both (a run's config is its own)")
        preset, arch, run_tasks = _run_architecture(run)
    run_config = make_run_config(preset, config) if config is not None else None  # declares [tasks.NAME]
    declared = tuple(s.name for s in run_config.declared_tasks) if run_config is not None else ()
    if run_config is not None:
        arch = run_config.arch

    try:
        width_list = tuple(float(w) for w in widths.split(",") if w.strip())
    except ValueError:
        raise TaskgroupError(f"--widths: expected comma-separated numbers such as 1.0,0.5, got '{widths}'") from None
    config = ProfileConfig(
        device=device, backend=backend, preset=preset,
        tasks=parse_task_list(tasks) if tasks else run_tasks or tuple(TASKS) + declared, widths=width_list,
        batch=batch, threads=threads, arch=arch,
        allow_fallback=allow_fallback, precision=precision, fuse=fuse, validation_networks=validation_networks,
        timing=TimingConfig(min_runs=min_runs, min_seconds=min_seconds),
    )
    console = Console(stderr=True)
    with console.status("profiling") as status:
        profile = run_profile(config, report=lambda msg: status.update(f"profiling: {msg}"))
    path = out or Path("profiles") / f"{default_profile_name(profile)}.json"
    write_profile(profile, path)
    _summary(console, profile, path)


def _summary(console, profile: DeviceProfile, path: Path) -> None:
    from rich.table import Table

    device = profile.device.gpu_name or profile.device.cpu_model
    table = Table(title=f"{profile.backend} ({profile.execution_provider}) on {device}, "
                        f"input {'x'.join(map(str, profile.input_shape))}")
    table.add_column("width")
    table.add_column("part")
    table.add_column("MACs", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p90 ms", justify="right")
    table.add_column("runs", justify="right")
    for wc in profile.widths.values():
        for name, part in [("trunk", wc.trunk)] + [(f"head {t}", h) for t, h in wc.heads.items()]:
            lat = part.latency
            table.add_row(f"{wc.width:g}", name, f"{part.macs:,}", f"{lat.p50:.4f}", f"{lat.p90:.4f}", str(lat.runs))
        if wc.session_overhead:
            table.add_row(f"{wc.width:g}", "call overhead", "", f"{wc.session_overhead.p50:.4f}", "", "")
    console.print(table)
    v = profile.validation
    console.print(f"cost model (trunk + served heads) vs {len(v.networks)} whole networks: max |error| "
                  f"{100 * v.max_abs_relative_error:.1f}%, mean {100 * v.mean_abs_relative_error:.1f}% at p50; "
                  f"standard network {profile.recorded_standard_network_ms:.4f} ms; took {profile.duration_s:.0f} s")
    console.print(f"wrote {path}")


def _run_architecture(run: Path):
    """(preset, ArchPreset, tasks) of a training run, from its loss table (which registers its declared tasks)."""

    table = LossTable.load(run)
    doc = table.meta.get("run_config") if isinstance(table.meta, dict) else None
    arch = doc.get("arch") if isinstance(doc, dict) else None
    if not isinstance(arch, dict) or not isinstance(doc.get("preset"), str):
        raise TaskgroupError(f"{run}: the loss table records no run config (meta.run_config with preset and arch): "
                             "it was not written by `taskgroup train`; profile with --preset/--config instead")
    try:
        return doc["preset"], ArchPreset(model=arch["model"], model_config=dict(arch["model_config"]),
                                         resolution=int(arch["resolution"])), tuple(table.tasks)
    except (KeyError, TypeError, ValueError) as exc:
        raise TaskgroupError(f"{run}: meta.run_config.arch is malformed ({exc})") from exc
