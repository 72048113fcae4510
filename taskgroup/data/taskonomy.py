"""Taskonomy on disk -> the same cached split arrays as the built-in scenes.

Expected layout (the released Taskonomy layout):
    <root>/rgb/<building>/point_<P>_view_<V>_domain_rgb.png
    <root>/<task>/<building>/point_<P>_view_<V>_domain_<task>.png

Splits are lists of building names (the paper splits by building). Every task folder present
under <root> is read; an rgb image without a file in a task's folder has no label for that
task (its mask is false; the paper's loader silently reused the previous sample instead),
and an unreadable file is an error naming it. Images are resized to the configured square resolution: area averaging for
continuous values, nearest neighbour for class ids; masks are kept only where every source
pixel under the output pixel is defined.

Units. Values are kept as the paper's loader reads them, so its fixed standardisation
constants apply unchanged (taskgroup.data.standardize; PAPER_STANDARDIZATION below):
- depth_zbuffer, edge_texture, edge_occlusion, keypoints2d (16-bit PNGs): the stored integer
  value (depth in units of 1/512 m); depth is defined where d < 2^13, the paper's mask (65535
  marks missing depth, and it also drops depth beyond 16 m);
- normal (8-bit RGB), reshading (8-bit; mean of its channels, as in the paper),
  principal_curvature (8-bit; first two channels, as in the paper): value / 255;
- segment_semantic (8-bit class ids 0..17): kept as ids; 0 is "unlabeled" and masked (the
  paper's cross-entropy uses ignore_index=0); 1 is background and is a trained class.
Masks follow the paper's losses: the depth mask applies to depth_zbuffer, normal,
reshading, edge_occlusion and principal_curvature (all true for a sample without a depth
file); edge_texture, keypoints2d and rgb are defined everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.tasks import TASKS
from taskgroup.data.images import read_image
from taskgroup.data.resize import resize_mask, resize_square

SEGMENT_CLASSES: tuple[str, ...] = ("unlabeled", "background") + tuple(f"class_{i}" for i in range(2, 18))
DEPTH_VALID_BELOW = 2 ** 13  # paper: mask = depth < 2**13
ENCODING_VERSION = 2  # part of the cache key; 2: 16-bit values kept as stored (1 divided them by 65535, log depth)
SIXTEEN_BIT = ("depth_zbuffer", "edge_texture", "edge_occlusion", "keypoints2d")
TARGET_UNITS: dict[str, tuple[str, tuple[float, float] | None]] = {
    "segment_semantic": ("class id 0..17 as stored (0 = unlabeled, masked; 1 = background)", None),
    "depth_zbuffer": ("16-bit PNG value: z-buffer depth in units of 1/512 m (defined below 8192, i.e. 16 m)",
                      (0.0, 65535.0)),
    "normal": ("8-bit PNG value / 255: surface normal xyz mapped from [-1, 1] to [0, 1]", (0.0, 1.0)),
    "reshading": ("mean of the 8-bit PNG channels / 255", (0.0, 1.0)),
    "edge_occlusion": ("16-bit PNG value: occlusion-edge strength", (0.0, 65535.0)),
    "edge_texture": ("16-bit PNG value: texture-edge strength", (0.0, 65535.0)),
    "keypoints2d": ("16-bit PNG value: 2D keypoint heat", (0.0, 65535.0)),
    "principal_curvature": ("first two 8-bit PNG channels / 255 (zero curvature at 127/255)", (0.0, 1.0)),
    "rgb": ("8-bit RGB / 255", (0.0, 1.0)),
}
# The paper's loader standardises as (value - mean) / std with these constants, in the units
# above (tstandley/taskgrouping, taskonomy_loader.py; normals: (n - 0.5) * 2). rgb has none
# there and is measured on the training split like any other source.
PAPER_STANDARDIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "depth_zbuffer": ((1500.0,), (1000.0,)),
    "edge_occlusion": ((56.0248,), (239.1265,)),
    "keypoints2d": ((50.0,), (100.0,)),
    "edge_texture": ((718.0,), (1070.0,)),
    "normal": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "reshading": ((0.4962,), (0.2846,)),
    "principal_curvature": ((0.5175, 0.4987), (0.1373, 0.0359)),
}
PAPER_ORIGIN = "the paper's fixed Taskonomy constants (tstandley/taskgrouping taskonomy_loader.py)"
DEPTH_MASKED = ("depth_zbuffer", "normal", "reshading", "edge_occlusion", "principal_curvature")
RGB_SUFFIX = "_domain_rgb.png"


def _read(path: Path) -> np.ndarray:
    if not path.is_file():
        raise TaskgroupError(f"taskonomy: missing file {path}")
    return read_image(path, "taskonomy")


def _unit(img: np.ndarray) -> np.ndarray:
    """Integer PNG values -> [0, 1] by the maximum of their bit depth."""
    return img.astype(np.float64) / np.iinfo(img.dtype).max


def _channels(img: np.ndarray, count: int, path: Path) -> np.ndarray:
    img = img[:, :, None] if img.ndim == 2 else img
    if img.shape[2] < count:
        raise TaskgroupError(f"taskonomy: {path}: expected at least {count} channel(s), found {img.shape[2]}")
    return img[:, :, :count]


def load_sample(root: Path, building: str, stem: str, task: str, res: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One task's target at `res` in the contract's encoding, and its own mask (None: defined everywhere)."""
    path = root / task / building / f"{stem}_domain_{task}.png"
    img = _read(path)
    if task == "segment_semantic":
        ids = img if img.ndim == 2 else img[:, :, 0]
        if ids.max() >= len(SEGMENT_CLASSES):
            raise TaskgroupError(f"taskonomy: {path}: class id {int(ids.max())} out of range 0..{len(SEGMENT_CLASSES) - 1}")
        ids = resize_square(ids, res, nearest=True).astype(np.int64)
        return ids, ids != 0
    if task == "depth_zbuffer":
        d = _channels(img, 1, path)[:, :, 0]
        if d.dtype != np.uint16:
            raise TaskgroupError(f"taskonomy: {path}: depth_zbuffer must be a 16-bit PNG, found {d.dtype}")
        return resize_square(d.astype(np.float64), res)[None], resize_mask(d < DEPTH_VALID_BELOW, res)
    if task == "reshading":
        value = _unit(img) if img.ndim == 2 else _unit(img)[:, :, :3].mean(axis=2)  # paper: mean over channels
        return resize_square(value, res)[None], None
    channels = TASKS[task].channels
    img = _channels(img, channels, path)
    if task in SIXTEEN_BIT:
        if img.dtype != np.uint16:
            raise TaskgroupError(f"taskonomy: {path}: {task} must be a 16-bit PNG, found {img.dtype}")
        value = img.astype(np.float64)
    else:
        value = _unit(img)
    return np.moveaxis(resize_square(value, res), -1, 0), None


def _rgb_stems(root: Path, building: str) -> list[str]:
    folder = root / "rgb" / building
    if not folder.is_dir():
        available = sorted(p.name for p in (root / "rgb").iterdir() if p.is_dir())
        shown = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "")
        raise TaskgroupError(f"taskonomy: building '{building}' not found: no folder {folder}; available: {shown or 'none'}")
    stems = sorted(p.name[: -len(RGB_SUFFIX)] for p in folder.iterdir() if p.name.endswith(RGB_SUFFIX))
    if not stems:
        raise TaskgroupError(f"taskonomy: {folder} holds no *{RGB_SUFFIX} images")
    return stems


def available_tasks(root: Path) -> list[str]:
    """Tasks with a folder under root (rgb is always available: it is the input)."""
    return [t for t in TASKS if t == "rgb" or (root / t).is_dir()]


def build_split(config, split: str, directory, progress: Callable[[int], None] | None = None) -> dict:
    """Read, normalise and resize one split's buildings into `directory`; returns the manifest fields."""
    from numpy.lib.format import open_memmap

    directory = Path(directory)
    root = Path(config.taskonomy_root).expanduser()
    if not (root / "rgb").is_dir():
        raise TaskgroupError(f"taskonomy: {root} has no 'rgb' folder (expected <root>/rgb/<building>/*{RGB_SUFFIX})")
    res = config.resolution
    samples = [(b, stem) for b in getattr(config, f"{split}_buildings") for stem in _rgb_stems(root, b)]
    tasks = available_tasks(root)
    n = len(samples)
    images = open_memmap(directory / "images.npy", "w+", np.float32, (n, 3, res, res))
    arrays: dict[str, np.ndarray] = {}
    for t in tasks:
        if t == "segment_semantic":
            arrays[t] = open_memmap(directory / f"{t}.npy", "w+", np.int64, (n, res, res))
        elif t != "rgb":
            arrays[t] = open_memmap(directory / f"{t}.npy", "w+", np.float32, (n, TASKS[t].channels, res, res))
    # One mask per task: its own validity (depth range, class 0), the depth mask for the tasks the
    # paper masks by depth, and false everywhere for a sample without a file for the task.
    masks = {t: open_memmap(directory / f"mask_{t}.npy", "w+", np.bool_, (n, 1, res, res)) for t in arrays}
    mask_all = open_memmap(directory / "mask_all.npy", "w+", np.bool_, (n, 1, res, res))
    mask_all[:] = True
    labelled = {t: 0 for t in arrays}
    for i, (building, stem) in enumerate(samples):
        rgb = _read(root / "rgb" / building / f"{stem}{RGB_SUFFIX}")
        rgb_unit = resize_square(_unit(_channels(rgb, 3, root / "rgb" / building / f"{stem}{RGB_SUFFIX}")), res)
        images[i] = np.moveaxis(np.clip(rgb_unit, 0, 1), -1, 0)  # OpenCV's float32 area weights overshoot by ~1e-7
        depth_mask = None
        for t in sorted(arrays, key=lambda t: t != "depth_zbuffer"):  # depth first: others use its mask
            if not (root / t / building / f"{stem}_domain_{t}.png").is_file():  # no label for this sample
                arrays[t][i] = 0
                masks[t][i] = False
                continue
            value, mask = load_sample(root, building, stem, t, res)
            if t == "depth_zbuffer":
                depth_mask = mask
            elif t in DEPTH_MASKED and depth_mask is not None:
                mask = depth_mask  # a sample without a depth file has these tasks defined everywhere
            arrays[t][i] = value
            masks[t][i, 0] = True if mask is None else mask
            labelled[t] += int(masks[t][i].any())
        if progress is not None:
            progress(1)
    for arr in (images, mask_all, *arrays.values(), *masks.values()):
        arr.flush()
    del images, arrays, mask_all, masks

    entries = {t: {"target": "images.npy" if t == "rgb" else f"{t}.npy",
                   "mask": "mask_all.npy" if t == "rgb" else f"mask_{t}.npy"} for t in tasks}
    (directory / "samples.txt").write_text("".join(f"{b}/{s}\n" for b, s in samples))
    return {"count": n, "tasks": entries, "segment_classes": list(SEGMENT_CLASSES),
            "meta": {"root": str(root.resolve()), "buildings": list(getattr(config, f"{split}_buildings")),
                     "samples_file": "samples.txt", "labelled_samples": labelled}}
