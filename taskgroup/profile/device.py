"""Which device to profile on, and a description of it and of the software stack.

A timing is only meaningful with the device (CPU model and cores, or GPU name and driver)
and library versions it was measured with, so the profile records both.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from typing import Any

from taskgroup_runtime import device as runtime_device
from taskgroup_runtime.backends import resolve_backend as resolve_runtime_backend
from taskgroup_runtime.device import DeviceSpec
from taskgroup_runtime.errors import BackendUnavailableError
from taskgroup.errors import TaskgroupError


# Backends the profiler can time: the runtime's, plus PyTorch eager (taskgroup.profile.torch_runner).
PROFILE_BACKENDS = ("auto", "torch", "onnxruntime", "onnxruntime-tensorrt", "tensorrt")


def cuda_device_count() -> int:
    """Number of CUDA devices torch can see (0 on a CPU build or a machine without a GPU)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_device(text: str, cuda_count: int | None = None) -> DeviceSpec:
    """The runtime's device parser, also refusing a CUDA device torch cannot see (a TaskgroupError)."""
    try:
        return runtime_device.parse_device(text, cuda_device_count() if cuda_count is None else cuda_count)
    except BackendUnavailableError as exc:
        raise TaskgroupError(str(exc)) from None


def resolve_backend(name: str, device: DeviceSpec) -> str:
    """The backend to profile with: the runtime's choice for the device (`auto`: ONNX Runtime on the CPU,
    TensorRT on CUDA when importable), or PyTorch eager."""
    if name == "torch":
        return name
    try:
        return resolve_runtime_backend(name, device, has_engines=True, choices=PROFILE_BACKENDS)[0]
    except BackendUnavailableError as exc:
        raise TaskgroupError(str(exc)) from None


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where available."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(spec: DeviceSpec) -> dict[str, Any]:
    """What the timings ran on: CPU model and cores, or GPU name, memory and driver."""
    info: dict[str, Any] = {
        "kind": spec.kind,
        "name": str(spec),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "platform": platform.platform(),
    }
    if spec.kind == "cuda":
        import torch

        props = torch.cuda.get_device_properties(spec.index)
        info.update(gpu_name=props.name, gpu_memory_mb=props.total_memory // 2**20,
                    compute_capability=f"{props.major}.{props.minor}", cuda_runtime=torch.version.cuda,
                    driver=_nvidia_driver(spec.index))
    return info


def _nvidia_driver(index: int) -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader", "-i", str(index)],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def library_versions() -> dict[str, str | None]:
    """Versions of everything that affects a timing (None = not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "onnxscript", "fvcore", "numpy", "tensorrt",
                 "polygraphy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def slug(text: str) -> str:
    """File-name-safe lower-case form of a device name, e.g. 'intel-r-xeon-r-processor'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"
