"""Which device a network runs or trains on: the one grammar of device names, for the runtime, the
profiler, the CLI and training's `--devices`.

The runtime cannot count CUDA devices without a GPU library, so it checks the form only and
leaves a missing device to the backend (which refuses to run elsewhere). The toolkit passes
the number of devices torch sees, so that an absent device is refused before any work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from taskgroup_runtime.errors import BackendUnavailableError

_CUDA = re.compile(r"cuda(?::(\d+))?")


@dataclass(frozen=True)
class DeviceSpec:
    kind: str  # "cpu" or "cuda"
    index: int | None = None  # CUDA device index; None for the CPU

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def valid_devices(cuda_count: int | None = None) -> list[str]:
    """The device names accepted here (the forms only when the CUDA device count is unknown)."""
    if cuda_count is None:
        return ["cpu", "cuda", "cuda:N"]
    return ["cpu"] + [f"cuda:{i}" for i in range(cuda_count)]


def device_name(text: object, cuda_count: int | None = None) -> str:
    """The canonical spelling of a device name: `cpu`, `cuda` (any one GPU, left to a scheduler such
    as Ray to pick) or `cuda:N`; case and surrounding spaces ignored. Checks the form only."""
    if isinstance(text, DeviceSpec):
        return str(text)
    name = str(text).strip().lower()
    m = _CUDA.fullmatch(name)
    if name == "cpu":
        return name
    if not m:
        listed = (f"valid devices: {', '.join(valid_devices())}" if cuda_count is None else
                  f"valid devices here: {', '.join(valid_devices(cuda_count))} (the form is cpu, cuda or cuda:N)")
        raise BackendUnavailableError(f"unknown device {str(text)!r}; {listed}")
    return "cuda" if m.group(1) is None else f"cuda:{int(m.group(1))}"


def parse_device(text: object, cuda_count: int | None = None) -> DeviceSpec:
    """`cpu`, `cuda` (= `cuda:0`) or `cuda:N`, case and surrounding spaces ignored.

    With `cuda_count` (the CUDA devices visible here) an index that does not exist is refused too.
    """
    name = device_name(text, cuda_count)
    if name == "cpu":
        return DeviceSpec("cpu")
    index = int(name.partition(":")[2] or 0)
    if cuda_count is not None and index >= cuda_count:
        have = "no CUDA device is visible" if cuda_count == 0 else f"{cuda_count} CUDA device(s) are visible"
        raise BackendUnavailableError(f"device 'cuda:{index}' is not available ({have}); valid devices here: "
                                      f"{', '.join(valid_devices(cuda_count))}")
    return DeviceSpec("cuda", index)


def parse_device_list(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'cpu', 'cuda', 'cuda:0,cuda:1' (or a sequence of names) -> canonical device names, in order;
    None -> ('cpu',). Form only: whether the devices exist is the caller's to check."""
    if text is None:
        return ("cpu",)
    items = [d for d in (text.split(",") if isinstance(text, str) else text) if str(d).strip()]
    if not items:
        raise BackendUnavailableError("give at least one device, e.g. cpu or cuda:0,cuda:1")
    return tuple(device_name(d) for d in items)
