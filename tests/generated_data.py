"""Small datasets written at test time in the layouts users bring: Taskonomy's (16-bit
heavy-tailed edge and keypoint maps, like the released data) and the plain folder layout
(a declared regression and a declared classification task, missing labels).

Images are 48x48 grids of 12-px cells, each cell one colour of a small palette, so a network
at 32 px (stride 8: one feature per cell) can tell which cells differ. Targets follow from the
cells: texture edges on borders between different colours, keypoints where three or more
colours meet, "wetness" from the cell's colour, "terrain" the colour's class.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SIZE, CELL = 48, 12
PALETTE = np.array([[200, 60, 50], [60, 170, 70], [50, 80, 200], [220, 210, 80], [120, 120, 120]], np.uint8)
WETNESS = np.array([300.0, 900.0, 5200.0, 1500.0, 600.0])  # per palette colour, a 16-bit value
EDGE_MEAN = 300.0  # target mean of the 16-bit edge map (Taskonomy-like: mostly 0, long tail)


def cells(rng) -> np.ndarray:
    """(4, 4) palette indices; neighbours repeat often, so edges are sparse."""
    grid = rng.integers(0, len(PALETTE), size=(SIZE // CELL, SIZE // CELL))
    same = rng.random(grid.shape) < 0.35
    grid[:, 1:][same[:, 1:]] = grid[:, :-1][same[:, 1:]]
    return grid


def render(grid: np.ndarray, rng) -> np.ndarray:
    """(48, 48, 3) uint8 RGB with a little noise."""
    img = PALETTE[np.kron(grid, np.ones((CELL, CELL), int))].astype(np.float64)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def index_map(grid: np.ndarray) -> np.ndarray:
    return np.kron(grid, np.ones((CELL, CELL), int))


GREY = PALETTE.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def edge_strength(grid: np.ndarray) -> np.ndarray:
    """Soft 1-px lines on borders between different colours, stronger with more contrast: sparse,
    long-tailed (a sharp 1-px line is not learnt under L1 at stride 8: its per-pixel median is 0)."""
    ids = index_map(grid)
    grey = GREY[ids]
    edge = np.zeros(ids.shape, np.float32)
    edge[:, 1:] = (ids[:, 1:] != ids[:, :-1]) * (0.2 + np.abs(grey[:, 1:] - grey[:, :-1]) / 100)
    edge[1:] = np.maximum(edge[1:], (ids[1:] != ids[:-1]) * (0.2 + np.abs(grey[1:] - grey[:-1]) / 100))
    return cv2.GaussianBlur(edge, (0, 0), 0.7)


def keypoint_heat(grid: np.ndarray) -> np.ndarray:
    ids = index_map(grid)
    heat = np.zeros(ids.shape, np.float32)
    for i in range(CELL, SIZE, CELL):
        for j in range(CELL, SIZE, CELL):
            if len({ids[i - 1, j - 1], ids[i - 1, j], ids[i, j - 1], ids[i, j]}) >= 3:
                heat[i - 1:i + 1, j - 1:j + 1] = 1.0
    return cv2.GaussianBlur(heat, (0, 0), 2.0)


def _png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img[:, :, ::-1] if img.ndim == 3 else img)


def _sixteen_bit(strength: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.round(strength * scale), 0, 65535).astype(np.uint16)


def _scales(seed: int) -> tuple[float, float]:
    """Scales that put the 16-bit edge map's mean at ~300 (keypoints ~50, as Taskonomy's loader assumes)."""
    rng = np.random.default_rng(seed + 999)
    grids = [cells(rng) for _ in range(200)]
    edge = np.mean([edge_strength(g).mean() for g in grids])
    keys = np.mean([keypoint_heat(g).mean() for g in grids])
    return EDGE_MEAN / edge, 50.0 / max(keys, 1e-9)


def taskonomy_dataset(root: Path, seed: int = 0, per_building: int = 64,
                      buildings=(("train", ("alpha", "bravo", "charlie", "delta")), ("val", ("echo",)),
                                 ("test", ("foxtrot",)))) -> dict[str, list[str]]:
    """rgb, edge_texture and keypoints2d in Taskonomy's layout, 16-bit targets; returns the split's buildings."""
    rng = np.random.default_rng(seed)
    edge_scale, key_scale = _scales(seed)
    out = {}
    for split, names in buildings:
        out[split] = list(names)
        for b in names:
            for k in range(per_building):
                grid = cells(rng)
                stem = f"point_{k}_view_0"
                _png(root / "rgb" / b / f"{stem}_domain_rgb.png", render(grid, rng))
                _png(root / "edge_texture" / b / f"{stem}_domain_edge_texture.png", _sixteen_bit(edge_strength(grid), edge_scale))
                _png(root / "keypoints2d" / b / f"{stem}_domain_keypoints2d.png", _sixteen_bit(keypoint_heat(grid), key_scale))
    return out


FOLDER_TASKS_TOML = """
[tasks.wetness]
channels = 1
loss = "l1"
meaning = "how wet the surface looks"
units = "16-bit PNG value (wetness x 1000)"
ignore_value = 65535

[tasks.terrain]
loss = "cross_entropy"
classes = ["red", "green", "blue", "yellow", "grey"]
ignore_index = 255
"""


def folder_dataset(root: Path, seed: int = 1, sizes=(("train", 256), ("val", 64), ("test", 64)),
                   missing: float = 0.4) -> None:
    """The folder layout: built-in edge_texture (16-bit) plus declared wetness and terrain.

    A fraction `missing` of the samples has no wetness file and another of no terrain file;
    wetness marks the outer 2-px frame as unlabelled (65535), terrain its top row of cells (255)."""
    rng = np.random.default_rng(seed)
    edge_scale, _ = _scales(seed)
    for split, n in sizes:
        for k in range(n):
            grid = cells(rng)
            sid = f"img{k:04d}"
            suffix = ".jpg" if k % 5 == 0 else ".png"  # both image formats
            img = render(grid, rng)
            path = root / split / "rgb" / f"{sid}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            params = [cv2.IMWRITE_JPEG_QUALITY, 98] if suffix == ".jpg" else []
            assert cv2.imwrite(str(path), img[:, :, ::-1], params)
            _png(root / split / "edge_texture" / f"{sid}.png", _sixteen_bit(edge_strength(grid), edge_scale))
            ids = index_map(grid)
            if rng.random() >= missing:
                wet = WETNESS[ids].astype(np.uint16)
                wet[:2], wet[-2:], wet[:, :2], wet[:, -2:] = 65535, 65535, 65535, 65535
                _png(root / split / "wetness" / f"{sid}.png", wet)
            (root / split / "wetness").mkdir(parents=True, exist_ok=True)
            (root / split / "terrain").mkdir(parents=True, exist_ok=True)
            if rng.random() >= missing:
                terrain = ids.astype(np.uint8)
                terrain[:CELL] = 255
                if k % 2:
                    np.save(root / split / "terrain" / f"{sid}.npy", terrain.astype(np.int32))
                else:
                    _png(root / split / "terrain" / f"{sid}.png", terrain)
            (root / split / "terrain").mkdir(parents=True, exist_ok=True)


PHOTO_TASKS_TOML = """
[tasks.brightness]
channels = 1
loss = "l2"
meaning = "local brightness: mean of R, G and B over a 5x5 window"
units = "8-bit grey level (0..255)"

[tasks.sobel_edges]
channels = 1
loss = "l1"
meaning = "Sobel gradient magnitude of the grey image"
units = "16-bit PNG value (magnitude x 16)"
"""


def photo_crops(n: int, band: tuple[float, float], size: int, seed: int, photo=None) -> list[np.ndarray]:
    """`n` random size x size RGB crops of a real photograph (matplotlib's sample of Grace Hopper,
    shipped with matplotlib) whose top-left corners lie in `band` (fractions of the height), so that
    the splits see different parts of the photograph."""
    if photo is None:
        import matplotlib.cbook

        photo = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))[:, :, ::-1]
    rng = np.random.default_rng(seed)
    h, w = photo.shape[:2]
    lo, hi = int(band[0] * (h - size)), int(band[1] * (h - size))
    return [np.ascontiguousarray(photo[y:y + size, x:x + size])
            for y, x in zip(rng.integers(lo, hi + 1, n), rng.integers(0, w - size + 1, n))]


def brightness(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32: mean of the channels, box-filtered over 5x5 (reflected borders)."""
    return cv2.blur(rgb.astype(np.float32).mean(axis=2), (5, 5), borderType=cv2.BORDER_REFLECT_101)


def sobel_edges(rgb: np.ndarray) -> np.ndarray:
    """(H, W) uint16: 16 x the Sobel gradient magnitude of the grey image."""
    grey = rgb.astype(np.float32).mean(axis=2)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    return np.clip(np.round(np.hypot(gx, gy) * 16), 0, 65535).astype(np.uint16)


def photo_dataset(root: Path, sizes=(("train", 48), ("val", 16), ("test", 16)), size: int = 40,
                  missing: float = 0.25, seed: int = 0, photos=None) -> None:
    """The folder layout from crops of real photographs: declared `brightness` (.npy, l2) and
    `sobel_edges` (16-bit PNG, l1); a fraction `missing` of the training samples has no sobel_edges
    file. `photos`: split -> an RGB photograph to crop (default: matplotlib's sample photograph in
    three disjoint horizontal bands)."""
    bands = {"train": (0.0, 0.5), "val": (0.55, 0.75), "test": (0.8, 1.0)}
    for k, (split, n) in enumerate(sizes):
        photo = photos.get(split) if photos else None
        crops = photo_crops(n, bands[split] if photo is None else (0.0, 1.0), size, seed + k, photo)
        rng = np.random.default_rng(seed + 100 + k)
        drop = set(rng.choice(n, int(round(missing * n)), replace=False).tolist()) if split == "train" else set()
        for folder in ("rgb", "brightness", "sobel_edges"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i, rgb in enumerate(crops):
            sid = f"photo{i:04d}"
            _png(root / split / "rgb" / f"{sid}.png", rgb)
            np.save(root / split / "brightness" / f"{sid}.npy", brightness(rgb))
            if i not in drop:
                _png(root / split / "sobel_edges" / f"{sid}.png", sobel_edges(rgb))
