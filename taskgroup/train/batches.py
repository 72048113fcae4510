"""A split held in memory as torch tensors, so a training batch is one fancy-index per array.

`taskgroup.data.open_split` returns memory-mapped arrays; training reads every image once
per epoch for many candidate networks, so the run copies each split into RAM once and all
candidates share it. A mask that is true everywhere is dropped (None): the loss is then a
plain mean, which is the same number computed faster.

Regression targets are held standardised (taskgroup.data.standardize): the space the
heads are trained in. `scales` keeps each task's per-channel std, so evaluation can state
losses in the dataset's units exactly (an L1 error of e in standardised units is e * std).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch


@dataclass
class TensorSplit:
    images: torch.Tensor  # (N, 3, H, W) float32 in [0, 1]
    targets: dict[str, torch.Tensor]  # task -> (N, C, H, W) float32, or (N, H, W) int64 for segmentation
    masks: dict[str, torch.Tensor | None]  # task -> (N, 1, H, W) bool, or None when every label is defined
    scales: dict[str, torch.Tensor | None] = field(default_factory=dict)  # task -> (C,) std of the standardisation

    @classmethod
    def from_arrays(cls, split: Any, tasks: Sequence[str], transforms: dict[str, Any] | None = None) -> "TensorSplit":
        """Copy a SplitArrays-like object (.images, .targets, .masks numpy arrays) into tensors,
        standardising each regression target with its TargetTransform (if given)."""
        images = torch.from_numpy(np.array(split.images, dtype=np.float32))
        targets, masks, scales = {}, {}, {}
        for task in tasks:
            t = np.asarray(split.targets[task])
            tr = (transforms or {}).get(task)
            if tr is not None and tr.regression:
                targets[task] = torch.from_numpy(tr.standardize(t))
                scales[task] = torch.tensor(tr.std, dtype=torch.float64)
            else:
                targets[task] = torch.from_numpy(np.array(t, dtype=np.int64 if t.dtype.kind in "iu" else np.float32))
                scales[task] = None
            raw = split.masks.get(task) if hasattr(split.masks, "get") else split.masks[task]
            m = None if raw is None else torch.from_numpy(np.array(raw, dtype=bool))
            masks[task] = None if m is None or bool(m.all()) else m
        return cls(images, targets, masks, scales)

    def __len__(self) -> int:
        return self.images.shape[0]

    def labelled(self, task: str) -> int:
        """Samples with at least one defined pixel of `task` (a sample without a label file has none)."""
        mask = self.masks[task]
        return len(self) if mask is None else int(mask.flatten(1).any(dim=1).sum())

    def batch(self, index: torch.Tensor, tasks: Sequence[str]):
        """(images, {task: target}, {task: mask or None}) for the rows in `index`."""
        images = self.images.index_select(0, index)
        targets = {t: self.targets[t].index_select(0, index) for t in tasks}
        masks = {t: (None if self.masks[t] is None else self.masks[t].index_select(0, index)) for t in tasks}
        return images, targets, masks

    def slice(self, start: int, stop: int, tasks: Sequence[str]):
        """Contiguous rows as views (evaluation walks a split in order)."""
        masks = {t: (None if self.masks[t] is None else self.masks[t][start:stop]) for t in tasks}
        return self.images[start:stop], {t: self.targets[t][start:stop] for t in tasks}, masks
