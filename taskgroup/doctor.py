"""`taskgroup doctor`: what really works on this machine, and the exact fix for what does not.

Everything is tried, not read from a list: torch's CUDA devices are counted by torch itself,
each ONNX Runtime provider the build lists runs a tiny model (`taskgroup_runtime.backends.provider_runs`;
onnxruntime-gpu lists CUDA and TensorRT even where they cannot run), TensorRT and Polygraphy
are imported. A CPU-only machine gets a report too, saying that it is one and what works on it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any
from taskgroup.profile.device import cpu_model
from taskgroup_runtime.backends import provider_runs
from taskgroup_runtime.device import DeviceSpec
from taskgroup_runtime.trt import INSTALL

REPORT_KIND = "doctor_report"
TORCH_PIN = "torch==2.13.0"
GPU_SECTION = "README.md, section 'On a GPU machine'"


@dataclass(frozen=True)
class Finding:
    area: str  # machine | torch | onnxruntime | tensorrt | polygraphy
    item: str  # what was checked
    status: str  # "ok" (works), "missing" (does not work here, with the fix), or "info"
    detail: str  # what was found
    fix: str | None = None  # the command or step that makes it work (None when nothing is needed)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def nvidia_gpus() -> list[str]:
    """GPU names nvidia-smi lists (empty without an NVIDIA driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def diagnose() -> list[Finding]:
    """Every finding, machine first; the last one sums up what works here."""

    import os

    gpus = nvidia_gpus()
    found = [Finding("machine", "CPU", "info", f"{cpu_model()}, {os.cpu_count()} cores"),
             Finding("machine", "NVIDIA GPU", "ok" if gpus else "info",
                     "; ".join(gpus) if gpus else "none (nvidia-smi not found or lists no GPU)",
                     None if gpus else "a GPU machine needs the NVIDIA driver (nvidia-smi must list the GPU)")]
    # The install hint keeps the GPU build of ONNX Runtime where it is installed or a GPU is present.
    found += _torch(bool(gpus), "train-gpu" if gpus or _version("onnxruntime-gpu") else "train")
    cuda_devices = next((f for f in found if f.item == "CUDA devices"), None)
    gpu = bool(gpus) or (cuda_devices is not None and cuda_devices.status == "ok")
    found += _onnxruntime(gpu)
    found += _tensorrt(gpu)
    found.append(_summary(found, gpu))
    return found


def _torch(gpu: bool, train_extra: str = "train") -> list[Finding]:
    version = _version("torch")
    if version is None:
        return [Finding("torch", "torch", "missing", "not installed (the runtime never needs it; train, profile and "
                        "export do)", f'pip install "{TORCH_PIN}" -e ".[{train_extra}]"')]
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    out = [Finding("torch", "torch", "ok", f"{torch.__version__} ({build})")]
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        names = ", ".join(f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(count))
        out.append(Finding("torch", "CUDA devices", "ok", names))
    elif not torch.version.cuda:
        out.append(Finding("torch", "CUDA devices", "missing" if gpu else "info", "none: this torch is a CPU-only build",
                           f'pip install --force-reinstall "{TORCH_PIN}" (PyPI\'s Linux x86_64 wheels are CUDA builds; '
                           "for another CUDA version: https://pytorch.org/get-started/locally/)"))
    else:
        out.append(Finding("torch", "CUDA devices", "missing" if gpu else "info",
                           f"none visible to this CUDA {torch.version.cuda} build",
                           "install or update the NVIDIA driver (nvidia-smi must list the GPU) and check "
                           "CUDA_VISIBLE_DEVICES"))
    return out


def _onnxruntime(gpu: bool) -> list[Finding]:

    cpu_build, gpu_build = _version("onnxruntime"), _version("onnxruntime-gpu")
    out = []
    if cpu_build and gpu_build:
        out.append(Finding("onnxruntime", "packages", "missing",
                           f"onnxruntime {cpu_build} and onnxruntime-gpu {gpu_build} are both installed; they share "
                           "one folder, so the one installed last has overwritten the other's files",
                           "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
                           + ("" if gpu else "   (or onnxruntime on a CPU-only machine)")))
    elif not (cpu_build or gpu_build):
        return [Finding("onnxruntime", "packages", "missing", "not installed", "pip install onnxruntime")]
    else:
        which = "onnxruntime-gpu" if gpu_build else "onnxruntime"
        out.append(Finding("onnxruntime", "packages", "ok", f"{which} {gpu_build or cpu_build}"))
    try:
        import onnxruntime as ort

        listed = ort.get_available_providers()
    except Exception as exc:  # noqa: BLE001 - a broken installation is what this reports
        return out + [Finding("onnxruntime", "import", "missing", f"import onnxruntime fails: {exc}",
                              "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime"
                              + ("-gpu" if gpu else ""))]
    device = DeviceSpec("cuda", 0)
    for provider in ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"] + [
            p for p in listed if p not in ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")]:
        on = DeviceSpec("cpu") if provider == "CPUExecutionProvider" else device
        if provider not in listed:
            if provider == "CPUExecutionProvider":
                out.append(Finding("onnxruntime", provider, "missing", "not in this build",
                                   "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime"))
            else:
                out.append(Finding("onnxruntime", provider, "missing" if gpu else "info",
                                   "not in this build" + ("" if gpu else " (a CPU-only machine needs none)"),
                                   "pip uninstall -y onnxruntime && pip install onnxruntime-gpu (never both)"
                                   + ("; the TensorRT provider also needs TensorRT's libraries: pip install "
                                      "'taskgrouping[tensorrt]'" if provider == "TensorrtExecutionProvider" else "")))
            continue
        if provider not in ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"):
            out.append(Finding("onnxruntime", provider, "info", "listed by this build; not used by taskgroup"))
            continue
        ok, why = provider_runs(provider, on)
        out.append(Finding("onnxruntime", provider, "ok" if ok else "missing", why, None if ok else _provider_fix(provider)))
    return out


def _provider_fix(provider: str) -> str:
    if provider == "CPUExecutionProvider":
        return "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime"
    if provider == "CUDAExecutionProvider":
        return ("install the NVIDIA driver and the CUDA and cuDNN versions this onnxruntime-gpu was built for "
                "(https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html#requirements)")
    return ("install TensorRT for this CUDA (pip install 'taskgrouping[tensorrt]') and the libraries "
            "https://onnxruntime.ai/docs/execution-providers/TensorRT-ExecutionProvider.html#requirements lists")


def _tensorrt(gpu: bool) -> list[Finding]:

    out = []
    try:
        import tensorrt as trt

        out.append(Finding("tensorrt", "tensorrt", "ok", f"TensorRT {trt.__version__} imports"))
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError when its libraries are missing
        out.append(Finding("tensorrt", "tensorrt", "missing" if gpu else "info",
                           f"cannot be imported ({type(exc).__name__}: {exc})"
                           + ("" if gpu else "; TensorRT needs an NVIDIA GPU"), INSTALL))
    version = _version("polygraphy")
    if version is None:
        out.append(Finding("polygraphy", "polygraphy", "missing" if gpu else "info",
                           "not installed (TensorRT engines are built and run through it)", "pip install polygraphy"))
    else:
        out.append(Finding("polygraphy", "polygraphy", "ok", f"{version} (pure Python; its TensorRT parts need tensorrt)"))
    return out


def _summary(found: list[Finding], gpu: bool) -> Finding:
    works = lambda item: any(f.item == item and f.status == "ok" for f in found)  # noqa: E731
    cpu = works("CPUExecutionProvider")
    if not gpu:
        return Finding("summary", "this machine", "info" if cpu else "missing",
                       "a CPU-only machine: " + ("profile, train, select, export and the runtime run on the CPU "
                                                 "(ONNX Runtime's CPU provider works); the CUDA and TensorRT paths "
                                                 "need a GPU machine" if cpu else "ONNX Runtime does not run here"),
                       None if cpu else "pip install onnxruntime")
    ready = [name for name, item in (("torch on CUDA", "CUDA devices"), ("ONNX Runtime CUDA", "CUDAExecutionProvider"),
                                     ("ONNX Runtime TensorRT", "TensorrtExecutionProvider"), ("TensorRT", "tensorrt"),
                                     ("Polygraphy", "polygraphy")) if works(item)]
    return Finding("summary", "this machine", "ok" if ready else "missing",
                   "a GPU machine; working: " + (", ".join(ready) if ready else "none of the GPU paths"),
                   None if len(ready) == 5 else f"apply the fixes above ({GPU_SECTION})")


def report_doc(found: list[Finding]) -> dict[str, Any]:
    return {"kind": REPORT_KIND, "schema_version": 1, "findings": [asdict(f) for f in found]}
