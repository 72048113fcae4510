"""What a run's store says about how its networks train, and holding every later job to it.

A run's networks must all be trained the same way for their losses to be comparable: the store
keeps the recipe the run was created with (`meta.config`, declared tasks included) and each
task's target standardisation. This module rebuilds that recipe (`run_config_from_store`),
refuses a resume or a driver whose config differs (`check_same_run`, `stored_recipe`; fields
added since the run was created compare at their defaults, the seed is an axis of the run),
refuses data whose standardisation moved (`record_transforms`), and finds the run a grouping's
networks come from, for export (`training_run_of`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from taskgroup.data import DataConfig
from taskgroup.errors import TaskgroupError
from taskgroup.fileio import differences
from taskgroup.presets import ArchPreset
from taskgroup.task_tables import declare_from_json
from taskgroup.train.config import RunConfig, TrainConfig
from taskgroup.train.store import STORE_FILENAME, RunStore


def stored_recipe(store: RunStore, config: RunConfig) -> RunConfig:
    """What every job of the run trains with: the recipe the store holds (declared tasks included),
    not whatever the process that happens to drive the run built from its flags; `config` only
    says where this machine keeps the data cache. The two must describe the same training."""
    recipe = run_config_from_store(store)
    recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, cache_dir=config.data.cache_dir))
    mine = {k: v for k, v in json.loads(json.dumps(config.to_dict())).items() if k != "seed"}
    theirs = {k: v for k, v in _with_new_field_defaults(json.loads(json.dumps(recipe.to_dict())), mine).items()
              if k != "seed"}
    if theirs != mine:
        diffs = differences(theirs, mine)
        raise TaskgroupError(f"{store.path}: the stored recipe differs from this run's config: "
                             + "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, a, b in diffs[:8]))
    return recipe


def training_run_of(grouping) -> tuple[Path, RunConfig] | None:
    """The training run a grouping's networks come from (the nearest folder above their checkpoints
    holding a store) and its config, declared tasks registered; None when no checkpoint is in a run.

    The run knows how its networks were trained (architecture, input resolution, data): export
    verifies on that run's own validation data instead of a preset's."""

    runs: dict[Path, list[str]] = {}
    for net in grouping.networks:
        checkpoint = grouping.checkpoint_path(net)
        run_dir = None if checkpoint is None else next(
            (p for p in checkpoint.parents if (p / STORE_FILENAME).is_file()), None)
        if run_dir is not None:
            runs.setdefault(run_dir, []).append(net.label)
    if not runs:
        return None
    configs = {}
    for run_dir in runs:
        store = RunStore.open(run_dir)
        try:
            configs[run_dir] = run_config_from_store(store)
        finally:
            store.close()
    (first, config), *others = configs.items()
    for run_dir, other in others:
        mine, theirs = config.to_dict(), other.to_dict()
        if (mine["arch"], mine["data"]) != (theirs["arch"], theirs["data"]):
            raise TaskgroupError(f"{grouping.path}: its networks come from two training runs with different "
                                 f"architectures or data ({first}: {', '.join(runs[first])}; {run_dir}: "
                                 f"{', '.join(runs[run_dir])}); one bundle takes one kind of input: select among the "
                                 "networks of one run")
    return first, config


def run_config_from_store(store: RunStore) -> RunConfig:
    """Rebuild the RunConfig a run was started with (the data cache location is not stored)."""


    doc = store.config()
    try:
        declared = declare_from_json(doc.get("declared_tasks"), f"{store.path}: run config")
        arch = ArchPreset(model=doc["arch"]["model"], model_config=doc["arch"]["model_config"],
                          resolution=doc["arch"]["resolution"])
        return RunConfig(preset=doc["preset"], arch=arch, data=DataConfig.from_dict(doc["data"]),
                         train=TrainConfig(**doc["train"]), seed=doc["seed"], esa_fraction=doc["esa_fraction"],
                         declared_tasks=declared)
    except (KeyError, TypeError) as exc:
        raise TaskgroupError(f"{store.path}: stored run config is incomplete or malformed ({exc})") from exc


def record_transforms(store: RunStore, data) -> None:
    """Store the run's target transforms once; later loads must reproduce them (the networks
    of one run are all trained in the same standardised space)."""
    stored = store.target_transforms()
    if not stored:
        store.set_target_transforms(data.transforms)
        return
    for task, tr in data.transforms.items():
        old = stored.get(task)
        if old is None:
            continue
        same = old.mean == tr.mean if old.mean is None or tr.mean is None else (
            len(old.mean) == len(tr.mean)
            and all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(old.mean + old.std, tr.mean + tr.std)))
        if not same:
            raise TaskgroupError(f"{store.path}: refusing to continue: task '{task}' is standardised with mean "
                                 f"{list(old.mean or [])} / std {list(old.std or [])} in this run, but the data now "
                                 f"gives {list(tr.mean or [])} / {list(tr.std or [])} (did the data change?); "
                                 "use a new --out")


def check_same_run(store: RunStore, config_doc: dict[str, Any], tasks: tuple[str, ...]) -> None:
    # Fields added since the run was created compare at their defaults (which reproduce the old
    # behaviour); the seed is an axis of the run, not part of its identity.
    stored = _with_new_field_defaults(store.config(), config_doc)
    stored.pop("seed", None)
    config_doc = {k: v for k, v in config_doc.items() if k != "seed"}
    if store.tasks() != tasks:
        raise TaskgroupError(f"{store.run_dir}: refusing to resume: the run was started with tasks {list(store.tasks())}, "
                             f"now given {list(tasks)}")
    if stored != config_doc:
        diffs = differences(stored, config_doc)
        raise TaskgroupError(f"{store.run_dir}: refusing to resume with a different config: "
                             + "; ".join(f"{k}: run has {a!r}, now {b!r}" for k, a, b in diffs[:8])
                             + " (use a new --out directory, or the original settings)")


def _with_new_field_defaults(stored: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The stored config with the dataclass default of every [train] or [data] field it predates (and no
    declared tasks when it predates task declarations)."""

    stored = json.loads(json.dumps(stored))
    if "declared_tasks" not in stored and now.get("declared_tasks") == {}:
        stored["declared_tasks"] = {}  # runs from before task declarations declared none
    for section, cls in (("train", TrainConfig), ("data", DataConfig)):
        have, want = stored.get(section), now.get(section)
        if not isinstance(have, dict) or not isinstance(want, dict):
            continue
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                    for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
        for key in want.keys() - have.keys():
            if key in defaults:
                have[key] = json.loads(json.dumps(defaults[key]))
    return stored
