"""The runners a profile times: one per piece (trunk, head, whole network, call overhead) on one backend.

Every piece runs through the runtime's runners (`taskgroup_runtime.backends.make_runner`; PyTorch
eager through `TorchRunner`), built the way a bundle builds them: ONNX Runtime sessions
with the runtime's session options, TensorRT engines with the exporter's builder and
optimisation profile. Each piece is checked against PyTorch once, then timed as
`runner.infer(feed)`, the call a bundle makes per frame.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from taskgroup_runtime.backends import make_runner
from taskgroup_runtime.device import DeviceSpec
from taskgroup_runtime.errors import BackendUnavailableError
from taskgroup_runtime.runner import Runner
from taskgroup.errors import TaskgroupError
from taskgroup.profile.torch_runner import TorchRunner
from taskgroup_exporters.onnx_export import to_fp16
from taskgroup_runtime.errors import EngineBuildError
from taskgroup_runtime.trt import EngineConfig, build_engine
from taskgroup_exporters.fuse import FRAME, fuse_models
from taskgroup.profile.torch_runner import torch_settings


class PieceRunners:
    """Runners by key, all on one backend and device; `close()` releases them."""

    def __init__(self, backend: str, device: DeviceSpec, threads: int, allow_fallback: bool = False,
                 precision: str = "fp32", max_batch: int = 8):
        self.backend = backend  # resolved: torch | onnxruntime | onnxruntime-tensorrt | tensorrt
        self.device = device
        self.threads = threads  # intra-op threads per ONNX Runtime session, or torch threads on the CPU
        self.allow_fallback = allow_fallback  # accept an ONNX Runtime session placed on another provider
        self.precision = precision  # fp32, or fp16: graphs converted as export converts them (ONNX backends only)
        self.max_batch = max_batch  # largest batch a TensorRT engine's optimisation profile accepts (export's)
        self.runners: dict[str, Runner] = {}
        self.feeds: dict[str, dict[str, np.ndarray]] = {}
        self._engine_info: dict[str, Any] | None = None

    def add_module(self, key: str, module, feed: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> None:
        """A torch module, timed eagerly (backend 'torch')."""

        self._add(key, TorchRunner(module, feed, device=self.device, name=key, output_names=output_names,
                                   threads=self.threads), feed)

    def add_graph(self, key: str, onnx_bytes: bytes, feed: Mapping[str, np.ndarray]) -> None:
        """An ONNX graph, on ONNX Runtime or (built into an engine the exporter's way) on TensorRT."""
        model = onnx_bytes
        if self.precision == "fp16":
            import onnx


            model = to_fp16(onnx.load_from_string(onnx_bytes)).SerializeToString()
        if self.backend == "tensorrt":
            batch = max(len(next(iter(feed.values()))), 1)
            config = EngineConfig(opt_batch=batch, max_batch=max(self.max_batch, batch))
            try:
                model, _, self._engine_info = build_engine(model, config, what=key)
            except (BackendUnavailableError, EngineBuildError) as exc:
                raise TaskgroupError(str(exc)) from exc
        runner = make_runner(self.backend, model, device=self.device, name=key, threads=self.threads,
                             allow_fallback=self.allow_fallback)
        self._add(key, runner, feed)

    def add_fused(self, key: str, graphs: Sequence[bytes], seed: int = 0) -> None:
        """Whole networks merged into one graph taking the uint8 frame, as `export --fuse` merges them
        (exporters.fuse), fed a random uint8 frame of the networks' batch and size."""
        import onnx


        models = [onnx.load_from_string(g) for g in graphs]
        shape = [d.dim_value for d in models[0].graph.input[0].type.tensor_type.shape.dim]  # (N, 3, H, W)
        renames = [{o.name: f"{i}/{o.name}" for o in m.graph.output} for i, m in enumerate(models)]
        fused = fuse_models(models, height=shape[2], width=shape[3], outputs=renames)
        frame = np.random.default_rng(seed).integers(0, 256, (max(shape[0], 1), shape[2], shape[3], 3), dtype=np.uint8)
        self.add_graph(key, fused.SerializeToString(), {FRAME: frame})

    def _add(self, key: str, runner: Runner, feed: Mapping[str, np.ndarray]) -> None:
        try:
            runner.activate()
        except BackendUnavailableError as exc:
            hint = "; --allow-fallback profiles what really runs (recorded)" if self.backend != "tensorrt" else ""
            raise TaskgroupError(f"{exc}{hint}") from None
        self.runners[key] = runner
        self.feeds[key] = {k: np.ascontiguousarray(v) for k, v in feed.items()}
        self._check_provider()

    def outputs(self, key: str) -> list[np.ndarray]:
        """One inference of a piece; its outputs in the graph's order (for the check against PyTorch)."""
        return list(self.runners[key].infer(self.feeds[key]).values())

    def call(self, key: str) -> Callable[[], object]:
        """A timed call: one inference, as a bundle makes it (inputs already checked)."""
        runner, feed = self.runners[key], self.feeds[key]
        return lambda: runner.infer(feed, False)

    @property
    def execution_provider(self) -> str:
        """What really ran: the ONNX Runtime provider its sessions use, TensorRT, or torch's device."""
        if self.backend == "torch":
            return f"torch-{self.device.kind}"
        if self.backend == "tensorrt":
            return "TensorRT"
        used = {r.active_providers[0] for r in self.runners.values()}
        return used.pop() if used else "CPUExecutionProvider"

    def _check_provider(self) -> None:
        if self.backend in ("onnxruntime", "onnxruntime-tensorrt"):
            used = sorted({r.active_providers[0] for r in self.runners.values()})
            if len(used) > 1:
                raise TaskgroupError(f"ONNX Runtime sessions disagree on the provider ({', '.join(used)}); refusing "
                                     "to mix them in one profile")

    def settings(self) -> dict[str, Any]:
        """How the pieces ran, recorded in the profile (and handed on to bundles through the grouping)."""
        if self.backend == "torch":
            return {**torch_settings(), "precision": self.precision}
        if self.backend == "tensorrt":
            return {**(self._engine_info or {}), "precision": self.precision,
                    "timing": "host arrays in and out, stream synchronised"}
        any_runner = next(iter(self.runners.values()), None)
        settings = any_runner.loader.settings() if any_runner is not None else {"intra_op_num_threads": self.threads}
        return {**settings, "precision": self.precision}

    def close(self) -> None:
        for r in self.runners.values():
            r.deactivate()
