"""PyTorch -> ONNX for one network, and the numerical checks every exported file must pass.

Exporter choice: torch.onnx.export with dynamo=True (torch.export + onnxscript), the
maintained path and the default of torch 2.13; the TorchScript-based exporter
(dynamo=False) is deprecated and kept only as an explicit option. The dynamo exporter
already runs onnxscript's graph optimiser (constant folding, dead-code removal), so no
further simplification pass is applied. The batch axis is dynamic (named "N"); height and
width are fixed. Weights are embedded in the .onnx file when they fit well within
protobuf's 2 GiB limit; larger models keep torch's separate weights file, which the bundle
lists and hashes like any other file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.models.onnx import quiet_onnx_export
from taskgroup_runtime.ort import OrtRunner, SessionFromOnnx

INPUT_NAME = "image"


@dataclass(frozen=True)
class OnnxExportConfig:
    opset: int = 18  # requested ONNX opset (the dynamo exporter may raise it; the file records the real one)
    exporter: str = "dynamo"  # "dynamo" (default, maintained) or "legacy" (TorchScript-based, deprecated)
    max_embedded_bytes: int = 1 << 30  # embed weights up to this size; above, keep a separate weights file


def _tuple_module(model):
    """Wrap a MultiTaskNet so the exported graph has one named output per task, in a fixed order."""
    import torch

    class TupleOutputs(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.order = tuple(net.tasks)

        def forward(self, x):
            out = self.net(x)
            return tuple(out[t] for t in self.order)

    return TupleOutputs(model).eval()


def export_onnx(model, out_path: Path, resolution: int, config: OnnxExportConfig = OnnxExportConfig()) -> tuple[Path, Path | None]:
    """Export `model` (eval mode) to `out_path`; returns (onnx file, external weights file or None)."""
    import torch

    if config.exporter not in ("dynamo", "legacy"):
        raise TaskgroupError(f"unknown exporter {config.exporter!r}; valid options: dynamo, legacy")
    wrapped = _tuple_module(model)
    tasks = list(wrapped.order)
    example = torch.rand(2, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    embed = n_bytes <= config.max_embedded_bytes
    kwargs: dict = dict(input_names=[INPUT_NAME], output_names=tasks, opset_version=config.opset)
    if config.exporter == "dynamo":
        kwargs.update(dynamo=True, external_data=not embed, verbose=False,
                      dynamic_shapes=({0: torch.export.Dim("N", min=1, max=4096)},))
    else:
        kwargs.update(dynamo=False, dynamic_axes={INPUT_NAME: {0: "N"}, **{t: {0: "N"} for t in tasks}})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    before = set(out_path.parent.iterdir())
    try:
        with torch.no_grad(), quiet_onnx_export():
            torch.onnx.export(wrapped, (example,), str(out_path), **kwargs)
    except Exception as exc:
        raise TaskgroupError(f"ONNX export of {'+'.join(tasks)} failed ({config.exporter} exporter): "
                             f"{type(exc).__name__}: {exc}") from exc
    new_files = sorted(set(out_path.parent.iterdir()) - before - {out_path})
    if embed and new_files:
        raise TaskgroupError(f"ONNX export wrote unexpected files {[p.name for p in new_files]}")
    data = new_files[0] if new_files else None
    return out_path, data


def check_onnx(path: Path) -> None:
    """Run the ONNX checker (full check, including shape inference) with a clear error."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise TaskgroupError(f"{path.name}: ONNX checker failed: {exc}") from exc


def convert_fp16(src: Path, dst: Path) -> None:
    """fp32 -> fp16 weights and compute of a model file, keeping float32 inputs and outputs (see `to_fp16`)."""
    import onnx

    onnx.save(to_fp16(onnx.load(str(src))), str(dst))


def to_fp16(model):
    """fp32 -> fp16 weights and compute of an onnx.ModelProto, keeping its input and output types.

    Uses ONNX Runtime's float16 converter (onnxruntime.transformers.float16, a copy of
    onnxconverter-common's); onnx itself ships no float16 graph conversion. Export and the
    profiler (`--precision fp16`) convert with this one function, so TensorRT, whose strongly
    typed networks take their precision from the graph, builds the same fp16 engines for both.
    """
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise TaskgroupError("fp16 export needs onnxruntime.transformers.float16 (part of the onnxruntime "
                             f"wheel), which cannot be imported here: {exc}") from exc
    model = onnx.ModelProto.FromString(model.SerializeToString())  # the caller's model stays as it was
    # Stale float32 type annotations of intermediate tensors would contradict the converted
    # graph; drop them (the checker re-infers them).
    del model.graph.value_info[:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(model, keep_io_types=True)
    _topological_sort(half.graph)  # the converter appends its input casts at the end of the node list
    return half


def _topological_sort(graph) -> None:
    """Reorder graph.node so every node comes after the producers of its inputs (ONNX requires it)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise TaskgroupError("fp16 conversion produced a graph with a cycle or an undefined input")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def torch_outputs(model, frames: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """Reference outputs of PyTorch eager on `frames` (float32 NCHW)."""
    import torch

    outs: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for i in range(0, len(frames), batch):
            for t, v in model(torch.tensor(frames[i:i + batch])).items():  # a copy: frames may be read-only
                outs.setdefault(t, []).append(v.numpy())
    return {t: np.concatenate(v) for t, v in outs.items()}


def ort_outputs(path: Path, frames: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """ONNX Runtime CPU outputs of a model file on `frames` (fed to its one input), through the runtime's own runner."""

    outs: dict[str, list[np.ndarray]] = {}
    with OrtRunner(SessionFromOnnx(str(path), name=path.name)) as runner:
        (name,) = runner.get_input_metadata()
        for i in range(0, len(frames), batch):
            for n, v in runner.infer({name: np.ascontiguousarray(frames[i:i + batch])}).items():
                outs.setdefault(n, []).append(v)
    return {n: np.concatenate(v) for n, v in outs.items()}


def compare_outputs(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray], atol: dict[str, float],
                    what: str) -> dict[str, dict[str, float]]:
    """Per task: max |actual - reference| against atol * max(1, max |reference|); raise if any exceeds.

    Scaling by the reference magnitude gives unbounded outputs (segmentation logits) the same
    relative tolerance as the [0, 1] regression maps.
    """
    report, failures = {}, []
    for task, ref in reference.items():
        if task not in actual:
            failures.append(f"{task}: output missing")
            continue
        got = actual[task]
        if got.shape != ref.shape:
            failures.append(f"{task}: shape {got.shape} != PyTorch {ref.shape}")
            continue
        err = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
        limit = atol[task] * max(1.0, float(np.max(np.abs(ref))))
        report[task] = {"max_abs_error": err, "tolerance": limit}
        if not np.isfinite(err) or err > limit:
            failures.append(f"{task}: max abs error {err:.3g} > tolerance {limit:.3g}")
    if failures:
        raise TaskgroupError(f"{what} does not match PyTorch: " + "; ".join(failures))
    return report
