"""Parameters and multiply-adds with fvcore, per module (trunk, each head).

Conventions are fvcore's defaults, kept so the numbers match what anyone else gets from
fvcore (version 0.1.5):
- one multiply-add counts as one "flop"; we call the unit MACs;
- convolution: batch * prod(weight shape) * output H * W; a depthwise 3x3 over C channels
  has weight shape (C, 1, 3, 3), so C * 9 * H * W; the bias is not counted;
- batch norm in eval mode: 2 per input element with affine parameters (1 without);
  ONNX Runtime folds it into the preceding convolution, so its MACs cost no time there;
- nearest upsampling: 1 per output element;
- ReLU, additions (residuals), the input normalisation (sub, div) are not counted: fvcore
  ignores or does not support them (it reports unsupported ones through `logging`).
`by_operator` in the profile keeps the split (conv / batch_norm / upsample_nearest2d), so a
conv-only count is available too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MacCount:
    macs: int  # total multiply-adds, fvcore conventions (see module docstring)
    by_operator: dict[str, int] = field(default_factory=dict)  # fvcore operator name -> multiply-adds
    params: int = 0  # parameters of the module


def count_macs(module, *inputs) -> MacCount:
    """MACs of `module(*inputs)` (traced once, in eval mode and without autograd)."""
    import torch
    from fvcore.nn import FlopCountAnalysis

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(module, inputs if len(inputs) != 1 else inputs[0])
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            # fvcore logs tracer notes at WARNING; they are not problems with the count.
            logger = logging.getLogger("fvcore")
            level = logger.level
            logger.setLevel(logging.ERROR)
            try:
                total = int(analysis.total())
                by_op = {k: int(v) for k, v in sorted(analysis.by_operator().items())}
            finally:
                logger.setLevel(level)
    finally:
        module.train(was_training)
    params = sum(p.numel() for p in module.parameters())
    return MacCount(total, by_op, params)


def component_macs(model, image) -> tuple[MacCount, dict[str, MacCount]]:
    """MACs of a MultiTaskNet's trunk on `image`, and of each head on the trunk's features."""
    import torch

    with torch.no_grad():
        features = model.trunk(image)
    trunk = count_macs(model.trunk, image)
    heads = {t: count_macs(head, features) for t, head in model.heads.items()}
    return trunk, heads
