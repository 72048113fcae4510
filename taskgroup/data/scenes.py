"""Built-in procedural scenes: rooms with primitive shapes, ray cast in numpy.

A *layout* (the analogue of a Taskonomy building) is a room (floor, four walls, ceiling)
holding a few primitives (spheres, boxes, cylinders, cones, tori) with random colours and
solid procedural textures (plain, stripes, checks, smooth noise), lit by a point light with
hard shadows. Several camera *views* are rendered per layout. Every target is computed from
the same ray hits, so they agree with each other exactly:

- depth, normals and principal curvatures come from the analytic geometry of the hit surface;
- reshading is Lambertian shading of those normals under a fixed camera-relative light;
- occlusion edges are depth jumps between different surfaces (or large self-occlusion jumps);
- texture edges (Canny) and keypoints (Harris) are computed on the rendered image, so they
  depend on surface textures, as in Taskonomy.

Both edge targets are soft edge-strength maps (the 1-px binary edges blurred by a Gaussian and
scaled so a straight 1-px edge line reads 1), like Taskonomy's continuous 16-bit edge images:
under L1 a binary 1-px line has a per-pixel median of 0 almost everywhere, so the constant 0
is hard to beat, while a smooth strength map rewards predicting where edges are.

Colours and textures are drawn independently of the shape class, so segmentation must be
learned from shape, not colour. All views of one layout are ray cast together as one batch
of rays, which keeps numpy's per-call overhead small.

This module builds the splits; the world is taskgroup.data.scene_layout, the ray casting
taskgroup.data.raytrace, the targets taskgroup.data.scene_targets (their names are re-exported
here).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from taskgroup.tasks import SEGMENT_CLASSES

# The parts' names most used with the built-in scenes, re-exported (F401).
from taskgroup.data.raytrace import (Render, bounding_radius, intersect, intersect_culled, render,  # noqa: F401
                                     surface_geometry)
from taskgroup.data.scene_layout import (AMBIENT_RANGE, EPS, FOV_DEG, LIGHT_RANGE, PATTERNS,  # noqa: F401
                                         ROOM_FACES, SHAPES, Camera, Layout, Material, Primitive, _rotation_x,
                                         intrinsics, random_camera, random_layout, random_material,
                                         random_primitive)
from taskgroup.data.scene_targets import (CANNY_THRESHOLDS, CURVATURE_SCALE_M, EDGE_BLUR_RADIUS_PX, EDGE_BLUR_SIGMA_PX,  # noqa: F401
                                          KEYPOINT_SCALE, MAX_DEPTH_M, OCCLUSION_JUMP, RESHADING_LIGHT_CAM,
                                          SELF_OCCLUSION_JUMP, TARGET_TASKS, TARGET_UNITS, canny_edges,
                                          decode_curvature, decode_depth, edge_strength, encode_curvature,
                                          encode_depth, encode_targets, image_edges_and_keypoints,
                                          occlusion_edges)
from taskgroup.data.config import SPLITS
from taskgroup.tasks import TASKS


def layout_seed(seed: int, split_index: int, layout_index: int) -> np.random.Generator:
    """The generator of one layout: disjoint streams per (seed, split, layout)."""
    return np.random.default_rng([seed, split_index, layout_index])


def render_split_layout(seed: int, split_index: int, layout_index: int, n_views: int, resolution: int):
    """Render `n_views` views of one layout of a split; returns encode_targets' tuple and the layout."""
    rng = layout_seed(seed, split_index, layout_index)
    layout = random_layout(rng)
    cameras = [random_camera(rng, layout) for _ in range(n_views)]
    return encode_targets(render(layout, cameras, resolution)), layout

def build_split(config, split: str, directory, progress: Callable[[int], None] | None = None) -> dict:
    """Render one split into `directory` (pre-allocated .npy memmaps); returns the manifest fields.

    Views are grouped `config.views_per_layout` to a layout; layouts of different splits come
    from different seed streams, so no layout is shared between splits.
    """
    from pathlib import Path

    from numpy.lib.format import open_memmap


    directory = Path(directory)
    n, res, per = config.split_size(split), config.resolution, config.views_per_layout
    split_index = SPLITS.index(split)
    images = open_memmap(directory / "images.npy", "w+", np.float32, (n, 3, res, res))
    arrays = {"segment_semantic": open_memmap(directory / "segment_semantic.npy", "w+", np.int64, (n, res, res))}
    for task in TARGET_TASKS:
        if task not in ("segment_semantic", "rgb"):
            arrays[task] = open_memmap(directory / f"{task}.npy", "w+", np.float32, (n, TASKS[task].channels, res, res))
    mask = open_memmap(directory / "mask_valid.npy", "w+", np.bool_, (n, 1, res, res))
    jobs = [(config.seed, split_index, k, start, min(per, n - start), res) for k, start in enumerate(range(0, n, per))]
    layouts = []
    for start, count, (imgs, targets, valid), summary in _render_jobs(jobs):
        images[start:start + count] = imgs
        for task, arr in arrays.items():
            arr[start:start + count] = targets[task]
        mask[start:start + count] = valid
        layouts.append(summary)
        if progress is not None:
            progress(count)
    for arr in (images, mask, *arrays.values()):
        arr.flush()
    del images, mask, arrays
    tasks = {task: {"target": "images.npy" if task == "rgb" else f"{task}.npy", "mask": "mask_valid.npy"}
             for task in TARGET_TASKS}
    f, cx, cy = intrinsics(res)
    return {"count": n, "tasks": tasks, "segment_classes": list(SEGMENT_CLASSES),
            "meta": {"camera": {"fov_deg": FOV_DEG, "fx": f, "fy": f, "cx": cx, "cy": cy,
                                "frame": "x right, y up, z towards the camera; pixel centres at +0.5"},
                     "layouts": layouts}}


PARALLEL_MIN_LAYOUTS = 16  # below this, starting worker processes costs more than it saves


def _render_job(job: tuple[int, int, int, int, int, int]):
    seed, split_index, layout_index, start, count, res = job
    encoded, layout = render_split_layout(seed, split_index, layout_index, count, res)
    summary = {"first_view": start, "views": count, "room": [round(float(v), 6) for v in layout.room],
               "objects": [o.shape for o in layout.objects]}
    return start, count, encoded, summary


def _main_is_spawn_safe() -> bool:
    """Whether spawned workers may import the main script: it has no file (interactive, -c), or
    its source guards its work with `if __name__ == "__main__":`. An unguarded script would be
    run again by every worker, so it gets serial rendering instead."""
    import sys

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.endswith("__main__"):  # `python -m package`: workers never re-run it
        return True
    path = getattr(main, "__file__", None)
    if not path:
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "__main__" in f.read()
    except OSError:
        return False


def _render_jobs(jobs: list):
    """Render layouts in order, on one worker process per usable core when there are many (results are
    identical; a 128-pixel view costs about 16 times a 32-pixel one, so large presets need every core)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    workers = min(cores, len(jobs))
    if workers < 2 or len(jobs) < PARALLEL_MIN_LAYOUTS or not _main_is_spawn_safe():
        yield from map(_render_job, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the caller may have started torch/OpenMP threads, which fork does not survive.
    # A spawned worker re-imports the caller's main module; a script without an
    # `if __name__ == "__main__":` guard makes it fail, and then the rest renders in this process.
    done = 0
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(_render_job, jobs, chunksize=4):
                yield result
                done += 1
    except BrokenProcessPool:
        yield from map(_render_job, jobs[done:])
