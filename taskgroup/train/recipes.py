"""Whether two runs train the same networks, and which measured seed noise holds for a run.

A preset's seed-noise record (taskgroup.seednoise) measured one recipe; it holds for a run trained
with that recipe, whatever its seed or ESA snapshot (neither changes a fully trained network's
spread). Comparing recipes needs the train fields' defaults (a record or table written before a
field existed trained with its default), so it lives with the training config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from taskgroup.estimatorquality import EstimatorQuality, for_preset as quality_for_preset
from taskgroup.seednoise import SeedNoise, for_preset
from taskgroup.presets import ARCH_PRESETS
from taskgroup.train.config import TRAIN_PRESETS, make_run_config
from taskgroup.train.config import TrainConfig

IGNORED_CONFIG = ("seed", "esa_fraction")  # neither changes a fully trained network's spread


def same_recipe(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two run configs (RunConfig.to_dict()) train the same networks up to the seed (and the ESA
    snapshot, which does not change the fully trained network)."""
    return _comparable(a) == _comparable(b)


def seed_noise_for(preset: str, config: Any) -> SeedNoise | None:
    """The preset's seed-noise record if `config` (a RunConfig or its dict, as a loss table stores it) is
    the recipe it measured, else None."""
    if not isinstance(preset, str) or "/" in preset or "\\" in preset:
        return None
    record = for_preset(preset)
    doc = config.to_dict() if hasattr(config, "to_dict") else config
    ok = record is not None and isinstance(doc, Mapping) and same_recipe(record.run_config, doc)
    return record if ok else None


def shipped_preset(run_config: Mapping[str, Any]) -> str | None:
    """The preset whose shipped recipe `run_config` is, whatever name the run recorded (a preset renamed
    since keeps its measurements: the recipe decides), or None."""

    for name in sorted(set(TRAIN_PRESETS) & set(ARCH_PRESETS)):
        if same_recipe({**make_run_config(name).to_dict(), "preset": None}, {**run_config, "preset": None}):
            return name
    return None


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run config without the fields that do not change a trained network's spread, its train
    fields completed with the defaults of fields added after it was written (the behaviour before)."""

    out = {k: v for k, v in config.items() if k not in IGNORED_CONFIG}
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(TrainConfig)}
    out["train"] = {**defaults, **dict(config.get("train") or {})}
    return out


def estimator_quality_for(preset: str, config: Any, tasks, objective: str) -> EstimatorQuality | None:
    """The preset's estimator quality record if `config` is the recipe its benchmark trained, on the
    same tasks and selection objective; else None (a benchmark of other tasks says little about these)."""
    if not isinstance(preset, str) or "/" in preset or "\\" in preset:
        return None
    record = quality_for_preset(preset)
    doc = config.to_dict() if hasattr(config, "to_dict") else config
    ok = (record is not None and isinstance(doc, Mapping) and same_recipe(record.run_config, doc)
          and sorted(record.tasks) == sorted(tasks) and record.objective == objective)
    return record if ok else None
