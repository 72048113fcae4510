"""`taskgroup export` (grouping -> verified deployment bundle) and `taskgroup bench` (measure a bundle)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app, output_console
from taskgroup.errors import TaskgroupError
from taskgroup_exporters import OnnxExportConfig, export_bundle, read_grouping, synthetic_frames, validation_frames
from taskgroup_runtime.manifest import read_manifest
from taskgroup.train.store_integrity import verified_checkpoint_sha256
from taskgroup.train.config import make_run_config
from taskgroup.train.stored_config import training_run_of
from taskgroup.bench import measure_bundle
from taskgroup_runtime.timing import MAX_RUNS


@app.command("export", short_help="Write the chosen networks to a verified ONNX (and TensorRT) bundle.")
def export_command(
    grouping: Path = typer.Option(..., help="Grouping file written by `taskgroup select` (best.json)."),
    out: Path = typer.Option(..., help="Bundle directory to create (manifest.json + model files). It appears "
                                       "only when every check passed; a failed export leaves nothing behind."),
    format: str = typer.Option("onnx", "--format", help="onnx | tensorrt | all. tensorrt also writes the ONNX "
                                                       "files and fails if TensorRT is missing; all builds engines "
                                                       "only where TensorRT is importable and says why not otherwise. "
                                                       "Engines are built through Polygraphy (pip install "
                                                       "'taskgrouping\\[tensorrt]'), as the profiler builds them."),
    precision: str = typer.Option("fp32", help="fp32 | fp16. fp16 converts the ONNX graphs (weights and compute) "
                                               "and keeps float32 inputs and outputs. Must match the precision the "
                                               "grouping's profile was measured at, when it records one."),
    preset: Optional[str] = typer.Option(None, help="Only for networks outside a training run (no runs.sqlite above "
                                                    "their checkpoints): the preset they were trained with, which "
                                                    "fixes the input resolution and the validation data used to "
                                                    "check numerics (default: the one the grouping records, else "
                                                    "'default'). A run's networks are exported with the run's own "
                                                    "architecture, resolution and data."),
    config: Optional[Path] = typer.Option(None, help="Only for networks outside a training run: the TOML file they "
                                                     "were trained with (\\[arch], \\[data], \\[tasks.NAME]), "
                                                     "as for `train --config`."),
    frames: int = typer.Option(32, help="Validation frames on which every output is compared with PyTorch."),
    synthetic: bool = typer.Option(False, "--synthetic-frames", help="Check on deterministic synthetic frames "
                                                                     "instead of the training run's validation split."),
    exporter: str = typer.Option("dynamo", help="dynamo (torch.export based, default) | legacy (TorchScript based, "
                                                "deprecated by PyTorch)."),
    fuse: Optional[bool] = typer.Option(None, "--fuse/--no-fuse", help="Merge the networks into one ONNX graph that "
                                        "takes the uint8 camera frame (input conversion inside; one session per frame; "
                                        "measured faster than separate sessions), or ship one model per network. "
                                        "Default: as the grouping's profile timed them, else fused. A fused bundle "
                                        "takes float32 frames only when they hold 8-bit values (uint8 image / 255)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier bundle at --out (a directory holding a bundle manifest) or an "
                                                         "empty directory; anything else is refused, never deleted. Only "
                                                         "the files the earlier manifest lists are replaced; other files "
                                                         "there (e.g. a calibration file) are kept."),
) -> None:
    """Export the networks of a grouping to ONNX (and TensorRT engines), dropping the heads of tasks each
    network does not serve, verify every output against PyTorch within a per-task tolerance, and write
    manifest.json with the input spec, output specs, file hashes and the budget it was selected for.
    By default the networks are merged into one graph taking the uint8 frame (--no-fuse: one model each).
    Every checkpoint must match the sha256 its training run recorded (RUN/runs.sqlite) or the grouping's
    checkpoint_sha256; a changed one is refused with the command that retrains it."""
    from rich.console import Console
    from rich.markup import escape


    console = Console(stderr=True)
    if frames < 1:
        raise TaskgroupError(f"--frames must be >= 1, got {frames}")
    g = read_grouping(grouping)
    run_config, what = _training_config(g, preset, config)
    resolution = run_config.arch.resolution
    _check_profile_matches(g, resolution, what)
    if synthetic:
        images = synthetic_frames(frames, resolution)
        source = f"synthetic ({frames} deterministic random and structured frames, {resolution}px)"
    else:
        with console.status("loading validation frames"):
            images, source = validation_frames(run_config.data, g.tasks, frames)
    with console.status("exporting") as status:
        path = export_bundle(grouping, out, format, precision, images, frames_source=source, overwrite=overwrite,
                             onnx_config=OnnxExportConfig(exporter=exporter), fuse=fuse,
                             verify_checkpoint=verified_checkpoint_sha256,
                             log=lambda msg: (status.update(f"exporting: {escape(msg)}"), console.print(escape(msg))))
    manifest = read_manifest(path)
    console.print(f"wrote {path}: {len(manifest.networks)} network(s), tasks {', '.join(manifest.tasks)}; "
                  f"checked on {source}")
    console.print(f"content_sha256 {manifest.content_sha256}: pin it in the robot's configuration "
                  "(load_bundle(path, expected_digest=...)) to refuse any other bundle")
    for net in manifest.networks:
        worst = max(v.max_abs_error / v.tolerance for v in net.verification.values())
        parts = net.fused_from
        console.print(f"  {net.name}: {', '.join(net.tasks)} -> {net.onnx}" + (f" + {net.engine}" if net.engine else "")
                      + f" (worst error {worst:.1%} of tolerance)"
                      + (f"; one graph of {', '.join(p.name for p in parts)} taking the uint8 frame" if parts else ""))
    if not manifest.tensorrt.built and format != "onnx":
        console.print(escape(f"no TensorRT engines: {manifest.tensorrt.reason}"))  # it names 'taskgrouping[tensorrt]'


def _training_config(grouping, preset: Optional[str], config: Optional[Path]):
    """How the grouping's networks were trained: their training run's own config (architecture,
    resolution, data, declared tasks), found from their checkpoints; --preset/--config only for
    networks outside a run. Returns the RunConfig and a description for messages."""

    found = training_run_of(grouping)
    if found is not None:
        run_dir, run_config = found
        if preset is not None or config is not None:
            asked = make_run_config(preset or run_config.preset, config)
            mine, theirs = asked.to_dict(), run_config.to_dict()  # plain JSON forms (tuples read back as lists)
            if (mine["arch"], mine["data"]) != (theirs["arch"], theirs["data"]):
                flags = " and ".join(f for f, v in (("--preset", preset), ("--config", config)) if v is not None)
                raise TaskgroupError(f"{grouping.path}: its networks were trained in {run_dir}, whose config says "
                                     f"their architecture ({run_config.arch.resolution}x{run_config.arch.resolution} "
                                     f"px) and data; {flags} describe(s) other ones: leave {flags} out")
        return run_config, f"its training run {run_dir} ({run_config.arch.resolution}x{run_config.arch.resolution} px)"
    preset = preset or grouping.options.preset or grouping.budget.preset or "default"
    run_config = make_run_config(preset, config)  # declares the config's [tasks.NAME]
    trained = grouping.options.resolution
    resolution = run_config.arch.resolution
    if trained is not None and trained != resolution:
        raise TaskgroupError(f"{grouping.path}: the networks were trained at {trained}x{trained} (preset "
                             f"'{grouping.options.preset}'), but --preset {preset}"
                             f"{'' if config is None else f' with --config {config}'} is {resolution}x{resolution}; "
                             "export with the training run's preset and config")
    return run_config, f"--preset {preset}" + ("" if config is None else f" --config {config}")


def _check_profile_matches(grouping, resolution: int, what: str) -> None:
    """A grouping selected on a profile records its input shape; exporting at another resolution
    would verify and ship networks at a size nobody measured."""
    budget = grouping.budget
    shape = budget.input_shape
    if shape is not None and len(shape) == 4 and shape[2:] != (resolution, resolution):
        raise TaskgroupError(f"{grouping.path}: the grouping was selected on a profile of input {shape[2]}x{shape[3]} "
                             f"(preset '{budget.preset}'), but the networks take {resolution}x{resolution} "
                             f"({what}); "
                             + (f"pass --preset {budget.preset}" if what.startswith("--preset") and
                                budget.preset else "profile with the networks' own config and select again"))


@app.command("bench", short_help="Measure a bundle per frame, next to each of its networks alone.")
def bench_command(
    bundle_dir: Path = typer.Argument(..., help="Bundle directory written by `taskgroup export`."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    backend: str = typer.Option("auto", help="auto | onnxruntime | onnxruntime-tensorrt | tensorrt."),
    execution: str = typer.Option("auto", help="auto (measured at load) | sequential | concurrent: how the "
                                               "bundle's networks share the device."),
    runs: int = typer.Option(300, help="Timed frames at least, of the whole bundle and of each network alone (after "
                                        "20 warm-up frames; more until each has 0.3 s of timed work, as the profiler "
                                        "times); batch 1, uint8 HWC input. All are timed in the same interleaved "
                                        "rounds."),
    allow_fallback: bool = typer.Option(False, "--allow-fallback", help="Accept ONNX Runtime placing a "
                                                                        "network on another provider than asked."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="ONNX Runtime intra-op threads per "
                                          "session. Default: the thread count the grouping's profile was measured "
                                          "with (so measured and predicted latency compare like with like), else "
                                          "all cores."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the numbers to this JSON file."),
) -> None:
    """Measure per-frame latency of the whole bundle (p50/p90/p99 in ms, pre-processing included) and
    compare it with the budget, with the profile's prediction, and with the sum of each network's
    latency when run alone. Timed with the profiler's own timing function, as the pipeline times it."""
    from rich.table import Table



    if not 10 <= runs <= MAX_RUNS:
        raise TaskgroupError(f"--runs must be an integer from 10 (for a p99) to {MAX_RUNS}, got {runs}")
    result = measure_bundle(bundle_dir, device=device, backend=backend, execution=execution, threads=threads,
                            allow_fallback=allow_fallback, runs=runs)
    whole, load_report = result.whole, result.runtime.get("load_report", {})
    table = Table(title=f"{bundle_dir} on {result.device} ({result.backend}, {result.execution} execution)"
                  + (f" [fell back: {load_report['fallback']}]" if "fallback" in load_report else ""))
    for col in ("", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(col, justify="right" if col else "left", overflow="fold")

    manifest = read_manifest(bundle_dir)
    fused = [n for n in manifest.networks if n.fused_from]
    table.add_row("whole bundle", *(f"{getattr(whole, k):.3f}" for k in ("p50_ms", "p90_ms", "p99_ms")))
    for a in result.standalone:
        label = (f"{a.network} graph alone (one session; {len(fused[0].fused_from)} networks inside)" if fused
                 else f"{a.network} alone ({'+'.join(a.tasks)})")
        table.add_row(label, *(f"{getattr(a.latency, k):.3f}" for k in ("p50_ms", "p90_ms", "p99_ms")))
    console = output_console()
    console.print(table)
    if fused:  # one graph: its networks cannot be timed apart, and "alone" is the same graph without the runtime
        console.print(f"a fused bundle is one graph of {', '.join(p.name for p in fused[0].fused_from)}: its "
                      f"networks cannot be timed one by one (export with --no-fuse for that); bundle / graph alone = "
                      f"{result.ratio_to_standalone_sum:.3f} (the runtime's own per-frame work)")
    else:
        console.print(f"sum of standalone p50: {result.standalone_p50_sum_ms:.3f} ms; bundle / sum = "
                      f"{result.ratio_to_standalone_sum:.3f}")
    if result.budget_ms is not None:
        console.print(f"budget: {result.budget_ms:g} ms -> " + "; ".join(
            f"{q} {getattr(whole, q + '_ms'):.3f} ms {'within' if getattr(whole, q + '_ms') <= result.budget_ms else 'OVER'}"
            for q in ("p50", "p99")))
    else:
        console.print(f"budget: {result.budget_value} {result.budget_unit or '?'} (not in ms; no latency comparison)")
    sel = manifest.selection
    if result.predicted_ms is not None:
        console.print(f"predicted by profile {sel.profile}: {result.predicted_ms:.3f} ms; measured p50 / "
                      f"predicted = {result.measured_over_predicted:.3f}"
                      + ("" if sel.device else " (profile device unknown: compare only on the same machine)"))
    else:
        console.print("no latency prediction in the manifest (grouping selected in SNT units)")
    if json_out is not None:
        result.save(json_out)
