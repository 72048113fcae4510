"""A dataset in plain folders -> the same cached split arrays as the built-in scenes.

Layout (`source = "folder"`, `folder_root = ROOT`):
    ROOT/<split>/rgb/<id>.<png|jpg|jpeg>        the input images, any size, 8- or 16-bit
    ROOT/<split>/<task>/<id>.<png|npy>          one label file per image and task, optional

`<split>` is train, val and test. A sample is an rgb image; its label for a task is the file
with the same `<id>` in the task's folder. A sample without that file has **no label** for
the task (its mask is all false): losses average over labelled pixels only, and the number of
labelled samples per split is recorded. Images and labels are resized to the configured
square resolution as the Taskonomy loader does (area averaging for values, nearest neighbour
for class ids; a resized pixel is defined only if every source pixel under it was); a label
file must have the size of its image.

Encodings (the data's units, which losses and bundles use):
- rgb: 8- or 16-bit PNG/JPEG, grey or colour (alpha dropped), divided by the maximum of its
  bit depth;
- l1 / l2 tasks: PNG values as stored (a 16-bit edge map stays 0..65535), .npy values as
  stored; (H, W) for one channel, (H, W, C) otherwise (extra channels are dropped);
- bce tasks: PNG values divided by the maximum of their bit depth (0 / 255 -> 0 / 1), .npy
  values as stored, in [0, 1];
- cross_entropy tasks: integer class ids, from a single-channel PNG (or its first channel)
  or an integer .npy.
A pixel has no label where it equals the task's ignore value (`[data] ignore = {task =
value}`, or the declaration's ignore_value / ignore_index; for several channels: all channels
equal it) or, in a .npy file, where any channel is NaN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.data.images import read_image
from taskgroup.data.resize import resize_mask, resize_square
from taskgroup.tasks import get_task

ENCODING_VERSION = 1  # part of the cache key: bump when how files become arrays changes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LABEL_SUFFIXES = (".png", ".npy")
UNITS = "the label files' values: PNG values as stored, .npy values as stored"
UNITS_BCE = "probability of each label: PNG value / the maximum of its bit depth, or .npy values in [0, 1]"


def _read_label(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise TaskgroupError(f"folder data: {path}: not a readable .npy array ({exc})") from exc
        if arr.ndim not in (2, 3) or arr.dtype.kind not in "iufb":
            raise TaskgroupError(f"folder data: {path}: expected a numeric (H, W) or (H, W, C) array, found "
                                 f"{arr.dtype} {arr.shape}")
        return arr
    return read_image(path, "folder data")


def _files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """id -> file, refusing two files with the same id."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."):
            if p.stem in out:
                raise TaskgroupError(f"folder data: {folder} has two files for id '{p.stem}': {out[p.stem].name} and {p.name}")
            out[p.stem] = p
    return out


def ignore_value(config, task: str) -> float | None:
    """The label value meaning 'no label' for a task: [data] ignore, else the task's declaration."""

    table = dict(config.ignore)
    return float(table[task]) if task in table else get_task(task).ignore_value


def load_label(path: Path, task: str, shape: tuple[int, int], res: int, ignore: float | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """One label file -> (value at `res`: (C, res, res) float64 or (res, res) int64 ids, mask (res, res))."""

    spec = get_task(task)
    img = _read_label(path)
    if img.shape[:2] != shape:
        raise TaskgroupError(f"folder data: {path}: label is {img.shape[1]}x{img.shape[0]} pixels but its image is "
                             f"{shape[1]}x{shape[0]}; labels must have their image's size")
    if spec.loss == "cross_entropy":
        ids = img if img.ndim == 2 else img[:, :, 0]
        if ids.dtype.kind not in "iub":
            raise TaskgroupError(f"folder data: {path}: class ids must be integers, found {ids.dtype}")
        ids = resize_square(ids.astype(np.int64), res, nearest=True)
        valid = ids != ignore if ignore is not None else np.ones(ids.shape, bool)
        # segment_semantic's class count is the network's (segment_classes); training checks it
        classes = spec.channels if task != "segment_semantic" else None
        bad = valid & ((ids < 0) | (ids >= classes)) if classes is not None else valid & (ids < 0)
        if bad.any():
            limit = f"0..{classes - 1}" if classes is not None else ">= 0"
            raise TaskgroupError(f"folder data: {path}: class id {int(ids[bad].flat[0])} out of range {limit}"
                                 + (f" (ignore_index {int(ignore)})" if ignore is not None else ""))
        return np.where(valid, ids, 0), valid
    values = img if img.ndim == 3 else img[:, :, None]
    if values.shape[2] < spec.channels:
        raise TaskgroupError(f"folder data: {path}: {task} needs {spec.channels} channel(s), the file has {values.shape[2]}")
    values = values[:, :, :spec.channels]
    valid = np.ones(shape, bool)
    if ignore is not None:
        valid &= ~np.all(values == ignore, axis=2)
    values = values.astype(np.float64)
    if img.dtype in (np.uint8, np.uint16) and spec.loss == "bce":
        values = values / np.iinfo(img.dtype).max
    valid &= np.isfinite(values).all(axis=2)
    values = np.where(valid[:, :, None], values, 0.0)
    if spec.loss == "bce" and (values.min() < 0 or values.max() > 1):
        raise TaskgroupError(f"folder data: {path}: bce labels must be in [0, 1], found {values.min():g}..{values.max():g}")
    return np.moveaxis(resize_square(values, res), -1, 0), resize_mask(valid, res)


def build_split(config, split: str, directory, tasks: Sequence[str], progress: Callable[[int], None] | None = None) -> dict:
    """Read and resize one split's images and the labels of `tasks` into `directory`."""
    from numpy.lib.format import open_memmap


    directory = Path(directory)
    root = Path(config.folder_root).expanduser() / split
    rgb_dir = root / "rgb"
    if not rgb_dir.is_dir():
        raise TaskgroupError(f"folder data: no folder {rgb_dir} (expected {Path(config.folder_root)}/<split>/rgb/<id>.png)")
    images_in = _files(rgb_dir, IMAGE_SUFFIXES)
    if not images_in:
        raise TaskgroupError(f"folder data: {rgb_dir} holds no .png or .jpg images")
    ids = list(images_in)
    labels: dict[str, dict[str, Path]] = {}
    for task in tasks:
        if task == "rgb":
            continue
        folder = root / task
        if not folder.is_dir():
            raise TaskgroupError(f"folder data: no folder {folder} for task '{task}' (create it; samples without a "
                                 "file in it have no label for the task)")
        labels[task] = _files(folder, LABEL_SUFFIXES)
        stray = sorted(set(labels[task]) - set(images_in))
        if stray:
            raise TaskgroupError(f"folder data: {labels[task][stray[0]]} has no image {rgb_dir / stray[0]}.* "
                                 f"({len(stray)} label file(s) without an image)")
    n, res = len(ids), config.resolution
    images = open_memmap(directory / "images.npy", "w+", np.float32, (n, 3, res, res))
    arrays, masks = {}, {}
    for task in labels:
        spec = get_task(task)
        if spec.loss == "cross_entropy":
            arrays[task] = open_memmap(directory / f"{task}.npy", "w+", np.int64, (n, res, res))
        else:
            arrays[task] = open_memmap(directory / f"{task}.npy", "w+", np.float32, (n, spec.channels, res, res))
        masks[task] = open_memmap(directory / f"mask_{task}.npy", "w+", np.bool_, (n, 1, res, res))
    mask_all = open_memmap(directory / "mask_all.npy", "w+", np.bool_, (n, 1, res, res))
    mask_all[:] = True
    ignores = {t: ignore_value(config, t) for t in labels}
    max_id = -1
    for i, sample in enumerate(ids):
        rgb = read_image(images_in[sample], "folder data")
        if rgb.ndim == 2 or rgb.shape[2] == 1:
            rgb = np.repeat(rgb.reshape(*rgb.shape[:2], 1), 3, axis=2)
        shape = rgb.shape[:2]
        # OpenCV's float32 area weights can overshoot 1 by ~1e-7: images stay in [0, 1], as the networks assume
        images[i] = np.moveaxis(np.clip(resize_square(rgb.astype(np.float64) / np.iinfo(rgb.dtype).max, res), 0, 1), -1, 0)
        for task, files in labels.items():
            path = files.get(sample)
            if path is None:  # no label for this sample
                arrays[task][i] = 0
                masks[task][i] = False
                continue
            value, valid = load_label(path, task, shape, res, ignores[task])
            arrays[task][i] = value
            masks[task][i, 0] = valid
            if value.ndim == 2 and task == "segment_semantic" and valid.any():
                max_id = max(max_id, int(value[valid].max()))
        if progress is not None:
            progress(1)
    counts = {t: int(masks[t].reshape(n, -1).any(axis=1).sum()) for t in labels}
    for arr in (images, mask_all, *arrays.values(), *masks.values()):
        arr.flush()
    del images, arrays, masks, mask_all
    entries = {t: {"target": f"{t}.npy", "mask": f"mask_{t}.npy"} for t in labels}
    if "rgb" in tasks:
        entries["rgb"] = {"target": "images.npy", "mask": "mask_all.npy"}
    (directory / "samples.txt").write_text("".join(f"{s}\n" for s in ids))
    return {"count": n, "tasks": entries, "segment_classes": [f"class_{k}" for k in range(max_id + 1)],
            "meta": {"root": str(root.resolve()), "samples_file": "samples.txt", "labelled_samples": counts}}
