"""PyTorch eager as one more runner of the runtime's interface, for `taskgroup profile --backend torch`.

It lives in the toolkit because the runtime never imports torch. Like every runner it takes
and returns numpy arrays, so a torch timing includes the same host copies an ONNX Runtime
session's does; on CUDA each call ends with `torch.cuda.synchronize()`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from taskgroup_runtime.device import DeviceSpec
from taskgroup_runtime.runner import Runner, TensorMeta


class TorchRunner(Runner):
    """A torch module called on named numpy inputs (eval mode, `torch.inference_mode`)."""

    def __init__(self, module, example: Mapping[str, np.ndarray], *, device: DeviceSpec, name: str,
                 output_names: Sequence[str] | None = None, threads: int | None = None):
        self.module = module  # called as module(*inputs in the order of `example`)
        self.example = {k: np.asarray(v) for k, v in example.items()}  # input names, shapes and dtypes
        self.device = device
        self.name = name
        self.output_names = tuple(output_names) if output_names else None  # names of a tuple/tensor output
        self.threads = threads  # torch.set_num_threads on the CPU (process-wide); None leaves it

    def activate_impl(self) -> None:
        import torch

        if self.device.kind == "cpu" and self.threads is not None:
            torch.set_num_threads(self.threads)
        self._torch = torch
        self._device = torch.device(str(self.device))
        self._module = self.module.to(self._device).eval()
        self._sync = torch.cuda.synchronize if self.device.kind == "cuda" else (lambda: None)
        with torch.inference_mode():
            out = self._module(*(torch.as_tensor(v).to(self._device) for v in self.example.values()))
        self._output_meta = {n: (tuple(v.shape), str(v.dtype).removeprefix("torch."))
                             for n, v in self._named(out).items()}

    def _named(self, out) -> dict[str, Any]:
        if isinstance(out, dict):
            return dict(out)
        values = list(out) if isinstance(out, (tuple, list)) else [out]
        names = self.output_names or tuple(f"output{i}" for i in range(len(values)))
        return dict(zip(names, values))

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            out = self._module(*(torch.as_tensor(feed[n]).to(self._device) for n in self.example))
        self._sync()
        return {n: v.detach().cpu().numpy() for n, v in self._named(out).items()}

    def deactivate_impl(self) -> None:
        self._module = None

    def input_metadata_impl(self) -> dict[str, TensorMeta]:
        return {n: (tuple(v.shape), v.dtype.name) for n, v in self.example.items()}

    def output_metadata_impl(self) -> dict[str, TensorMeta]:
        return dict(self._output_meta)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "backend": "torch", "device": str(self.device)}


def torch_settings() -> dict[str, Any]:
    """What a torch profile records about how it ran."""
    import torch

    return {"torch_num_threads": torch.get_num_threads(), "mode": "eval, torch.inference_mode"}
