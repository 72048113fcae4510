"""`open_split`: the arrays of one split (train/val/test) for a set of tasks, memory-mapped.

The first call for a config renders (scenes) or resizes (taskonomy) the split into the disk
cache; later calls only verify the manifest and memory-map the arrays, which is fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from taskgroup.data import cache
from taskgroup.data.config import DataConfig, check_split
from taskgroup.errors import TaskgroupError
from taskgroup.tasks import get_task, parse_task_list
from taskgroup.data.folder import ENCODING_VERSION, ignore_value
from taskgroup.data import folder


@dataclass
class SplitArrays:
    """Memory-mapped arrays of one split; see docs/architecture.md ("Data") for the contract."""
    split: str
    tasks: tuple[str, ...]
    images: np.ndarray  # (N, 3, H, W) float32 RGB in [0, 1]
    targets: dict[str, np.ndarray]  # task -> (N, C, H, W) float32 in the source's units, or (N, H, W) int64 class ids
    masks: dict[str, np.ndarray]  # task -> (N, 1, H, W) bool, true where the label is defined
    segment_classes: tuple[str, ...]  # names of the class ids of segment_semantic in this source
    directory: Path  # the cache directory holding the arrays
    meta: dict[str, Any] = field(default_factory=dict)  # source-specific facts (camera intrinsics, layouts, files)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def batch(self, indices: Sequence[int] | np.ndarray):
        """(images, targets, masks) for these sample indices as torch tensors (float32 / int64 / bool).

        Reads are fancy-indexed from the memmaps in sorted order and put back in the caller's order.
        """
        import torch

        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"batch indices must be in [0, {len(self)}); got min {idx.min()}, max {idx.max()}")
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))

        def take(arr: np.ndarray) -> "torch.Tensor":
            return torch.from_numpy(np.ascontiguousarray(arr[sorted_idx][inverse]))

        images = take(self.images)
        targets = {t: take(a) for t, a in self.targets.items()}
        masks = {t: take(a) for t, a in self.masks.items()}
        return images, targets, masks

    def target_mean(self, task: str, limit: int | None = None) -> np.ndarray:
        """Per-channel mean of a regression target over defined pixels (the trivial predictor), float64 (C,)."""
        target, mask = self._sample(task, limit)
        if target.ndim == 3:
            raise TaskgroupError(f"task '{task}' is a classification task; use class_frequencies")
        m = np.broadcast_to(mask, target.shape)
        count = m.sum(axis=(0, 2, 3))
        return np.where(count > 0, (target * m).sum(axis=(0, 2, 3), dtype=np.float64) / np.maximum(count, 1), 0.0)

    def class_frequencies(self, task: str = "segment_semantic", limit: int | None = None) -> np.ndarray:
        """Fraction of defined pixels per class id (argmax is the majority class), float64 (K,)."""
        target, mask = self._sample(task, limit)
        counts = np.bincount(target[mask[:, 0]].ravel(), minlength=len(self.segment_classes)).astype(np.float64)
        return counts / max(counts.sum(), 1.0)

    def _sample(self, task: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        if task not in self.targets:
            raise TaskgroupError(f"task '{task}' was not opened; opened tasks: {', '.join(self.targets)}")
        n = len(self) if limit is None else min(limit, len(self))
        return np.asarray(self.targets[task][:n]), np.asarray(self.masks[task][:n])


def split_directory(config: DataConfig, split: str, tasks: Sequence[str] = ()) -> Path:
    return config.cache_root() / config.cache_name(cache.FORMAT_VERSION, _tasks_key(config, tasks)) / split


def _tasks_key(config: DataConfig, tasks: Sequence[str]) -> dict[str, Any] | None:
    """The folder source reads only the tasks asked for, each as its declaration says: part of the cache key."""
    if config.source != "folder":
        return None
    from taskgroup.tasks import get_task

    key: dict[str, Any] = {t: {"loss": get_task(t).loss, "channels": get_task(t).channels,
                               "ignore": ignore_value(config, t)} for t in sorted(tasks)}
    key["folder_encoding"] = ENCODING_VERSION
    return key


def open_split(config: DataConfig, split: str, tasks: Sequence[str] | str) -> SplitArrays:
    """The arrays of `split` for `tasks`, building the cache for this config first if needed."""
    if not isinstance(config, DataConfig):
        raise TaskgroupError(f"open_split: expected a DataConfig, found {type(config).__name__}")
    check_split(split)
    names = parse_task_list(tasks)
    directory = split_directory(config, split, names)
    key = {**config.content_key(), "split": split, "format_version": cache.FORMAT_VERSION}
    if config.source == "folder":
        key["tasks"] = _tasks_key(config, names)
    if not directory.exists():
        _build(config, split, directory, key, names)
    doc = cache.load_manifest(directory, key)
    available = doc["tasks"]
    missing = [t for t in names if t not in available]
    if missing:
        raise TaskgroupError(f"{directory}: task(s) {', '.join(missing)} not available in this data; "
                             f"available: {', '.join(available)}")
    files = doc["files"]
    opened: dict[str, np.ndarray] = {}

    def arr(name: str) -> np.ndarray:
        if name not in opened:
            opened[name] = cache.open_array(directory, name, files[name])
        return opened[name]

    images = arr("images.npy")
    n = doc["count"]
    targets = {t: arr(available[t]["target"]) for t in names}
    masks = {t: arr(available[t]["mask"]) for t in names}
    for t in names:
        spec = get_task(t)
        want = (n, *images.shape[2:]) if spec.loss == "cross_entropy" else (n, spec.channels, *images.shape[2:])
        if targets[t].shape != want or masks[t].shape != (n, 1, *images.shape[2:]):
            raise TaskgroupError(f"{directory}: arrays of task '{t}' have shape {targets[t].shape} / mask "
                                 f"{masks[t].shape}, expected {want} / {(n, 1, *images.shape[2:])}; delete {directory} to rebuild")
    return SplitArrays(split=split, tasks=names, images=images, targets=targets, masks=masks,
                       segment_classes=tuple(doc.get("segment_classes", ())), directory=directory,
                       meta=doc.get("meta", {}))


def _build(config: DataConfig, split: str, directory: Path, key: dict[str, Any], tasks: Sequence[str]) -> None:
    if config.source == "scenes":
        from taskgroup.data import scenes as builder
        total, what = config.split_size(split), f"rendering {split} scenes"
    elif config.source == "taskonomy":
        from taskgroup.data import taskonomy as builder
        total, what = None, f"resizing taskonomy {split} split"
    else:

        total, what = None, f"reading folder {split} split"

    def build(tmp: Path) -> dict[str, Any]:
        with _progress(what, total) as advance:
            if config.source == "folder":
                doc = folder.build_split(config, split, tmp, tasks, advance)
            else:
                doc = builder.build_split(config, split, tmp, advance)
        return {"config": key, **doc}

    cache.build_atomically(directory, build)


class _progress:
    """A transient rich progress bar on a terminal; silent otherwise (logs, tests, pipes)."""

    def __init__(self, what: str, total: int | None):
        self.what, self.total, self.bar = what, total, None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.bar.start()
            task = self.bar.add_task(self.what, total=self.total)
            return lambda k: self.bar.advance(task, k)
        return None

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
