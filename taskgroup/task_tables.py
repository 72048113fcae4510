"""Tasks declared in a config file: `[tasks.NAME]` tables, parsed into TaskSpecs.

    [tasks.wetness]                 # a regression task
    channels = 1
    loss = "l1"                     # l1 | l2 | cross_entropy | bce
    meaning = "surface wetness"     # written into the bundle manifest
    units = "16-bit PNG value"      # what the data's values are (default: "the data's own values")
    transform = "standardize"       # standardize (mean/std of the training split, default) | none |
                                    #   { mean = [300.0], std = [1000.0] } (fixed constants)
    ignore_value = 65535            # a pixel whose channels all equal it has no label

    [tasks.terrain]                 # a classification task
    loss = "cross_entropy"
    classes = ["grass", "gravel", "water"]   # or a count: classes = 3
    ignore_index = 255              # label value that marks "no label"

    [tasks.hazards]                 # multi-label: one independent yes/no per channel
    loss = "bce"
    labels = ["puddle", "curb"]     # or channels = 2

A declared task goes everywhere a built-in one does: it is recorded in the run config (so a
resume with other declarations is refused), in every checkpoint of a network with its head,
in loss tables, groupings and bundle manifests, and registered in the process's task
registry (`taskgroup.tasks.declare_tasks`) wherever one of those is read.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from taskgroup.errors import TaskgroupError
from taskgroup.tasks import LOSSES, TASKS, TaskSpec, declare_tasks
from taskgroup.tasks import declared_tasks

NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
KEYS = ("channels", "loss", "meaning", "units", "transform", "ignore_value", "ignore_index", "classes", "labels")


def parse_task_tables(doc: Any, where: str) -> tuple[TaskSpec, ...]:
    """The `[tasks]` section of a config file -> TaskSpecs (validated; errors name file and key)."""
    if not isinstance(doc, dict):
        raise TaskgroupError(f"{where}: 'tasks' must be a table of [tasks.NAME] tables, found {type(doc).__name__}")
    return tuple(parse_task_table(name, table, f"{where}: [tasks.{name}]") for name, table in doc.items())


def parse_task_table(name: str, t: Any, where: str) -> TaskSpec:
    if not isinstance(name, str) or not NAME.match(name):
        raise TaskgroupError(f"{where}: task names are lower-case letters, digits and '_', starting with a letter")
    if name in TASKS:
        raise TaskgroupError(f"{where}: '{name}' is a built-in task and cannot be redeclared; use another name "
                             f"(built-in tasks: {', '.join(TASKS)})")
    if not isinstance(t, dict):
        raise TaskgroupError(f"{where}: expected a table, found {type(t).__name__}")
    unknown = sorted(set(t) - set(KEYS))
    if unknown:
        raise TaskgroupError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(KEYS)}")
    loss = t.get("loss")
    if loss not in LOSSES:
        raise TaskgroupError(f"{where} key 'loss': expected one of {', '.join(LOSSES)}, found {loss!r}")
    meaning = t.get("meaning")
    if meaning is None:  # absent, or null in a JSON record: the default, as the serialised form leaves it out
        meaning = f"declared task '{name}'"
    units = t.get("units")
    for key, value in (("meaning", meaning), ("units", units)):
        if value is not None and not isinstance(value, str):
            raise TaskgroupError(f"{where} key '{key}': expected a string, found {type(value).__name__}")

    names: tuple[str, ...] = ()
    if loss == "cross_entropy":
        classes = t.get("classes")
        if "channels" in t or "labels" in t or "ignore_value" in t:
            raise TaskgroupError(f"{where}: a cross_entropy task takes 'classes' (a count or a list of names) and "
                                 "'ignore_index', not 'channels', 'labels' or 'ignore_value'")
        if isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes):
            _check_distinct(classes, "classes", where)
            names, channels = tuple(classes), len(classes)
        elif _count(classes):
            channels = classes
        else:
            raise TaskgroupError(f"{where} key 'classes': expected a class count >= 2 or a list of class names, "
                                 f"found {classes!r}")
        if channels < 2:
            raise TaskgroupError(f"{where} key 'classes': a classification needs at least 2 classes")
        ignore = t.get("ignore_index")
        if ignore is not None and (isinstance(ignore, bool) or not isinstance(ignore, int) or ignore < 0):
            raise TaskgroupError(f"{where} key 'ignore_index': expected a non-negative integer, found {ignore!r}")
        transform = "none"
        if "transform" in t and t["transform"] != "none":
            raise TaskgroupError(f"{where} key 'transform': classification labels are not transformed")
    else:
        if "classes" in t or "ignore_index" in t:
            raise TaskgroupError(f"{where}: 'classes' and 'ignore_index' belong to cross_entropy tasks; "
                                 f"an {loss} task takes 'channels' (or 'labels' for bce) and 'ignore_value'")
        labels = t.get("labels")
        if labels is not None:
            if loss != "bce" or not (isinstance(labels, list) and labels and all(isinstance(x, str) and x for x in labels)):
                raise TaskgroupError(f"{where} key 'labels': a list of label names, for bce tasks only")
            _check_distinct(labels, "labels", where)
            names = tuple(labels)
        channels = t.get("channels", len(names) if names else None)
        if not _count(channels) or channels < 1 or channels > 64:
            raise TaskgroupError(f"{where} key 'channels': expected an integer in 1..64, found {channels!r}")
        if names and channels != len(names):
            raise TaskgroupError(f"{where}: 'channels' = {channels} but {len(names)} labels are named")
        ignore = t.get("ignore_value")
        if ignore is not None and (isinstance(ignore, bool) or not isinstance(ignore, (int, float)) or not math.isfinite(ignore)):
            raise TaskgroupError(f"{where} key 'ignore_value': expected a finite number, found {ignore!r}")
        transform = _transform(t.get("transform", "standardize" if loss in ("l1", "l2") else "none"), loss, channels, where)
    return TaskSpec(name, int(channels), loss, meaning, None, ignore_value=None if ignore is None else float(ignore),
                    units=units, transform=transform, class_names=names)


def _check_distinct(names: list, key: str, where: str) -> None:
    """Each output channel is named once: a repeated name would make two channels indistinguishable downstream."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise TaskgroupError(f"{where} key '{key}': {', '.join(map(repr, repeated))} named more than once; "
                             "give every class or label its own name")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _transform(value: Any, loss: str, channels: int, where: str):
    if loss == "bce":
        if value != "none":
            raise TaskgroupError(f"{where} key 'transform': bce labels (0..1) are not transformed")
        return "none"
    if value in ("standardize", "none"):
        return value
    if isinstance(value, dict) and set(value) == {"mean", "std"}:
        mean, std = value["mean"], value["std"]
        for key, v in (("mean", mean), ("std", std)):
            if not (isinstance(v, list) and len(v) == channels and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
                raise TaskgroupError(f"{where} key 'transform.{key}': expected {channels} finite number(s), found {v!r}")
        if not all(s > 0 for s in std):
            raise TaskgroupError(f"{where} key 'transform.std': every std must be > 0")
        return (tuple(float(x) for x in mean), tuple(float(x) for x in std))
    raise TaskgroupError(f"{where} key 'transform': expected \"standardize\", \"none\" or a table "
                         f"{{ mean = [...], std = [...] }}, found {value!r}")


# -- the serialised form, recorded in run configs, checkpoints, loss tables and groupings --------

def spec_to_json(spec: TaskSpec) -> dict[str, Any]:
    transform = spec.transform
    if isinstance(transform, tuple):
        transform = {"mean": list(transform[0]), "std": list(transform[1])}
    doc: dict[str, Any] = {"loss": spec.loss, "meaning": spec.meaning, "units": spec.units, "transform": transform}
    if spec.loss == "cross_entropy":
        doc["classes"] = list(spec.class_names) if spec.class_names else spec.channels
        doc["ignore_index"] = None if spec.ignore_value is None else int(spec.ignore_value)
    else:
        doc["channels"] = spec.channels
        doc["ignore_value"] = spec.ignore_value
        if spec.class_names:
            doc["labels"] = list(spec.class_names)
    return {k: v for k, v in doc.items() if v is not None}


def declared_to_json(specs: Iterable[TaskSpec]) -> dict[str, Any]:
    return {s.name: spec_to_json(s) for s in specs}


def declared_in(tasks: Iterable[str]) -> dict[str, Any]:
    """The declarations (serialised) of the declared tasks among `tasks`, for files that name them
    (other names, e.g. the paper tables' abstract columns, are left out)."""

    declared = declared_tasks()
    return {t: spec_to_json(declared[t]) for t in tasks if t in declared}


def declare_from_json(doc: Any, where: str) -> tuple[TaskSpec, ...]:
    """Register declarations read back from a file (run config, checkpoint, loss table, grouping)."""
    if not doc:
        return ()
    specs = parse_task_tables(doc, where)
    declare_tasks(specs, where)
    return specs
