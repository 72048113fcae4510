"""Run every CUDA path of taskgroup in a few minutes, or the same steps on the CPU.

    PYTHONPATH=.gpu-deps python benchmarks/gpu_check.py --device cuda:0  # a GPU machine (docs/profiling.md)
    python benchmarks/gpu_check.py --device cpu --preset tiny           # the CPU run (CI): every step but CUDA's

Steps, each run as a user runs it (`python -m taskgroup ...` in a subprocess, so a crash in one
step is reported and the next one still runs):

 1. environment   machine, CPU, driver, CUDA, torch, GPU names, what is importable
 2. doctor        `taskgroup doctor --json`
 3. profile       `taskgroup profile --device D` with each backend that can run here (torch; ONNX
                  Runtime's CUDA and TensorRT providers; native TensorRT) on the last preset, and
                  its validation networks against trunk + heads (within 10%: a warning otherwise,
                  as timing depends on the machine's load); on CUDA also the gpu preset (torch)
 4. train         per preset, the candidate pairs of three tasks on D (local executor); on CUDA a
                  CPU reference on the same machine: losses close to the CPU's (median relative
                  difference within CROSS_DEVICE_MEDIAN_TOLERANCE) and networks per minute
 5. processes     the same candidates with `--executor processes:N --devices D,...`: on the CPU
                  bit-identical to the local executor; on CUDA close to it
 6. bundle        `select` and `export --format all` on the last preset's run, then the bundle on
                  every ONNX Runtime provider (and TensorRT backend) that runs here, outputs
                  against PyTorch on D, and `taskgroup bench` on each

A step that cannot run here (no CUDA device, a provider not in this onnxruntime build, TensorRT or
fvcore not importable), or whose input a failed step did not make, is `skipped` with its reason; a
failed step keeps the command's last stderr lines. Writes gpu_check-<device>.json and .md into
--out; exit code 0 when no step failed (warnings allowed), 1 when one did, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

DEFAULT_TASKS = "segment_semantic,depth_zbuffer,normal"
PROFILE_TOLERANCE = 0.10  # whole networks measured directly against trunk + served heads (p50)
# A network trained on a GPU against the same network trained on the CPU: the median over (network,
# task) of |GPU - CPU| / CPU validation loss. Different devices sum in other orders, so training
# drifts apart the way another seed does; seeds 0 and 1 on the CPU (pairs of three tasks, 12 (network,
# task) losses; benchmarks/seed_spread.py, results/seed_spread.json): median 1.4% (tiny), 0.7% (default),
# 1.5% (wide); at most 4.2%.
CROSS_DEVICE_MEDIAN_TOLERANCE = 0.03
BUNDLE_BUDGET_SNT = 2.0  # the budget `select` picks the exported grouping at (SNT: no profile needed)
BUNDLE_FRAMES = 16  # validation frames the bundle is checked on


@dataclass
class Step:
    name: str
    status: str = "ok"  # ok | warning | failed | skipped
    seconds: float = 0.0
    summary: str = ""  # one line for the Markdown table
    reason: str | None = None  # why it was skipped, or what failed
    detail: dict[str, Any] = field(default_factory=dict)


class Check:
    """Runs the steps in order, printing progress; each step records what it found in a Step."""

    def __init__(self, args: argparse.Namespace, work: Path):
        self.args = args
        self.work = work
        self.steps: list[Step] = []
        self.started = time.perf_counter()
        # Commands run in `work`: a relative PYTHONPATH entry (e.g. `.gpu-deps`, the carried wheels) must
        # still point where it pointed here.
        paths = [str(REPO)] + [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths),
                        TASKGROUP_CACHE=str((args.cache_dir or work / "cache").resolve()), COLUMNS="160")

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f} s] {text}", flush=True)

    def run(self, name: str, fn: Callable[[Step], None]) -> Step:
        step = Step(name)
        self.say(f"{name} ...")
        t0 = time.perf_counter()
        try:
            fn(step)
        except Skip as exc:
            step.status, step.reason = "skipped", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed step is a finding; the next steps still run
            step.status, step.reason = "failed", f"{type(exc).__name__}: {exc}"
            # What fixing it needs, kept in the JSON: a GPU machine may be lent only once.
            step.detail["stderr_tail"] = getattr(exc, "stderr_tail", None)
            step.detail["traceback"] = traceback.format_exc().splitlines()[-30:]
        step.seconds = round(time.perf_counter() - t0, 1)
        self.steps.append(step)
        self.say(f"{name}: {step.status} in {step.seconds:.1f} s"
                 + (f" - {step.summary}" if step.summary else "") + (f" ({step.reason})" if step.reason else ""))
        return step

    def cli(self, *args: str, timeout: float | None = None) -> tuple[str, float]:
        """`python -m taskgroup ARGS` from the source tree; its stdout and wall time. Raises on a non-zero exit."""
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "taskgroup", *args], capture_output=True, text=True, env=self.env,
                             cwd=self.work, timeout=timeout or self.args.step_timeout)
        seconds = time.perf_counter() - t0
        if out.returncode != 0:
            lines = out.stderr.strip().splitlines() or ["(no output)"]
            raise CommandFailed(f"taskgroup {args[0]} exited with {out.returncode}: {lines[-1]}", lines[-60:])
        return out.stdout, seconds


class Skip(Exception):
    """The step cannot run here; the message says why."""


class CommandFailed(RuntimeError):
    def __init__(self, message: str, stderr_tail: list[str]):
        super().__init__(message)
        self.stderr_tail = stderr_tail  # the command's last lines of stderr (its traceback, if it crashed)


# ---- what this machine has ---------------------------------------------------------------------

def environment(step: Step) -> None:
    import numpy
    import torch

    from taskgroup.doctor import nvidia_gpus
    from taskgroup.profile.device import cpu_model

    def version(module: str) -> str | None:
        if importlib.util.find_spec(module) is None:
            return None
        try:
            return str(getattr(__import__(module), "__version__", "installed"))
        except Exception as exc:  # noqa: BLE001 - e.g. tensorrt present but its libraries missing
            return f"fails to import ({type(exc).__name__}: {exc})"

    cuda = torch.cuda.is_available()
    import onnxruntime

    step.detail = {
        "host": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "torch": torch.__version__, "torch_cuda_build": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "nvidia_smi": nvidia_gpus(), "numpy": numpy.__version__, "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        **{name: version(name) for name in ("onnx", "onnxscript", "fvcore", "polygraphy", "tensorrt")},
    }
    gpus = step.detail["gpus"]
    step.summary = (f"{', '.join(gpus)} (driver and name: {'; '.join(step.detail['nvidia_smi']) or '?'}), "
                    if gpus else "no CUDA device, ") + f"torch {torch.__version__}, CUDA {torch.version.cuda}"


def cuda_devices() -> list[str]:
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


# ---- steps ---------------------------------------------------------------------------------------

def doctor(check: Check, step: Step) -> None:
    path = check.work / "doctor.json"
    check.cli("doctor", "--json", str(path))
    findings = json.loads(path.read_text())["findings"]
    step.detail = {"findings": findings}
    missing = [f"{f['item']}" for f in findings[:-1] if f["status"] == "missing"]
    step.summary = findings[-1]["detail"] + (f"; missing: {', '.join(missing)}" if missing else "")


def profile_backends(device: str) -> list[tuple[str, str | None]]:
    """(backend, None) for each profile backend that can run on `device`, or (backend, why not)."""
    from taskgroup_runtime.backends import backend_status

    out: list[tuple[str, str | None]] = [("torch", None)]
    if device == "cpu":
        out.append(("onnxruntime", None))
        out += [(b, "needs a CUDA device") for b in ("onnxruntime-tensorrt", "tensorrt")]
        return out
    for backend in ("onnxruntime", "onnxruntime-tensorrt", "tensorrt"):
        ok, why = backend_status(backend, device)
        out.append((backend, None if ok else why))
    return out


def profile(check: Check, step: Step, backend: str, preset: str, tasks: str) -> None:
    if importlib.util.find_spec("fvcore") is None:
        raise Skip("fvcore cannot be imported (the profile counts MACs with it): carry its wheels, "
                   "docs/profiling.md 'Checking a GPU machine'")
    out = check.work / f"profile-{preset}-{backend}.json"
    a = check.args
    _, seconds = check.cli("profile", "--device", a.device, "--backend", backend, "--preset", preset, "--tasks", tasks,
                           "--widths", a.widths, "--min-runs", str(a.min_runs), "--min-seconds", str(a.min_seconds),
                           "--out", str(out))
    doc = json.loads(out.read_text())
    error = doc["validation"]["max_abs_relative_error"]
    step.detail = {"profile": doc["device"], "execution_provider": doc["execution_provider"],
                   "standard_network_ms": doc["standard_network_ms"], "max_abs_relative_error": error,
                   "mean_abs_relative_error": doc["validation"]["mean_abs_relative_error"],
                   "validation": [{k: v[k] for k in ("width", "served", "predicted_ms", "relative_error")}
                                  | {"measured_p50_ms": v["latency_ms"]["p50"]} for v in doc["validation"]["networks"]],
                   "corun_per_extra_network": doc["corun"]["per_extra_network"],
                   "onnx_max_abs_diff_vs_torch": (doc.get("onnx") or {}).get("max_abs_diff_vs_torch"),
                   "duration_s": doc["duration_s"], "command_s": round(seconds, 1)}
    step.summary = (f"{doc['execution_provider']}: standard network {doc['standard_network_ms']:.3f} ms; trunk + heads "
                    f"vs {len(doc['validation']['networks'])} whole networks: max error {error:.1%}")
    if error > PROFILE_TOLERANCE:
        step.status = "warning"
        step.reason = f"the cost model is {error:.1%} off on a whole network (tolerance {PROFILE_TOLERANCE:.0%})"


def train(check: Check, step: Step, preset: str, tasks: str, out: Path, *extra: str) -> dict[str, Any]:
    """`taskgroup train` of the candidate pairs; returns the loss table and the timings."""
    if check.args.epochs is not None:
        config = check.work / f"epochs-{check.args.epochs}.toml"
        config.write_text(f"[train]\nepochs = {check.args.epochs}\n")
        extra = (*extra, "--config", str(config))
    stdout, seconds = check.cli("train", "--tasks", tasks, "--candidates", "pairs", "--preset", preset,
                                "--out", str(out), *extra)
    table = json.loads((out / "losses.json").read_text())
    nets = [n for n in table["networks"] if n["stage"] == "final"]
    train_s = sum(n["wall_time_s"] for n in nets)
    run = {"networks": len(nets), "command_s": round(seconds, 1), "training_s": round(train_s, 1),
           "networks_per_minute_training": round(60 * len(nets) / train_s, 2),
           "networks_per_minute_command": round(60 * len(nets) / seconds, 2), "table": table}
    step.detail.update({k: v for k, v in run.items() if k != "table"})
    step.summary = (f"{len(nets)} networks, {run['networks_per_minute_training']:.1f} per minute of training "
                    f"({run['command_s']:.0f} s with start-up and data)")
    return run


def loss_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """|a - b| / b per (network, task) on the validation split, and whether the tables are identical."""
    def by_key(table):
        return {(tuple(n["tasks"]), n["width"], n["stage"]): n["losses"] for n in table["networks"]}

    ka, kb = by_key(a), by_key(b)
    if ka.keys() != kb.keys():
        raise RuntimeError(f"the runs trained different networks: {sorted(ka.keys() ^ kb.keys())}")
    rel = [abs(ka[k]["val"][t] - kb[k]["val"][t]) / abs(kb[k]["val"][t]) for k in kb for t in kb[k]["val"]]
    return {"identical": ka == kb, "entries": len(rel), "median_relative_difference": statistics.median(rel),
            "max_relative_difference": max(rel)}


def compare(step: Step, what: str, diff: dict[str, Any], must_be_identical: bool) -> None:
    step.detail[f"vs {what}"] = diff
    text = ("identical losses" if diff["identical"] else
            f"median {diff['median_relative_difference']:.2%}, max {diff['max_relative_difference']:.2%} apart")
    step.summary += f"; vs {what}: {text}"
    if must_be_identical and not diff["identical"]:
        step.status, step.reason = "failed", f"losses differ from {what}; on the CPU they must be bit-identical"
    elif diff["median_relative_difference"] > CROSS_DEVICE_MEDIAN_TOLERANCE:
        step.status = "failed"
        step.reason = (f"losses {diff['median_relative_difference']:.2%} (median) from {what}, more than the "
                       f"{CROSS_DEVICE_MEDIAN_TOLERANCE:.0%} two seeds differ by")


def pick_grouping(check: Check, run: Path) -> Path:
    best = check.work / "best.json"
    check.cli("select", "--losses", str(run), "--budget", str(BUNDLE_BUDGET_SNT), "--out", str(best))
    return best


def export(check: Check, step: Step, grouping: Path) -> Path:
    bundle = check.work / "bundle"
    check.cli("export", "--grouping", str(grouping), "--out", str(bundle), "--format", "all",
              "--frames", str(BUNDLE_FRAMES))
    manifest = json.loads((bundle / "manifest.json").read_text())
    step.detail = {"networks": [n.get("tasks") for n in manifest["networks"]], "graph": manifest.get("graph"),
                   "tensorrt": manifest.get("tensorrt"), "opset_requested": manifest["created_with"].get("opset_requested")}
    step.summary = (f"{len(manifest['networks'])} network(s), {manifest.get('graph')} graph; TensorRT engines: "
                    + ("built" if manifest["tensorrt"].get("built") else f"none ({manifest['tensorrt'].get('reason')})"))
    return bundle


def bundle_backends(device: str) -> list[tuple[str, str, str | None]]:
    """(backend, device, None) for each way the runtime can run a bundle here, or (..., why not)."""
    from taskgroup_runtime.backends import backend_status

    out: list[tuple[str, str, str | None]] = [("onnxruntime", "cpu", None)]
    if device == "cpu":
        out += [(b, "cuda:0", "needs a CUDA device") for b in ("onnxruntime", "onnxruntime-tensorrt", "tensorrt")]
        return out
    for backend in ("onnxruntime", "onnxruntime-tensorrt", "tensorrt"):
        ok, why = backend_status(backend, device)
        out.append((backend, device, None if ok else why))
    return out


def torch_reference(grouping_path: Path, frames, device: str) -> dict[str, Any]:
    """Each served task's output of the grouping's PyTorch networks on `device` (outputs in the data's units)."""
    import torch

    from taskgroup.grouping import Grouping
    from taskgroup.models import load_checkpoint

    grouping = Grouping.load(grouping_path)
    out = {}
    for net in grouping.networks:
        model = load_checkpoint(grouping.checkpoint_path(net))
        model = (model.with_heads(net.served) if set(net.served) != set(model.tasks) else model).in_dataset_units()
        model = model.to(device).eval()
        with torch.no_grad():
            for task, value in model(torch.as_tensor(frames).to(device)).items():
                out[task] = value.float().cpu().numpy()
    return out


def run_bundle(check: Check, step: Step, bundle: Path, backend: str, device: str, reference: dict, frames,
               tolerance: float) -> None:
    """Outputs of the bundle on (backend, device) against PyTorch, then `taskgroup bench` on it."""
    import numpy as np

    from taskgroup_runtime import load_bundle

    with load_bundle(bundle, backend=backend, device=device, execution="sequential", warmup=1) as b:
        got = b.run(frames)
        providers = b.describe()
    errors = {}
    for task, ref in reference.items():
        err = float(np.max(np.abs(got[task].astype(np.float64) - ref)))
        limit = tolerance * max(1.0, float(np.max(np.abs(ref))))
        errors[task] = {"max_abs_error": err, "tolerance": limit}
    worst = max(e["max_abs_error"] / e["tolerance"] for e in errors.values())
    bench_json = check.work / f"bench-{backend}-{device.replace(':', '')}.json"
    check.cli("bench", str(bundle), "--device", device, "--backend", backend, "--runs", str(check.args.bench_runs),
              "--json", str(bench_json))
    whole = json.loads(bench_json.read_text())["whole"]
    step.detail = {"errors_vs_torch": errors, "runtime": providers, "bench_whole": whole}
    step.summary = (f"outputs vs PyTorch on {check.args.device}: worst {worst:.1%} of tolerance; bench p50 "
                    f"{whole['p50_ms']:.3f} ms on {whole['device']} ({whole['backend']})")
    if worst > 1.0:
        step.status = "failed"
        step.reason = "outputs differ from PyTorch beyond tolerance: " + ", ".join(
            f"{t} {e['max_abs_error']:.3g} > {e['tolerance']:.3g}" for t, e in errors.items()
            if e["max_abs_error"] > e["tolerance"])
    if device != "cpu" and whole["device"] == "cpu":
        step.status, step.reason = "failed", f"asked for {device}, but the bundle ran on the CPU"


# ---- the run -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0", help="cuda:N (a GPU machine) or cpu (every step but CUDA's)")
    parser.add_argument("--preset", default="tiny,default",
                        help="presets to train, comma-separated; the last is also profiled and exported")
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="tasks whose candidates (singles at two widths and pairs) are trained")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the processes:N step")
    parser.add_argument("--bench-runs", type=int, default=50, help="timed frames per `taskgroup bench`")
    parser.add_argument("--step-timeout", type=float, default=420, help="seconds one command may take")
    parser.add_argument("--cache-dir", type=Path, help="rendered data (default: a folder in --work)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="where the results go")
    parser.add_argument("--no-gpu-preset", action="store_true", help="on CUDA, skip profiling the gpu preset")
    # Smaller work for a quick run (CI on 2 cores); the defaults are the toolkit's own.
    parser.add_argument("--epochs", type=int, help="train every network this many epochs instead of the preset's")
    parser.add_argument("--widths", default="1.0,0.5", help="widths the profiles measure")
    parser.add_argument("--min-runs", type=int, default=50, help="the profiles' minimum timed runs per graph")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="the profiles' minimum timed seconds per graph")
    args = parser.parse_args(argv)

    from taskgroup.errors import TaskgroupError
    from taskgroup.presets import get_arch_preset
    from taskgroup.profile.device import parse_device, slug

    presets = [p.strip() for p in args.preset.split(",") if p.strip()]
    try:
        device = parse_device(args.device)  # refuses a CUDA device torch cannot see, listing the valid ones
        for p in presets or ["(none)"]:
            get_arch_preset(p)
    except TaskgroupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        print(f"error: --work {args.work} is not empty (it would hold this run's runs and bundle); give a new or "
              "empty folder", file=sys.stderr)
        return 2
    args.device = str(device)
    work = (args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))).resolve()  # commands run inside it
    work.mkdir(parents=True, exist_ok=True)
    check = Check(args, work)
    check.say(f"gpu_check on {args.device}: presets {', '.join(presets)}, tasks {args.tasks}; work in {work}")
    try:
        run_all(check, presets)
    except Exception as exc:  # noqa: BLE001 - a defect of the check itself: still write what was found
        check.steps.append(Step("gpu_check itself", "failed", reason=f"{type(exc).__name__}: {exc}",
                                detail={"traceback": traceback.format_exc().splitlines()[-30:]}))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    env = check.steps[0].detail
    name = (f"cuda-{slug(env['gpus'][device.index])}" if device.kind == "cuda" and env.get("gpus")
            else f"cpu-{slug(env.get('cpu') or 'unknown')}")
    write_results(check, presets, args.out / f"gpu_check-{name}")
    failed = [s.name for s in check.steps if s.status == "failed"]
    check.say(f"done: {len(check.steps)} steps, {len(failed)} failed"
              + (f" ({', '.join(failed)})" if failed else "") + f"; results in {args.out}/gpu_check-{name}.md")
    return 1 if failed else 0


def run_all(check: Check, presets: list[str]) -> None:
    args = check.args
    on_cuda = args.device != "cpu"
    tasks = args.tasks.split(",")
    if check.run("environment", environment).status != "ok":
        return
    check.run("doctor", lambda s: doctor(check, s))
    last = presets[-1]
    for backend, why_not in profile_backends(args.device):
        check.run(f"profile {backend} ({last})",
                  lambda s, b=backend, w=why_not: skip_if(w) or profile(check, s, b, last, args.tasks))
    if on_cuda and not args.no_gpu_preset and last != "gpu":
        check.run("profile torch (gpu preset)", lambda s: profile(check, s, "torch", "gpu", args.tasks))

    runs: dict[str, Path] = {}
    devices = ",".join(cuda_devices()) if on_cuda else "cpu"
    networks = 2 * len(tasks) + len(tasks) * (len(tasks) - 1) // 2  # singles at two widths, pairs
    for preset in presets:
        local = check.work / f"run-{preset}-{args.device.replace(':', '')}"
        later = ([f"train {preset} on the CPU (reference)"] if on_cuda else []) + [
            f"train {preset} with processes:{args.workers} on {devices}"]
        tables: dict[str, Any] = {}

        def local_step(s: Step, preset=preset, local=local) -> None:
            tables["local"] = train(check, s, preset, args.tasks, local, "--devices", args.device)

        if check.run(f"train {preset} on {args.device}", local_step).status != "ok":
            skip_steps(check, later, f"training on {args.device} failed")
            continue
        runs[preset] = local

        def cpu_step(s: Step, preset=preset) -> None:
            workers = max(1, min(networks, (os.cpu_count() or 1) // 2))  # one thread per network ([train] threads)
            cpu = train(check, s, preset, args.tasks, check.work / f"run-{preset}-cpu",
                        "--executor", f"processes:{workers}", "--devices", "cpu")
            compare(s, args.device, loss_differences(tables["local"]["table"], cpu["table"]), False)
            speedup = tables["local"]["networks_per_minute_training"] / cpu["networks_per_minute_training"]
            s.summary += f"; {args.device} trains a network {speedup:.1f}x as fast as one CPU worker"

        def processes_step(s: Step, preset=preset) -> None:
            run = train(check, s, preset, args.tasks, check.work / f"run-{preset}-processes",
                        "--executor", f"processes:{args.workers}", "--devices", devices)
            compare(s, "the local executor", loss_differences(run["table"], tables["local"]["table"]), not on_cuda)

        for name, fn in zip(later, ([cpu_step] if on_cuda else []) + [processes_step]):
            check.run(name, fn)

    backends = bundle_backends(args.device)
    bundle_steps = [f"bundle {b} on {d}" for b, d, _ in backends]
    if last not in runs:
        skip_steps(check, [f"select and export ({last})"] + bundle_steps, f"no trained {last} run to export")
        return
    held: dict[str, Any] = {}

    def export_step(s: Step) -> None:
        held["grouping"] = pick_grouping(check, runs[last])
        held["bundle"] = export(check, s, held["grouping"])

    def reference_step(s: Step) -> None:
        from taskgroup_exporters import validation_frames
        from taskgroup_exporters.bundle import quantized_frames
        from taskgroup.train.config import make_run_config

        os.environ["TASKGROUP_CACHE"] = check.env["TASKGROUP_CACHE"]  # the frames of the data the runs rendered
        images, source = validation_frames(make_run_config(last).data, tasks, BUNDLE_FRAMES)
        held["frames"] = quantized_frames(images)  # a fused bundle takes 8-bit frames
        held["reference"] = torch_reference(held["grouping"], held["frames"], args.device)
        s.summary = f"the grouping's networks in PyTorch on {args.device}, {source}"

    if check.run(f"select and export ({last})", export_step).status != "ok":
        skip_steps(check, bundle_steps, "export failed")
        return
    if check.run(f"PyTorch reference on {args.device}", reference_step).status != "ok":
        skip_steps(check, bundle_steps, "no PyTorch outputs to compare with")
        return
    from taskgroup_exporters.bundle import DEFAULT_ATOL

    # PyTorch on a GPU convolves in TF32 by default, as TensorRT may: 1% of the output scale there.
    tolerance = DEFAULT_ATOL["fp32"] if not on_cuda else 1e-2
    for name, (backend, device, why_not) in zip(bundle_steps, backends):
        check.run(name, lambda s, b=backend, d=device, w=why_not: skip_if(w) or run_bundle(
            check, s, held["bundle"], b, d, held["reference"], held["frames"], tolerance))


def skip_steps(check: Check, names: list[str], reason: str) -> None:
    """Record steps that cannot run because one they need failed."""
    for name in names:
        check.steps.append(Step(name, "skipped", reason=reason))
        check.say(f"{name}: skipped ({reason})")


def skip_if(why_not: str | None) -> None:
    if why_not:
        raise Skip(why_not)


def write_results(check: Check, presets: list[str], stem: Path) -> None:
    from taskgroup.fileio import atomic_path, write_json_atomic

    counts = {s: sum(1 for step in check.steps if step.status == s) for s in ("ok", "warning", "failed", "skipped")}
    doc = {"kind": "gpu_check", "schema_version": 1,
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "device": check.args.device,
           "presets": presets, "tasks": check.args.tasks.split(","), "counts": counts,
           "duration_s": round(time.perf_counter() - check.started, 1), "steps": [asdict(s) for s in check.steps]}
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stem.with_suffix(".json"), doc)
    env = check.steps[0].detail if check.steps else {}
    lines = [f"# gpu_check on {check.args.device}", "",
             f"`{doc['command']}`, {doc['created']}, {doc['duration_s']:.0f} s: "
             + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".", "",
             f"Machine: {env.get('cpu')} ({env.get('cores')} cores), GPUs: {', '.join(env.get('gpus') or []) or 'none'} "
             f"(nvidia-smi: {'; '.join(env.get('nvidia_smi') or []) or 'not found'}); Python {env.get('python')}, torch "
             f"{env.get('torch')} (CUDA {env.get('torch_cuda_build')}, cuDNN {env.get('cudnn')}), onnxruntime "
             f"{env.get('onnxruntime')} ({', '.join(env.get('onnxruntime_providers') or [])}), fvcore "
             f"{env.get('fvcore')}, polygraphy {env.get('polygraphy')}, tensorrt {env.get('tensorrt')}.", "",
             "| step | status | s | result |", "|---|---|---:|---|"]
    for s in check.steps:
        text = s.summary + (f" **{s.reason}**" if s.reason and s.status != "skipped" else "")
        lines.append(f"| {s.name} | {s.status} | {s.seconds:.0f} | {text.replace('|', '/')} |")
    skipped = [s for s in check.steps if s.status == "skipped"]
    if skipped:
        lines += ["", "Skipped, and why:", ""] + [f"- {s.name}: {s.reason}" for s in skipped]
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
