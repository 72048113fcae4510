"""Target standardisation: the affine map between a task's values in the dataset's units and
the space its network head is trained in.

Regression targets come in whatever units the data source encodes (metres on a log scale,
16-bit PNG values, ...). A head trained with SGD on targets of size 0.004 or 65,000 learns
nothing useful at the recipe's learning rate, so every regression task is trained on
`(value - mean) / std` per channel, which is of order 1:
- Taskonomy: the paper's fixed constants (tstandley/taskgrouping, taskonomy_loader.py), in
  the loader's units (taskgroup.data.taskonomy.PAPER_STANDARDIZATION);
- every other source: mean and standard deviation per channel over the defined pixels of
  the training split, measured once per run and stored with it;
- a declared task (`[tasks.NAME]`) may instead fix the constants (`transform = { mean = [..],
  std = [..] }`) or train on its values as they are (`transform = "none"`).
Classification tasks (cross-entropy, multi-label BCE) are trained on their labels as they
are; their outputs are logits.

The transform travels with the run (results store, losses.json), with every checkpoint and
into the bundle manifest; the exported graph multiplies by `std` and adds `mean`, so a
deployed network answers in the dataset's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from taskgroup.errors import SchemaError
from taskgroup.tasks import get_task
from taskgroup.data.folder import UNITS_BCE
from taskgroup.data import taskonomy
from taskgroup.data import scenes
from taskgroup.data.folder import UNITS

MEASURED = "mean and std per channel over the defined pixels of the training split"


@dataclass(frozen=True)
class TargetTransform:
    """One task's units and the standardisation its head is trained with."""

    task: str
    units: str  # what a value in the dataset's units means (e.g. "16-bit PNG value")
    mean: tuple[float, ...] | None  # per channel; None for classification tasks (outputs are logits)
    std: tuple[float, ...] | None  # per channel, > 0; None for classification tasks
    origin: str = MEASURED  # how mean and std were chosen
    value_range: tuple[float, float] | None = None  # range of the dataset's values, where the encoding bounds it

    @property
    def regression(self) -> bool:
        return self.mean is not None

    def standardize(self, values: np.ndarray) -> np.ndarray:
        """(N, C, H, W) values in the dataset's units -> training space, float32 (a new array)."""
        if not self.regression:
            return values
        mean = np.asarray(self.mean, np.float64).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, np.float64).reshape(1, -1, 1, 1)
        return ((np.asarray(values, np.float64) - mean) / std).astype(np.float32)

    def to_dataset_units(self, values: np.ndarray) -> np.ndarray:
        """The inverse: training-space outputs (N, C, H, W) -> the dataset's units."""
        if not self.regression:
            return values
        mean = np.asarray(self.mean, np.float64).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, np.float64).reshape(1, -1, 1, 1)
        return (np.asarray(values, np.float64) * std + mean).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"units": self.units, "value_range": list(self.value_range) if self.value_range else None,
                "mean": list(self.mean) if self.mean is not None else None,
                "std": list(self.std) if self.std is not None else None, "origin": self.origin}

    @classmethod
    def from_json(cls, task: str, doc: Any, where: object) -> "TargetTransform":
        field = f"targets.{task}"
        if not isinstance(doc, dict):
            raise SchemaError(where, field, "expected an object with units, mean, std, origin")
        mean, std = doc.get("mean"), doc.get("std")
        if (mean is None) != (std is None):
            raise SchemaError(where, field, "mean and std must both be given or both be null")
        if mean is not None:
            for name, values in (("mean", mean), ("std", std)):
                if not isinstance(values, list) or not values or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                    raise SchemaError(where, f"{field}.{name}", "expected a non-empty list of finite numbers")
            if len(mean) != len(std):
                raise SchemaError(where, field, f"mean has {len(mean)} channels, std {len(std)}")
            if not all(s > 0 for s in std):
                raise SchemaError(where, f"{field}.std", "every channel's std must be > 0")
        units = doc.get("units")
        if not isinstance(units, str):
            raise SchemaError(where, f"{field}.units", "expected a string")
        vr = doc.get("value_range")
        if vr is not None and not (isinstance(vr, list) and len(vr) == 2 and all(isinstance(v, (int, float)) for v in vr)):
            raise SchemaError(where, f"{field}.value_range", "expected [low, high] or null")
        return cls(task, units, tuple(float(v) for v in mean) if mean is not None else None,
                   tuple(float(v) for v in std) if std is not None else None, str(doc.get("origin", "")),
                   (float(vr[0]), float(vr[1])) if vr else None)


def transforms_to_json(transforms: dict[str, TargetTransform]) -> dict[str, Any]:
    return {t: tr.to_json() for t, tr in transforms.items()}


def transforms_from_json(doc: Any, where: object) -> dict[str, TargetTransform]:
    if not isinstance(doc, dict):
        raise SchemaError(where, "targets", "expected an object task -> transform")
    return {t: TargetTransform.from_json(t, d, where) for t, d in doc.items()}


def measure(targets: np.ndarray, masks: np.ndarray | None, chunk: int = 256) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (N, C, H, W) values over defined pixels (float64, chunked).

    A channel with no defined pixel gets mean 0; a constant channel (std 0) gets std 1, so the
    transform stays invertible and leaves its values' scale alone.
    """
    n, channels = targets.shape[0], targets.shape[1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    count = 0.0
    shift = None  # subtracting a first estimate keeps the sums of squares well conditioned
    for s in range(0, n, chunk):
        t = np.asarray(targets[s:s + chunk], np.float64)
        m = np.ones((t.shape[0], 1, *t.shape[2:]), bool) if masks is None else np.asarray(masks[s:s + chunk], bool)
        if shift is None and m.any():
            shift = np.array([t[:, c][m[:, 0]].mean() for c in range(channels)])
        if shift is None:
            continue
        d = (t - shift.reshape(1, -1, 1, 1)) * m
        total += d.sum(axis=(0, 2, 3))
        total_sq += (d * d).sum(axis=(0, 2, 3))
        count += float(m.sum())
    if count == 0:
        return (0.0,) * channels, (1.0,) * channels
    mean_d = total / count
    var = np.maximum(total_sq / count - mean_d ** 2, 0.0)
    mean = mean_d + shift
    std = np.sqrt(var)
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def fit_transforms(data_config: Any, train: Any, tasks: Sequence[str]) -> dict[str, TargetTransform]:
    """Each task's transform: the source's fixed constants where it has them (Taskonomy), else
    measured on `train` (SplitArrays-like: .targets, .masks). Classification tasks get none."""

    source = getattr(data_config, "source", None)
    out: dict[str, TargetTransform] = {}
    for task in tasks:
        spec = get_task(task)
        units, value_range, fixed = source_units(source, task)
        if spec.units:
            units = spec.units
        if spec.loss == "bce" and source == "folder":

            units = spec.units or UNITS_BCE
        if isinstance(spec.transform, tuple):
            fixed = (*spec.transform, "constants declared in the task's [tasks.NAME] table")
        elif spec.transform == "none":
            fixed = ((0.0,) * spec.channels, (1.0,) * spec.channels, "none: trained on the values as they are (declared)")
        if not spec.regression:
            out[task] = TargetTransform(task, units, None, None, "none: a classification task (outputs are logits)",
                                        value_range)
            continue
        if fixed is not None:
            mean, std, origin = fixed
        else:
            masks = train.masks.get(task) if hasattr(train.masks, "get") else train.masks[task]
            (mean, std), origin = measure(train.targets[task], masks), MEASURED
        if len(mean) != spec.channels:
            raise SchemaError(f"{source} data", f"targets.{task}", f"{len(mean)} constants for {spec.channels} channels")
        out[task] = TargetTransform(task, units, tuple(mean), tuple(std), origin, value_range)
    return out


def source_units(source: str | None, task: str) -> tuple[str, tuple[float, float] | None,
                                                          tuple[tuple[float, ...], tuple[float, ...], str] | None]:
    """(units, value range, fixed (mean, std, origin) or None) of a task in a data source."""
    if source == "taskonomy":

        units, value_range = taskonomy.TARGET_UNITS[task]
        fixed = taskonomy.PAPER_STANDARDIZATION.get(task)
        return units, value_range, (*fixed, taskonomy.PAPER_ORIGIN) if fixed else None
    if source == "scenes":

        units, value_range = scenes.TARGET_UNITS[task]
        return units, value_range, None
    if source == "folder":

        return UNITS, None, None
    return "the data's own values", None, None
