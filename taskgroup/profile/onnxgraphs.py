"""ONNX graphs of the pieces the profiler times: trunk, each head, whole networks.

A network of one width is exported once, with the trunk's features as an extra output,
and the pieces are cut out of that graph with `onnx.utils.Extractor`: the trunk (image ->
features), each head (features -> task output) and whole networks (image -> the served
tasks' outputs, which is exactly the graph of `model.with_heads(served)`). One export per
width keeps the profile fast; every piece is checked numerically against PyTorch.

Export choices (torch 2.13): the dynamo exporter (`dynamo=True`, needs onnxscript),
`external_data=False` so weights stay inside the graph instead of a side `.onnx.data`
file, `optimize=True`, and the opset it settles on is recorded.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.models.onnx import quiet_onnx_export

FEATURES = "features"  # name of the trunk-output tensor in the exported graph
IMAGE = "image"  # name of the network input
OPSET = 18  # requested opset; the exporter may raise it (the actual one is recorded)


@dataclass
class ExportedNetwork:
    model: object  # onnx.ModelProto with outputs [features, *tasks]
    tasks: tuple[str, ...]
    opset: int  # default-domain opset actually written

    def trunk(self) -> bytes:
        return self._extract([IMAGE], [FEATURES])

    def head(self, task: str) -> bytes:
        return self._extract([FEATURES], [task])

    def network(self, served: Sequence[str]) -> bytes:
        return self._extract([IMAGE], [t for t in self.tasks if t in served])

    def _extract(self, inputs: list[str], outputs: list[str]) -> bytes:
        from onnx.utils import Extractor

        return Extractor(self.model).extract_model(inputs, outputs).SerializeToString()


def export_network(model, image) -> ExportedNetwork:
    """Export `model` (a MultiTaskNet) with the trunk features as an extra output."""
    import onnx
    import torch

    class TrunkAndHeads(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            f = self.net.trunk(x)
            return (f, *(head(f) for head in self.net.heads.values()))

    tasks = tuple(model.heads.keys())
    wrapper = TrunkAndHeads(model).eval()
    with tempfile.TemporaryDirectory(prefix="taskgroup-profile-") as tmp:
        path = Path(tmp) / "network.onnx"
        try:
            with torch.no_grad(), quiet_onnx_export():
                torch.onnx.export(wrapper, (image,), str(path), dynamo=True, external_data=False, optimize=True,
                                  opset_version=OPSET, input_names=[IMAGE], output_names=[FEATURES, *tasks],
                                  verbose=False)
        except Exception as exc:  # the exporter raises many types; the user needs to know which piece failed
            raise TaskgroupError(f"ONNX export of the {model.width:g}-width network failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
        leftovers = [p.name for p in Path(tmp).iterdir() if p.name != "network.onnx"]
        if leftovers:
            raise TaskgroupError(f"ONNX export wrote unexpected side files {leftovers}; expected one self-contained "
                                 "graph")
        proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    return ExportedNetwork(proto, tasks, int(opset))


def identity_graph(shape: Sequence[int], opset: int) -> bytes:
    """A graph that copies its input: the fixed cost of one backend call with this input."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def max_abs_diff(got: Sequence[np.ndarray], want: Sequence[np.ndarray], what: str, tol: float = 1e-3) -> float:
    """Largest absolute difference between two output lists; error if shapes differ or it exceeds `tol`
    relative to the outputs' scale."""
    if len(got) != len(want):
        raise TaskgroupError(f"{what}: exported graph returns {len(got)} outputs, PyTorch {len(want)}")
    worst = 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape:
            raise TaskgroupError(f"{what}: exported output shape {g.shape} differs from PyTorch {w.shape}")
        diff = float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))) if g.size else 0.0
        scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
        if not np.isfinite(diff) or diff > tol * scale:
            raise TaskgroupError(f"{what}: exported graph differs from PyTorch by {diff:.3g} (tolerance "
                                 f"{tol * scale:.3g}); the export is wrong, its timing would be meaningless")
        worst = max(worst, diff)
    return worst


def cpu_session_outputs(onnx_bytes: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a graph once on ONNX Runtime's CPU provider (reference for numeric checks)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    return list(sess.run(None, feeds))
