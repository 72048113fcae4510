"""Mixed-precision training (`[train] amp`, `train --amp`): autocast for the forward pass, a
loss scaler where fp16 needs one.

- `off` (the default): every operation in float32, as the paper trained.
- `bf16`: the forward pass under `torch.autocast(dtype=torch.bfloat16)` on the CPU or a GPU
  that has bfloat16 (compute capability 8.0 or newer). bfloat16 has float32's exponent range,
  so gradients do not underflow and no loss scaling is needed.
- `fp16`: the forward pass under `torch.autocast(dtype=torch.float16)` with a
  `torch.amp.GradScaler`, CUDA only: float16's narrow exponent range makes small gradients
  underflow to zero, so the loss is multiplied by a scale before backward, the gradients are
  unscaled before the step, a step whose gradients hold inf or NaN is skipped, and the scale
  adapts (PyTorch's "Automatic Mixed Precision examples").

What stays in float32 in every mode: the weights (autocast casts copies per operation), the
optimiser state, the task losses (the outputs are cast to float32 before the masked means, so
a loss over many pixels is summed in float32), and evaluation: validation and test losses are
those of the float32 network, the one export ships. The mode is part of the run's recipe, so a
resumed run cannot switch precision half way.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Sequence

from taskgroup.errors import TaskgroupError

if TYPE_CHECKING:
    import torch

AMP_MODES = ("off", "bf16", "fp16")


def check_amp_mode(mode: object, where: str = "amp") -> str:
    if not isinstance(mode, str) or mode not in AMP_MODES:
        raise TaskgroupError(f"{where}: unknown precision {mode!r}; valid options: {', '.join(AMP_MODES)}")
    return mode


def check_amp_devices(mode: str, devices: Sequence[str], visible_only: bool = True) -> None:
    """Refuse a precision a training device cannot use, before anything is trained.

    `devices` are the executor's (cpu, cuda, cuda:N). bf16 on a CUDA device is checked for
    bfloat16 support; with `visible_only` (the driver, whose executor may train elsewhere, e.g.
    on Ray) only where this machine's torch sees a GPU; the worker checks again where it runs."""
    check_amp_mode(mode)
    if mode == "off":
        return
    cpu = [d for d in devices if not d.startswith("cuda")]
    if mode == "fp16" and cpu:
        raise TaskgroupError(f"--amp fp16 trains on CUDA devices only (float16 autocast with a loss scaler), but "
                             f"--devices has {', '.join(cpu)}; use --amp bf16 on the CPU, or --amp off")
    if mode == "bf16":
        for device in devices:
            if device.startswith("cuda"):
                check_bf16_cuda(device, only_if_visible=visible_only)


def check_amp_affinity(mode: str) -> None:
    """Affinity tracking measures float32 gradients and lookahead losses against the real step; a
    mixed-precision step is another step (and fp16 gradients need the scaler), so the two are not mixed."""
    if mode != "off":
        raise TaskgroupError(f"affinity tracking needs float32 training ([train] amp = \"off\"), found amp {mode!r}: "
                             "its lookahead is measured against the optimiser's float32 step; train the affinity "
                             "run with --amp off")


def check_bf16_cuda(device: str, only_if_visible: bool = False) -> None:
    """bfloat16 autocast needs a GPU of compute capability 8.0 or newer (older ones only emulate it, slowly)."""
    import torch

    if not torch.cuda.is_available():
        if only_if_visible:
            return
        raise TaskgroupError(f"--amp bf16 on {device}: torch sees no CUDA device here")
    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    if index >= torch.cuda.device_count():
        return  # an absent device is refused by the executor, with the list of valid ones
    props = torch.cuda.get_device_properties(index)
    if props.major < 8:
        raise TaskgroupError(f"--amp bf16: {device} ({props.name}, compute capability {props.major}.{props.minor}) "
                             "has no native bfloat16 (8.0 or newer is needed); use --amp fp16 there, or --amp off")


class MixedPrecision:
    """The autocast region and (fp16) the loss scaler of one network's training.

    Which device may use which mode is `check_amp_devices`' decision (training calls it first);
    this class only does what the mode says on `device_type` (torch has float16 autocast and a
    GradScaler on the CPU too, which the tests use to exercise the scaler's path)."""

    def __init__(self, mode: str, device_type: str):
        import torch

        check_amp_mode(mode)
        self.mode = mode
        self.device_type = device_type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        # One scaler for every optimiser of the network: each step is its own backward, step and update.
        self.scaler = torch.amp.GradScaler(device_type) if mode == "fp16" else None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass's region: autocast to the mode's dtype (nothing with `off`)."""
        if self.dtype is None:
            yield
            return
        import torch

        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            yield

    def backward(self, loss: "torch.Tensor") -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: "torch.optim.Optimizer") -> None:
        """optimizer.step(); with the scaler: unscale, skip the step on inf/NaN gradients, adapt the scale."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
