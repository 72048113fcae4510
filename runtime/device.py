"""Which device a runner runs on: the one parser shared by the runtime, the profiler and the CLI.

The runtime cannot count CUDA devices without a GPU library, so it checks the form only and
leaves a missing device to the backend (which refuses to run elsewhere). The toolkit passes
the number of devices torch sees, so that an absent device is refused before any work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from taskgroup_runtime.errors import BackendUnavailableError


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


def parse_device(text: object, cuda_count: int | None = None) -> DeviceSpec:
    """`cpu`, `cuda` (= `cuda:0`) or `cuda:N`, case and surrounding spaces ignored.

    With `cuda_count` (the CUDA devices visible here) an index that does not exist is refused too.
    """
    if isinstance(text, DeviceSpec):
        text = str(text)
    name = str(text).strip().lower()
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if name != "cpu" and not m:
        listed = (f"valid devices: {', '.join(valid_devices())}" if cuda_count is None else
                  f"valid devices here: {', '.join(valid_devices(cuda_count))} (the form is cpu, cuda or cuda:N)")
        raise BackendUnavailableError(f"unknown device {str(text)!r}; {listed}")
    if name == "cpu":
        return DeviceSpec("cpu")
    index = int(m.group(1) or 0)
    if cuda_count is not None and index >= cuda_count:
        have = "no CUDA device is visible" if cuda_count == 0 else f"{cuda_count} CUDA device(s) are visible"
        raise BackendUnavailableError(f"device 'cuda:{index}' is not available ({have}); valid devices here: "
                                      f"{', '.join(valid_devices(cuda_count))}")
    return DeviceSpec("cuda", index)
