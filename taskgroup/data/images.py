"""Reading label and image files of the file-based loaders (a folder of files, Taskonomy).

One reader so that every loader accepts the same files and refuses the rest with the same words:
8- or 16-bit images as stored, colour in RGB order (OpenCV reads BGR), grey plus alpha as grey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taskgroup.errors import TaskgroupError


def read_image(path: Path, source: str) -> np.ndarray:
    """(h, w) or (h, w, c) integer values as stored; `source` names the loader in errors."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise TaskgroupError(f"{source}: cannot read {path} as an image")
    if img.dtype not in (np.uint8, np.uint16):
        raise TaskgroupError(f"{source}: {path}: expected an 8- or 16-bit image, found {img.dtype}")
    if img.ndim == 3:
        img = img[:, :, 2::-1] if img.shape[2] >= 3 else img[:, :, :1]  # BGR(A) -> RGB; grey+alpha -> grey
    return img
