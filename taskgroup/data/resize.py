"""Resizing labels and their masks to the training resolution, shared by the file-based loaders.

Area averaging (OpenCV's INTER_AREA, the rule the runtime reproduces in numpy for camera frames)
for images and dense targets, nearest neighbour for class ids; a resized mask keeps a pixel only
where every source pixel under it was labelled, so averaging never invents a label.
"""

from __future__ import annotations

import numpy as np


def resize_square(values: np.ndarray, res: int, nearest: bool = False) -> np.ndarray:
    """(h, w[, c]) -> (res, res[, c]); area averaging, or nearest neighbour for ids."""
    import cv2

    if values.shape[:2] == (res, res):
        return values
    out = cv2.resize(values, (res, res), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
    return out[:, :, None] if values.ndim == 3 and out.ndim == 2 else out


def resize_mask(valid: np.ndarray, res: int) -> np.ndarray:
    """An output pixel is defined only if every source pixel under it is."""
    if valid.shape == (res, res):
        return valid
    return resize_square(valid.astype(np.float32), res) >= 1.0 - 1e-6
