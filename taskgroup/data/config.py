"""What data to train and evaluate on: the built-in scenes, a Taskonomy directory, or a
dataset in plain folders (taskgroup.data.folder).

A `DataConfig` fully determines the arrays `open_split` returns; its content hash names the
on-disk cache, so two configs that differ in anything but `cache_dir` never share a cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskgroup.errors import TaskgroupError
from taskgroup.data.taskonomy import ENCODING_VERSION

SOURCES = ("scenes", "taskonomy", "folder")
SPLITS = ("train", "val", "test")
DEFAULT_CACHE_DIR = "~/.cache/taskgroup"
CACHE_ENV = "TASKGROUP_CACHE"  # environment variable overriding the default cache directory


@dataclass(frozen=True)
class DataConfig:
    source: str = "scenes"  # "scenes" (built-in renderer), "taskonomy" or "folder" (directories on disk)
    resolution: int = 64  # images are resolution x resolution pixels; a multiple of 16 (the networks downsample 16x)
    n_train: int = 2000  # scenes: number of training views
    n_val: int = 300  # scenes: number of validation views
    n_test: int = 300  # scenes: number of test views
    views_per_layout: int = 10  # scenes: camera views rendered in each room layout (a "building")
    seed: int = 0  # scenes: master seed; each split draws its layouts from its own seed stream
    taskonomy_root: str | None = None  # taskonomy: directory holding rgb/<building>/..., <task>/<building>/...
    train_buildings: tuple[str, ...] = ()  # taskonomy: building names in the training split
    val_buildings: tuple[str, ...] = ()  # taskonomy: building names in the validation split
    test_buildings: tuple[str, ...] = ()  # taskonomy: building names in the test split
    folder_root: str | None = None  # folder: directory holding <split>/rgb/<id>.png and <split>/<task>/<id>.png|npy
    ignore: tuple[tuple[str, float], ...] = ()  # folder: label value meaning "no label", per task ({task = value} in TOML)
    cache_dir: str | None = None  # where rendered/resized arrays live; None: $TASKGROUP_CACHE or ~/.cache/taskgroup

    def __post_init__(self) -> None:
        # Lists and tables from TOML/JSON are accepted and frozen into tuples so the config stays hashable.
        for name in ("train_buildings", "val_buildings", "test_buildings"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.ignore, dict):
            object.__setattr__(self, "ignore", tuple(sorted(self.ignore.items())))
        elif isinstance(self.ignore, list):  # pairs, as to_dict's JSON reads back; anything else: validate says so
            object.__setattr__(self, "ignore", tuple(tuple(p) if isinstance(p, (list, tuple)) else p
                                                     for p in self.ignore))
        self.validate()

    def validate(self) -> None:
        """Check types and values; every problem names the field and what was expected."""
        if not isinstance(self.source, str) or self.source not in SOURCES:
            raise TaskgroupError(f"data config: field 'source': unknown source {self.source!r}; valid sources: {', '.join(SOURCES)}")
        for name in ("resolution", "n_train", "n_val", "n_test", "views_per_layout", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TaskgroupError(f"data config: field '{name}': expected an integer, found {type(value).__name__} ({value!r})")
        if self.resolution < 16 or self.resolution % 16:
            raise TaskgroupError(f"data config: field 'resolution': {self.resolution} is not a positive multiple of 16 "
                                 "(the networks downsample by 16)")
        if self.resolution > 1024:
            raise TaskgroupError(f"data config: field 'resolution': {self.resolution} is larger than the supported 1024")
        for name in ("n_train", "n_val", "n_test", "views_per_layout"):
            if getattr(self, name) < 1:
                raise TaskgroupError(f"data config: field '{name}': expected >= 1, found {getattr(self, name)}")
        if self.seed < 0:
            raise TaskgroupError(f"data config: field 'seed': expected >= 0, found {self.seed}")
        for name in ("taskonomy_root", "folder_root", "cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise TaskgroupError(f"data config: field '{name}': expected a path string, found {type(value).__name__}")
        for name in ("train_buildings", "val_buildings", "test_buildings"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(b, str) and b for b in value):
                raise TaskgroupError(f"data config: field '{name}': expected a list of building names (non-empty strings)")
        if not isinstance(self.ignore, tuple) or not all(
                isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], (int, float))
                and not isinstance(p[1], bool) and math.isfinite(p[1]) for p in self.ignore):
            raise TaskgroupError("data config: field 'ignore': expected a table task = finite number (the label value "
                                 "meaning 'no label'; a NaN in a .npy label is 'no label' already)")
        if self.source == "folder" and not self.folder_root:
            raise TaskgroupError("data config: field 'folder_root': required when source = 'folder'")
        if self.ignore and self.source != "folder":
            raise TaskgroupError("data config: field 'ignore': only the folder source reads it")
        if self.source == "taskonomy":
            if not self.taskonomy_root:
                raise TaskgroupError("data config: field 'taskonomy_root': required when source = 'taskonomy'")
            seen: dict[str, str] = {}
            for split in SPLITS:
                buildings = getattr(self, f"{split}_buildings")
                if not buildings:
                    raise TaskgroupError(f"data config: field '{split}_buildings': list at least one building for source = 'taskonomy'")
                for b in buildings:
                    if b in seen:
                        raise TaskgroupError(f"data config: building '{b}' is in both '{seen[b]}_buildings' and "
                                             f"'{split}_buildings'; splits must be disjoint")
                    seen[b] = split

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "data config") -> DataConfig:
        """Build from a parsed TOML/JSON table, refusing unknown keys (typos would be silently ignored)."""
        if not isinstance(doc, dict):
            raise TaskgroupError(f"{where}: expected a table of data settings, found {type(doc).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise TaskgroupError(f"{where}: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(sorted(known))}")
        try:
            return cls(**doc)
        except TaskgroupError as exc:
            raise TaskgroupError(str(exc).replace("data config", where, 1)) from None

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        for name in ("train_buildings", "val_buildings", "test_buildings"):
            doc[name] = list(doc[name])
        doc["ignore"] = {task: value for task, value in self.ignore}
        for name in ("taskonomy_root", "folder_root"):
            if doc[name] is not None:
                doc[name] = str(doc[name])
        if doc["cache_dir"] is not None:
            doc["cache_dir"] = str(doc["cache_dir"])
        return doc

    def split_size(self, split: str) -> int:
        check_split(split)
        return getattr(self, f"n_{split}")

    def content_key(self) -> dict[str, Any]:
        """The fields that determine the arrays (everything but where the cache lives)."""
        doc = self.to_dict()
        del doc["cache_dir"]
        if self.source != "folder":
            for name in ("folder_root", "ignore"):
                del doc[name]
        if self.source != "taskonomy":
            for name in ("taskonomy_root", "train_buildings", "val_buildings", "test_buildings"):
                del doc[name]
        if self.source != "scenes":
            for name in ("n_train", "n_val", "n_test", "views_per_layout", "seed"):
                del doc[name]
        if self.source == "taskonomy":
            doc["taskonomy_root"] = str(Path(self.taskonomy_root).expanduser().resolve())
        if self.source == "folder":
            doc["folder_root"] = str(Path(self.folder_root).expanduser().resolve())
        return doc

    def cache_root(self) -> Path:
        """The cache directory: the config field, else $TASKGROUP_CACHE, else ~/.cache/taskgroup."""
        base = self.cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
        return Path(base).expanduser()

    def cache_name(self, version: int, tasks_key: dict[str, Any] | None = None) -> str:
        """Directory name for this config's arrays: source + hash of the content key and the format version
        (and, for the folder source, of the tasks read: their loss, channels and ignore value)."""
        doc: dict[str, Any] = {"key": self.content_key(), "version": version}
        if tasks_key is not None:
            doc["tasks"] = tasks_key
        if self.source == "taskonomy":  # the loader's own encoding version (its units changed once)

            doc["taskonomy_encoding"] = ENCODING_VERSION
        text = json.dumps(doc, sort_keys=True)
        return f"{self.source}-{self.resolution}px-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise TaskgroupError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split
