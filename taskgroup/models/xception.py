"""Xception-style multi-task network: a shared encoder of depthwise-separable convolutions
and one decoder per task, as in the paper's Taskonomy networks, scaled for small inputs.

The width multiplier scales every channel count: 1.0 is the standard network and 0.5 the
paper's half-size network. Gradients entering the shared trunk are scaled by
1/sqrt(number of tasks), as in the paper's code, so adding heads does not inflate the
trunk's effective learning rate (what it does under each update strategy:
taskgroup.train.strategies); the scaling is the identity in the forward pass and is
skipped when no gradient is recorded (inference, export).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch import nn

from taskgroup.tasks import SEGMENT_CLASSES, get_task
from taskgroup.task_tables import declared_in

# Input normalisation applied inside the network; inputs are RGB in [0, 1].
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.25, 0.25, 0.25)


@dataclass(frozen=True)
class XceptionConfig:
    stem_channels: int = 16  # channels of the first strided convolution (at width 1.0)
    stage_channels: tuple[int, ...] = (48, 96, 192)  # one entry per encoder stage
    stage_strides: tuple[int, ...] = (2, 2, 1)  # stride of each stage; with the stem's 2, total 8
    blocks_per_stage: int = 2  # separable-conv units per stage (the first may stride)
    decoder_channels: tuple[int, ...] = (32, 16, 8)  # one upsampling step (x2) per entry
    segment_classes: int = len(SEGMENT_CLASSES)  # classes of the segment_semantic head (Taskonomy: 18)

    @property
    def output_stride(self) -> int:
        return 2 * math.prod(self.stage_strides)


def scaled(channels: int, width: float) -> int:
    """Channel count at a width multiplier, rounded to a multiple of 4 (at least 4)."""
    return max(4, int(round(channels * width / 4)) * 4)


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1 convolution, batch norm, ReLU: the Xception unit."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class XceptionBlock(nn.Module):
    """Residual stack of separable convolutions; a strided 1x1 shortcut when shapes change."""

    def __init__(self, cin: int, cout: int, stride: int, units: int):
        super().__init__()
        layers = [SeparableConv(cin, cout, stride)] + [SeparableConv(cout, cout) for _ in range(units - 1)]
        self.body = nn.Sequential(*layers)
        self.shortcut = (
            nn.Identity() if (cin == cout and stride == 1)
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class Encoder(nn.Module):
    """The shared trunk: RGB in [0, 1] -> features at 1/output_stride resolution."""

    def __init__(self, config: XceptionConfig, width: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(INPUT_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(INPUT_STD).view(1, 3, 1, 1), persistent=False)
        stem = scaled(config.stem_channels, width)
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)
        )
        stages, cin = [], stem
        for channels, stride in zip(config.stage_channels, config.stage_strides, strict=True):
            cout = scaled(channels, width)
            stages.append(XceptionBlock(cin, cout, stride, config.blocks_per_stage))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem((x - self.mean) / self.std))


class Decoder(nn.Module):
    """One task's head: upsample the trunk features back to input resolution."""

    def __init__(self, cin: int, out_channels: int, config: XceptionConfig, width: float):
        super().__init__()
        steps = int(math.log2(config.output_stride))
        channels = list(config.decoder_channels)
        if len(channels) != steps:
            raise ValueError(f"decoder needs {steps} upsampling steps for output stride {config.output_stride}, "
                             f"got decoder_channels={config.decoder_channels}")
        layers: list[nn.Module] = []
        for c in channels:
            cout = scaled(c, width)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), SeparableConv(cin, cout)]
            cin = cout
        layers.append(nn.Conv2d(cin, out_channels, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


class OutputAffine(nn.Module):
    """`y * std + mean` per channel: maps a head's standardised output to the dataset's units.

    The buffers are not persistent: the transform is stored in checkpoints beside the weights
    (`targets`), so checkpoints written before standardisation load unchanged (identity)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean


class MultiTaskNet(nn.Module):
    """Shared trunk + one head per task; `forward(x)` returns a dict task -> output.

    Heads are trained on standardised targets. `target_transforms` holds each task's
    TargetTransform (set by training and by load_checkpoint); `in_dataset_units()` returns
    a copy whose outputs are mapped back to the dataset's units (what export deploys)."""

    def __init__(self, name: str, tasks: Sequence[str], width: float, config: XceptionConfig):
        super().__init__()
        self.name = name
        self.tasks = tuple(tasks)
        self.width = width
        self.config = config
        self.trunk = Encoder(config, width)
        self.output_channels = {
            t: config.segment_classes if t == "segment_semantic" else get_task(t).channels for t in self.tasks
        }
        self.heads = nn.ModuleDict(
            {t: Decoder(self.trunk.out_channels, self.output_channels[t], config, width) for t in self.tasks}
        )
        self.target_transforms: dict = {}  # task -> taskgroup.data.standardize.TargetTransform
        self.outputs = nn.ModuleDict()  # task -> OutputAffine, only in a copy made by in_dataset_units()

    @property
    def input_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return self.config.output_stride

    def forward(self, x: torch.Tensor, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """task -> output. `tasks`: compute only these heads (a training step on some of the tasks,
        taskgroup.train.strategies); the trunk's gradient scale stays 1/sqrt(all heads)."""
        features = self.trunk(x)
        if torch.is_grad_enabled() and features.requires_grad:
            features = _ScaleGradient.apply(features, 1.0 / math.sqrt(len(self.heads)))
        out = {t: self.heads[t](features) for t in (self.heads if tasks is None else tasks)}
        for t, affine in self.outputs.items():
            if t in out:
                out[t] = affine(out[t])
        return out

    def in_dataset_units(self) -> "MultiTaskNet":
        """A copy (eval mode) whose regression outputs are `output * std + mean`: the dataset's units.

        Tasks without a transform (classification logits, or a checkpoint trained before
        standardisation, whose heads already answer in the dataset's units) pass through."""
        clone = copy.deepcopy(self)
        clone.outputs = nn.ModuleDict({t: OutputAffine(tr.mean, tr.std) for t, tr in self.target_transforms.items()
                                       if t in self.heads and tr.regression})
        return clone.eval()

    def with_heads(self, tasks: Sequence[str]) -> "MultiTaskNet":
        """A copy keeping only `tasks`' heads (deployment drops auxiliary heads)."""
        missing = [t for t in tasks if t not in self.heads]
        if missing or not tasks:
            raise ValueError(f"cannot keep heads {list(tasks)}: network has {list(self.tasks)}")
        clone = copy.deepcopy(self)
        clone.tasks = tuple(t for t in self.tasks if t in tasks)
        clone.output_channels = {t: self.output_channels[t] for t in clone.tasks}
        clone.heads = nn.ModuleDict({t: clone.heads[t] for t in clone.tasks})
        clone.outputs = nn.ModuleDict({t: m for t, m in clone.outputs.items() if t in clone.tasks})
        clone.target_transforms = {t: tr for t, tr in self.target_transforms.items() if t in clone.tasks}
        return clone

    def arch_config(self) -> dict:
        """Everything needed to rebuild this network (stored in checkpoints)."""

        cfg = asdict(self.config)
        doc = {"name": self.name, "tasks": list(self.tasks), "width": self.width,
               "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}}
        declared = declared_in(self.tasks)  # heads of declared tasks: the checkpoint says what they are
        if declared:
            doc["declared_tasks"] = declared
        return doc


def xception(tasks: Sequence[str], width: float = 1.0, **config) -> MultiTaskNet:
    cfg = XceptionConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    return MultiTaskNet("xception", tasks, width, cfg)
