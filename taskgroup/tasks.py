"""The perception tasks the toolkit knows: the built-in ones, named as in Taskonomy, and
those declared in a config file (`[tasks.NAME]`, taskgroup.task_tables).

A task fixes what a decoder head outputs (channels), how it is trained (loss) and what its
output means at deployment. Everything else (data, models, export, runtime manifest) reads
these specs instead of repeating them, through `get_task`. Declared tasks are registered
for the process (`declare_tasks`) by whatever reads a file that declares them: a config, a
run's store, a checkpoint, a loss table, a grouping; a name declared twice must be declared
identically.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Iterator

from taskgroup.errors import TaskgroupError

LOSSES = ("l1", "l2", "cross_entropy", "bce")  # bce: independent yes/no labels per channel (multi-label)

# Segmentation classes of the built-in scenes: room surfaces plus primitive shapes.
SEGMENT_CLASSES: tuple[str, ...] = ("floor", "wall", "ceiling", "sphere", "box", "cylinder", "cone", "torus")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    channels: int  # output channels of the decoder head (cross_entropy: classes; bce: labels)
    loss: str  # one of LOSSES; the paper's recipe: CE for segmentation, L1 otherwise
    meaning: str  # what the output values are, written into the deployment manifest
    # Range of the built-in scenes' encoding; a bundle states the range of its own data (taskgroup.data.standardize).
    value_range: tuple[float, float] | None = None
    ignore_value: float | None = None  # label value meaning "no label" (cross_entropy: the ignore index)
    units: str | None = None  # declared tasks: what the data's values are (built-in: the data source says)
    transform: str | tuple = "standardize"  # regression: standardize (measured) | none | ((mean, ...), (std, ...))
    class_names: tuple[str, ...] = ()  # cross_entropy: names of the class ids; bce: names of the labels

    @property
    def regression(self) -> bool:
        return self.loss in ("l1", "l2")


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("segment_semantic", len(SEGMENT_CLASSES), "cross_entropy",
                 "per-pixel class logits (the built-in scenes' classes: "
                 f"{list(SEGMENT_CLASSES)}); argmax gives the class", transform="none"),
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


_DECLARED: dict[str, TaskSpec] = {}  # tasks declared by config files read in this process


def declare_tasks(specs: Iterable[TaskSpec], where: str) -> None:
    """Make declared tasks known to this process; a name may be declared again only identically."""
    for spec in specs:
        if spec.name in TASKS:
            raise TaskgroupError(f"{where}: '{spec.name}' is a built-in task and cannot be redeclared")
        old = _DECLARED.get(spec.name)
        if old is not None and old != spec:
            raise TaskgroupError(f"{where}: task '{spec.name}' is declared differently from the declaration already "
                                 f"read in this process ({old} vs {spec}); one name, one declaration")
        _DECLARED[spec.name] = spec


@contextlib.contextmanager
def tasks_declared(specs: Iterable[TaskSpec]) -> Iterator[None]:
    """Within the block, exactly these declarations are known (besides the built-in tasks).

    A worker (a process of processes:N, a Ray worker serving several runs) trains each job with
    the declarations of the job's own run, whatever an earlier job of another run declared."""
    saved = dict(_DECLARED)
    _DECLARED.clear()
    try:
        declare_tasks(specs, "the run's recipe")
        yield
    finally:
        _DECLARED.clear()
        _DECLARED.update(saved)


def declared_tasks() -> dict[str, TaskSpec]:
    """The tasks declared in this process so far."""
    return dict(_DECLARED)


def known_tasks() -> dict[str, TaskSpec]:
    """Built-in tasks, then the declared ones."""
    return {**TASKS, **_DECLARED}


def get_task(name: str) -> TaskSpec:
    spec = TASKS.get(name) or _DECLARED.get(name)
    if spec is None:
        raise TaskgroupError(f"unknown task {name!r}; known tasks: {', '.join(known_tasks())} (declare your own in "
                             "a [tasks.NAME] table of the --config file)")
    return spec


def parse_task_list(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Parse 'a,b,c' (or a list) into validated task names, keeping order, refusing duplicates."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [str(n).strip() for n in text]
    names = [n for n in names if n]
    if not names:
        raise TaskgroupError("no tasks given; known tasks: " + ", ".join(known_tasks()))
    seen: set[str] = set()
    for n in names:
        get_task(n)
        if n in seen:
            raise TaskgroupError(f"task '{n}' is listed twice")
        seen.add(n)
    return tuple(names)
