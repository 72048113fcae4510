"""Named presets: input resolution and network architecture shared by every stage.

Profiling, training, export and the pipeline must agree on the architecture and input
size, so they all read them from here. `tiny` trains a candidate in seconds (tests);
`default` is what the pipeline uses on a CPU: a narrow encoder (a quarter of `wide`'s channels,
the same task decoders), the configuration of the built-in data where the grouping decision
matters most among those measured (benchmarks/results/stakes.md: with the full encoder, one
network serves all five tasks within about 2% of any grouping). `wide` keeps that full encoder:
a regime where the honest answer is one network. Training-recipe settings per preset live in
taskgroup.train.
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
}


def get_arch_preset(name: str) -> ArchPreset:
    try:
        return ARCH_PRESETS[name]
    except KeyError:
        raise TaskgroupError(f"unknown preset '{name}'; presets: {', '.join(ARCH_PRESETS)}") from None
