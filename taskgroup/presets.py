"""Named presets: input resolution and network architecture shared by every stage.

Profiling, training, export and the pipeline must agree on the architecture and input
size, so they all read them from here. `tiny` trains a candidate in seconds (tests);
`default` is what the pipeline uses on a CPU: a narrow encoder (a quarter of `wide`'s channels,
the same task decoders), the configuration of the built-in data where the grouping decision
matters most among those measured (benchmarks/results/stakes.md: with the full encoder, one
network serves all five tasks within about 2% of any grouping). `wide` keeps that full encoder:
a regime where the honest answer is one network. `gpu` is sized for a GPU: 128x128 inputs and the
paper's channel counts (Standley et al.'s Xception encoder: 32, 64, 128, 256, then 728; its
decoders: 256, 128, 96, 64), with a shorter middle flow (two stages of two 728-channel units
instead of eight blocks of three). Training-recipe settings per preset live in taskgroup.train.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskgroup.errors import TaskgroupError


@dataclass(frozen=True)
class ArchPreset:
    model: str  # registered model name (taskgroup.models.list_models())
    model_config: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the model builder
    resolution: int = 32  # input height = width, a multiple of the model's output stride


ARCH_PRESETS: dict[str, ArchPreset] = {
    "tiny": ArchPreset(
        model="xception",
        model_config=dict(stem_channels=8, stage_channels=(8, 16, 16), decoder_channels=(8, 8, 8), blocks_per_stage=1),
        resolution=16,
    ),
    "default": ArchPreset(model="xception", model_config=dict(stem_channels=4, stage_channels=(12, 24, 48)),
                          resolution=32),
    "wide": ArchPreset(model="xception", model_config={}, resolution=32),
    # Output stride 16 (the paper's): the stem and three strided stages; one decoder step per halving.
    "gpu": ArchPreset(
        model="xception",
        model_config=dict(stem_channels=32, stage_channels=(64, 128, 256, 728, 728, 728),
                          stage_strides=(1, 2, 2, 2, 1, 1), blocks_per_stage=2, decoder_channels=(256, 128, 96, 64)),
        resolution=128,
    ),
}


def get_arch_preset(name: str) -> ArchPreset:
    try:
        return ARCH_PRESETS[name]
    except KeyError:
        raise TaskgroupError(f"unknown preset '{name}'; presets: {', '.join(ARCH_PRESETS)}") from None
