"""Frames that exported networks are checked on.

Real validation frames come from the data module (`taskgroup.data.open_split`); when they
are not available, a deterministic mix of random and structured frames (constants,
gradients, checkerboards, colour blocks) exercises the full input range instead.
"""

from __future__ import annotations

import numpy as np
from taskgroup.data import open_split


def synthetic_frames(n: int, resolution: int, seed: int = 0) -> np.ndarray:
    """`n` float32 (3, R, R) RGB frames in [0, 1], the same for the same arguments."""
    rng = np.random.default_rng(seed)
    r = resolution
    yy, xx = np.mgrid[0:r, 0:r].astype(np.float32) / max(1, r - 1)
    structured = [
        np.zeros((3, r, r), np.float32),
        np.ones((3, r, r), np.float32),
        np.stack([xx, yy, 1 - xx]),
        np.broadcast_to(((np.indices((r, r)).sum(0) // max(1, r // 8)) % 2).astype(np.float32), (3, r, r)),
        np.stack([(xx > 0.5), (yy > 0.5), (xx + yy > 1)]).astype(np.float32),
    ]
    frames = [f for f in structured[:n]]
    while len(frames) < n:
        frames.append(rng.random((3, r, r), dtype=np.float32))
    return np.ascontiguousarray(np.stack(frames)).astype(np.float32)


def validation_frames(data_config, tasks, n: int) -> tuple[np.ndarray, str]:
    """The first `n` frames of the validation split described by `data_config` (a taskgroup DataConfig)."""

    split = open_split(data_config, "val", list(tasks))
    images = np.asarray(split.images[:n], dtype=np.float32)
    # Splits cached before the loaders clipped their area resize hold values up to ~1e-7 past [0, 1]
    # (OpenCV's float32 weights); those are 0 and 1, anything further out is left for the check to refuse.
    near = (images >= -1e-6) & (images <= 1 + 1e-6)
    images = np.ascontiguousarray(np.where(near, np.clip(images, 0, 1), images))
    return images, (f"val split ({data_config.source}, {len(images)} frames, "
                    f"{data_config.resolution}px, seed {data_config.seed})")
