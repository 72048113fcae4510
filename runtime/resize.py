"""Camera frames of any size -> the bundle's input size, by the rule the training images went through.

The folder and Taskonomy loaders resize every image to the networks' square input with OpenCV's
area interpolation (`cv2.resize(image / 255, (W, H), interpolation=cv2.INTER_AREA)`: the whole
image, stretched, aspect ratio not kept). The runtime does not depend on OpenCV, so the same
rule is written here in numpy, as one weight matrix per axis (`out = Wy @ image @ Wx.T`):

- shrinking along both axes (src >= dst): each output pixel is the mean of the source pixels
  its footprint covers, partly covered pixels weighted by the part covered (OpenCV's
  `resizeArea`);
- otherwise (a frame smaller than the input along an axis): OpenCV's INTER_AREA falls back to
  a linear interpolation whose weights come from the pixel footprints (`fx = (d + 1) - (s + 1) /
  scale`, wrapped to [0, 1)), with the border pixel repeated; the same weights are used here.

Values are computed in float64 from the 8-bit frame; the result matches `cv2.resize` on the
same frame to within OpenCV's float32 weights (about 1e-7 relative), which
tests/runtime/test_resize.py checks against the loaders' own resize (taskgroup.data.resize).
"""

from __future__ import annotations

import functools

import numpy as np

METHOD = "area"
RULE = ("the whole frame resized to the input's H x W (aspect ratio not kept) by area averaging, as the training "
        "loader resized its images: cv2.resize(frame / 255, (W, H), interpolation=cv2.INTER_AREA), computed here "
        "in numpy; a fused bundle's uint8 input is that value x 255 rounded to the nearest integer")


@functools.lru_cache(maxsize=32)
def axis_weights(src: int, dst: int, shrink: bool) -> np.ndarray:
    """(dst, src) float64 weights of one axis; `shrink`: both axes shrink (area footprints), else linear."""
    scale = src / dst
    w = np.zeros((dst, src), np.float64)
    if shrink:
        for d in range(dst):
            f1 = d * scale
            f2 = f1 + scale
            s1, s2 = int(np.ceil(f1)), int(np.floor(f2))
            cell = min(scale, src - f1)
            if s1 - f1 > 1e-3:
                w[d, s1 - 1] += (s1 - f1) / cell
            for s in range(s1, min(s2, src)):
                w[d, s] += 1.0 / cell
            if f2 - s2 > 1e-3 and s2 < src:
                w[d, s2] += min(min(f2 - s2, 1.0), cell) / cell
    else:
        inv = dst / src
        for d in range(dst):
            s = int(np.floor(d * scale))
            f = (d + 1) - (s + 1) * inv
            f = 0.0 if f <= 0 else f - np.floor(f)
            if s < 0:
                s, f = 0, 0.0
            if s >= src - 1:
                s, f = src - 1, 0.0
            w[d, s] += 1.0 - f
            if f:
                w[d, s + 1] += f
    w.setflags(write=False)
    return w


def resize_area(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, H, W, C) frames (any real dtype) -> (N, height, width, C) float64, by the rule above."""
    n, h, w, c = frames.shape
    if (h, w) == (height, width):
        return frames.astype(np.float64)
    shrink = h >= height and w >= width
    wy, wx = axis_weights(h, height, shrink), axis_weights(w, width, shrink)
    # Rows first: each output row is a weighted sum of the few source rows its band covers (a dense
    # product would multiply mostly zeros), then columns, as one small product on what is left.
    x = frames.reshape(n, h, w * c)
    rows = np.empty((n, height, w * c), np.float64)
    for y, (lo, hi) in enumerate(_bands(h, height, shrink)):
        rows[:, y] = np.tensordot(wy[y, lo:hi], x[:, lo:hi], axes=(0, 1))
    return np.matmul(wx, rows.reshape(n, height, w, c))  # (N, height, width, C)


@functools.lru_cache(maxsize=32)
def _bands(src: int, dst: int, shrink: bool) -> tuple[tuple[int, int], ...]:
    """Per output index, the [lo, hi) range of source indices with a non-zero weight."""
    w = axis_weights(src, dst, shrink)
    out = []
    for row in w:
        nz = np.flatnonzero(row)
        out.append((int(nz[0]), int(nz[-1]) + 1))
    return tuple(out)
