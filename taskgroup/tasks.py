"""The perception tasks the toolkit knows, named as in Taskonomy.

A task fixes what a decoder head outputs (channels), how it is trained (loss) and what its
output means at deployment. Everything else (data, models, export, runtime manifest) reads
these specs instead of repeating them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from taskgroup.errors import TaskgroupError

# Segmentation classes of the built-in scenes: room surfaces plus primitive shapes.
SEGMENT_CLASSES: tuple[str, ...] = ("floor", "wall", "ceiling", "sphere", "box", "cylinder", "cone", "torus")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    channels: int  # output channels of the decoder head
    loss: Literal["cross_entropy", "l1"]  # the paper's recipe: CE for segmentation, L1 otherwise
    meaning: str  # what the output values are, written into the deployment manifest
    # Range of the built-in scenes' encoding; a bundle states the range of its own data (taskgroup.data.standardize).
    value_range: tuple[float, float] | None = None


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("segment_semantic", len(SEGMENT_CLASSES), "cross_entropy",
                 f"per-pixel class logits over {list(SEGMENT_CLASSES)}; argmax gives the class"),
        TaskSpec("depth_zbuffer", 1, "l1", "z-buffer depth (distance along the optical axis); encoding in 'units'", (0.0, 1.0)),
        TaskSpec("normal", 3, "l1", "camera-frame surface normal, x y z; encoding in 'units'", (0.0, 1.0)),
        TaskSpec("reshading", 1, "l1", "Lambertian shading under a fixed light; encoding in 'units'", (0.0, 1.0)),
        TaskSpec("edge_occlusion", 1, "l1", "occlusion-edge strength (depth discontinuities); encoding in 'units'", (0.0, 1.0)),
        TaskSpec("edge_texture", 1, "l1", "texture-edge strength (edges of the image); encoding in 'units'", (0.0, 1.0)),
        TaskSpec("keypoints2d", 1, "l1", "2D interest-point response; encoding in 'units'", (0.0, 1.0)),
        TaskSpec("principal_curvature", 2, "l1", "two principal curvatures (larger, smaller); encoding in 'units'", (0.0, 1.0)),
        TaskSpec("rgb", 3, "l1", "reconstructed RGB image (autoencoding); encoding in 'units'", (0.0, 1.0)),
    )
}

# The five tasks of the paper's setting 1, in its column order (s, d, n, k, e).
PAPER_TASKS: tuple[str, ...] = ("segment_semantic", "depth_zbuffer", "normal", "keypoints2d", "edge_texture")


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise TaskgroupError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


def parse_task_list(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Parse 'a,b,c' (or a list) into validated task names, keeping order, refusing duplicates."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [str(n).strip() for n in text]
    names = [n for n in names if n]
    if not names:
        raise TaskgroupError("no tasks given; known tasks: " + ", ".join(TASKS))
    seen: set[str] = set()
    for n in names:
        get_task(n)
        if n in seen:
            raise TaskgroupError(f"task '{n}' is listed twice")
        seen.add(n)
    return tuple(names)
