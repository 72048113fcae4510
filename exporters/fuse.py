"""Merge several networks into one ONNX graph that takes the camera frame: one session per frame.

    fused = fuse_models([net0, net1], height=32, width=32)   # onnx.ModelProto

The fused graph has one input, `frame`: uint8 `(N, H, W, 3)` RGB, as a camera delivers it.
The runtime's input conversion is folded in (`float32(frame) * (1/255)`, NHWC -> NCHW, the
same operations in the same order as `taskgroup_runtime.preprocess`, so the values are bit-identical),
and every network reads the converted image. Each network's nodes, weights and intermediate
tensors are prefixed (`n0/`, `n1/`, ...) so that nothing collides; the outputs keep their
names (a bundle's are its task names, each served once) unless renamed. Export ships this
graph (`export --fuse`); the profiler times groupings fused the same way.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from taskgroup.errors import TaskgroupError

FRAME = "frame"  # name of the fused graph's input
IMAGE = "image"  # the networks' own input (float32 NCHW in [0, 1])


def frame_conversion(height: int, width: int, image: str = IMAGE, frame: str = FRAME):
    """(input value info, nodes, initializers) turning a uint8 NHWC frame into the float32 NCHW image."""
    from onnx import TensorProto, helper, numpy_helper

    value = helper.make_tensor_value_info(frame, TensorProto.UINT8, ["N", height, width, 3])
    scale = numpy_helper.from_array(np.array(1.0 / 255.0, dtype=np.float32), "frame/scale")
    nodes = [helper.make_node("Cast", [frame], ["frame/float"], to=TensorProto.FLOAT, name="frame/cast"),
             helper.make_node("Transpose", ["frame/float"], ["frame/nchw"], perm=[0, 3, 1, 2], name="frame/nchw"),
             helper.make_node("Mul", ["frame/nchw", "frame/scale"], [image], name="frame/scale")]
    return value, nodes, [scale]


def fuse_models(models: Sequence, *, height: int, width: int, input_name: str = IMAGE,
                outputs: Sequence[Mapping[str, str]] | None = None):
    """One onnx.ModelProto running every model on the converted frame; outputs in model order.

    models: onnx.ModelProto, each with the single float32 NCHW input `input_name`.
    outputs: per model, {its output name: the fused graph's name} (default: names kept).
    """
    import onnx
    from onnx import compose, helper

    if not models:
        raise TaskgroupError("nothing to fuse: no networks")
    value, nodes, initializers = frame_conversion(height, width, input_name)
    graph_outputs, value_infos, functions, opsets = [], [], {}, {}
    for i, model in enumerate(models):
        inputs = [x.name for x in model.graph.input if x.name not in {t.name for t in model.graph.initializer}]
        if inputs != [input_name]:
            raise TaskgroupError(f"network {i} takes inputs {inputs}; fusing needs exactly one input '{input_name}'")
        renamed = onnx.ModelProto.FromString(model.SerializeToString())
        rename = dict(outputs[i]) if outputs is not None else {}
        if rename:
            for node in renamed.graph.node:
                node.output[:] = [rename.get(o, o) for o in node.output]
                node.input[:] = [rename.get(x, x) for x in node.input]
            for out in renamed.graph.output:
                out.name = rename.get(out.name, out.name)
        # A value_info naming the input or an output would have add_prefix rename that edge too.
        ends = {input_name, *(o.name for o in renamed.graph.output)}
        kept = [v for v in renamed.graph.value_info if v.name not in ends]
        del renamed.graph.value_info[:]
        renamed.graph.value_info.extend(kept)
        prefixed = compose.add_prefix(renamed, f"n{i}/", rename_inputs=False, rename_outputs=False)
        nodes += prefixed.graph.node
        initializers += prefixed.graph.initializer
        value_infos += prefixed.graph.value_info
        graph_outputs += prefixed.graph.output
        for f in prefixed.functions:
            functions[(f.domain, f.name)] = f
        for op in prefixed.opset_import:
            opsets[op.domain] = max(op.version, opsets.get(op.domain, 0))
    names = [o.name for o in graph_outputs]
    if len(set(names)) != len(names):
        raise TaskgroupError(f"fused outputs {names} repeat a name; rename them")
    graph = helper.make_graph(nodes, "fused", [value], graph_outputs, initializers, value_info=value_infos)
    fused = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
                              functions=list(functions.values()), producer_name="taskgroup.fuse")
    fused.ir_version = max(m.ir_version for m in models)
    return fused
