"""What a training run is: the preset's architecture, the data, and the training recipe.

A `RunConfig` fully determines how every candidate network of a run is trained (together
with the candidate's task set and width). It is stored in the run's results store, and a
`--resume` with a different config is refused, so one run directory never mixes recipes.

Presets (`tiny`, `default`, `gpu`) fix the architecture and resolution in `taskgroup.presets`;
the training-recipe half of each preset lives here, keyed by the same names. A TOML file
(`--config FILE`) overrides any field:

    [train]          # TrainConfig fields
    epochs = 8
    strategy = "alternating"   # taskgroup.train.strategies
    [data]           # DataConfig fields (taskgroup.data), except `resolution`
    n_train = 1000
    [arch]           # ArchPreset fields: model, model_config (a table), resolution
    resolution = 32
    [tasks.NAME]     # a task of your own (taskgroup.task_tables): channels, loss, meaning, ...
    loss = "l1"
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskgroup.errors import TaskgroupError
from taskgroup.presets import ARCH_PRESETS, ArchPreset, get_arch_preset
from taskgroup.data import DataConfig
from taskgroup.tasks import declare_tasks
from taskgroup.task_tables import parse_task_tables
from taskgroup.train.strategies import parse_strategy
from taskgroup.train.weighting import WEIGHTINGS
from taskgroup.train.precision import check_amp_mode
from taskgroup.data import cache as data_cache  # read at call time: tests and migrations change FORMAT_VERSION
from taskgroup.task_tables import declared_to_json


LR_SCHEDULES = ("plateau", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """The paper's recipe (SGD with momentum, LR halving on a validation plateau), sized for a CPU."""

    epochs: int = 4  # passes over the training split; validation after every epoch
    batch_size: int = 32  # images per optimiser step (the last partial batch of an epoch is dropped)
    lr: float = 0.1  # initial SGD learning rate
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4  # L2 penalty on all weights
    lr_factor: float = 0.5  # ReduceLROnPlateau: multiply the LR by this when val total loss stops improving
    lr_patience: int = 1  # ReduceLROnPlateau: epochs without improvement before the LR is cut
    eval_batch_size: int = 128  # images per forward pass when computing val/test losses
    threads: int = 1  # torch intra-op threads (0 = one per core); 1 is robust when other processes share the CPU
    lr_schedule: str = "plateau"  # "plateau": halve on a validation plateau (the paper); "cosine": decay to 0 by the last step
    affinity_every: int = 10  # networks trained with affinity tracking measure it every this many steps (TAG's period)
    # How a batch becomes optimiser steps (taskgroup.train.strategies): "sum" (one step on the summed
    # loss), "alternating[:shuffled]", "alternating-independent[:shuffled]", "random-groups:G[:epoch]".
    strategy: str = "sum"
    # Per-task loss weights (taskgroup.train.weighting): "none", "static" (task_weights), "scale"
    # (1 / the trivial predictor's training loss) or "uncertainty" (learned, Kendall et al. 2018).
    weighting: str = "none"
    task_weights: dict = field(default_factory=dict)  # weighting = "static": task -> relative importance (unlisted: 1)
    per_task_stopping: bool = False  # also keep each task's best-validation epoch of a multi-task network
    # Mixed precision of the forward pass (taskgroup.train.precision): "off" (float32), "bf16" (CPU, or a GPU of
    # compute capability 8.0+) or "fp16" (CUDA only, with a loss scaler). Weights, losses and evaluation stay float32.
    amp: str = "off"

    def validate(self, where: str = "train config") -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise TaskgroupError(f"{where}: field 'lr_schedule': unknown schedule {self.lr_schedule!r}; "
                                 f"valid schedules: {', '.join(LR_SCHEDULES)}")

        parse_strategy(self.strategy, f"{where}: field 'strategy'")
        if self.weighting not in WEIGHTINGS:
            raise TaskgroupError(f"{where}: field 'weighting': unknown weighting {self.weighting!r}; "
                                 f"valid weightings: {', '.join(WEIGHTINGS)}")
        if not isinstance(self.task_weights, dict):
            raise TaskgroupError(f"{where}: field 'task_weights': expected a table task -> weight, "
                                 f"found {type(self.task_weights).__name__}")
        for task, w in self.task_weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
                raise TaskgroupError(f"{where}: field 'task_weights': weight of {task!r} must be a positive number, "
                                     f"found {w!r}")
        if self.weighting == "static" and not self.task_weights:
            raise TaskgroupError(f"{where}: field 'task_weights': weighting 'static' needs a weight per task "
                                 "(e.g. task_weights = { segment_semantic = 2.0 }; unlisted tasks weigh 1)")
        if self.task_weights and self.weighting != "static":
            raise TaskgroupError(f"{where}: field 'task_weights': used only with weighting = 'static', "
                                 f"found weighting {self.weighting!r}")

        check_amp_mode(self.amp, f"{where}: field 'amp'")
        if not isinstance(self.per_task_stopping, bool):
            raise TaskgroupError(f"{where}: field 'per_task_stopping': expected true or false, "
                                 f"found {self.per_task_stopping!r}")
        ints = {"epochs": 1, "batch_size": 1, "lr_patience": 0, "eval_batch_size": 1, "threads": 0, "affinity_every": 1}
        for name, minimum in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TaskgroupError(f"{where}: field '{name}': expected an integer, found {type(value).__name__} ({value!r})")
            if value < minimum:
                raise TaskgroupError(f"{where}: field '{name}': expected >= {minimum}, found {value}")
        for name in ("lr", "momentum", "weight_decay", "lr_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TaskgroupError(f"{where}: field '{name}': expected a number, found {type(value).__name__} ({value!r})")
        if not self.lr > 0:
            raise TaskgroupError(f"{where}: field 'lr': expected > 0, found {self.lr}")
        if not 0 <= self.momentum < 1:
            raise TaskgroupError(f"{where}: field 'momentum': expected in [0, 1), found {self.momentum}")
        if self.weight_decay < 0:
            raise TaskgroupError(f"{where}: field 'weight_decay': expected >= 0, found {self.weight_decay}")
        if not 0 < self.lr_factor < 1:
            raise TaskgroupError(f"{where}: field 'lr_factor': expected in (0, 1), found {self.lr_factor}")

    def torch_threads(self) -> int:
        return self.threads or (os.cpu_count() or 1)


# Training-recipe and data-size half of each preset (architecture: taskgroup.presets).
# default: 6 epochs with a cosine LR decay to zero (the final weights move little at the end, so
# seeds disagree less than after a constant-LR run; benchmarks/results/seed_noise.md);
# tiny: a candidate in a few seconds, for tests; gpu: the default's recipe at batch 64 on ten times the
# views, every core for the host-side batch gathering (a worker process gets its share).
TRAIN_PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(epochs=10, batch_size=16, lr=0.1, lr_patience=1),
    "default": TrainConfig(epochs=6, batch_size=32, lr=0.1, lr_schedule="cosine"),
    "wide": TrainConfig(epochs=6, batch_size=32, lr=0.1, lr_schedule="cosine"),
    "gpu": TrainConfig(epochs=8, batch_size=64, lr=0.1, lr_schedule="cosine", threads=0),
}
DATA_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(n_train=320, n_val=64, n_test=64, views_per_layout=8),
    # Two views per room: 1,000 training rooms and 400 rooms in each of validation and test, so
    # the losses that rank groupings are averaged over many independent layouts.
    "default": dict(n_train=2000, n_val=800, n_test=800, views_per_layout=2),
    "wide": dict(n_train=2000, n_val=800, n_test=800, views_per_layout=2),
    # 24,000 views at 128x128 (about 1 MB each on disk with every target; render rate:
    # benchmarks/results/render_throughput-gpu.json).
    "gpu": dict(n_train=20000, n_val=2000, n_test=2000, views_per_layout=2),
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides how a run's networks are trained (stored with the run)."""

    preset: str  # name of the preset this config started from
    arch: ArchPreset  # model name, model keyword arguments, input resolution
    data: Any  # taskgroup.data.DataConfig; its resolution always equals arch.resolution
    train: TrainConfig  # the optimisation recipe
    seed: int = 0  # seeds weight init and batch order (the same for every candidate)
    esa_fraction: float | None = None  # ESA: fraction of the schedule after which the "early" stage is taken
    declared_tasks: tuple = ()  # TaskSpecs of the config's [tasks.NAME] tables (registered with taskgroup.tasks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; equal dicts mean identical training."""
        arch = {"model": self.arch.model, "model_config": _plain(self.arch.model_config), "resolution": self.arch.resolution}

        data = self.data.content_key() if hasattr(self.data, "content_key") else dict(self.data)
        # The data format version is part of the identity: resuming a run after the renderer or an
        # encoding changed would mix networks trained on different targets.

        return {"preset": self.preset, "arch": arch, "data": data, "data_format": data_cache.FORMAT_VERSION,
                "train": dataclasses.asdict(self.train), "seed": self.seed, "esa_fraction": self.esa_fraction,
                "declared_tasks": declared_to_json(self.declared_tasks)}



def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def make_run_config(preset: str = "default", config_file: str | os.PathLike | None = None, *, seed: int = 0,
                    esa_fraction: float | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Start from a preset, apply the TOML file (if any) and then `overrides` (same layout as the TOML)."""

    if preset not in TRAIN_PRESETS or preset not in ARCH_PRESETS:
        raise TaskgroupError(f"unknown preset '{preset}'; presets: {', '.join(sorted(set(TRAIN_PRESETS) & set(ARCH_PRESETS)))}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TaskgroupError(f"seed must be a non-negative integer, got {seed!r}")
    if esa_fraction is not None and not (isinstance(esa_fraction, (int, float)) and 0 < esa_fraction < 1):
        raise TaskgroupError(f"--esa fraction must be in (0, 1) (e.g. 0.2 = a fifth of the schedule), got {esa_fraction!r}")
    arch = get_arch_preset(preset)
    train = TRAIN_PRESETS[preset]
    data_fields = dict(DATA_PRESETS[preset])
    declared: dict[str, Any] = {}
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file is not None:
        layers.append((str(config_file), _read_toml(config_file)))
    if overrides:
        layers.append(("overrides", overrides))
    for where, doc in layers:
        unknown = sorted(set(doc) - {"train", "data", "arch", "tasks"})
        if unknown:
            raise TaskgroupError(f"{where}: unknown section(s) {', '.join(map(repr, unknown))}; "
                                 "valid sections: arch, data, tasks, train")
        if "tasks" in doc:

            declared.update({s.name: s for s in parse_task_tables(doc["tasks"], where)})
        for section in ("train", "data", "arch"):
            if section in doc and not isinstance(doc[section], dict):
                raise TaskgroupError(f"{where}: '{section}' must be a table ([{section}]), found {type(doc[section]).__name__}")
        train = _override(train, doc.get("train", {}), f"{where}: [train]")
        arch = _override_arch(arch, doc.get("arch", {}), f"{where}: [arch]")
        data_doc = doc.get("data", {})
        if "resolution" in data_doc:
            raise TaskgroupError(f"{where}: [data] key 'resolution': set the input resolution in [arch] "
                                 "(the data always matches the network's input)")
        valid = {f.name for f in dataclasses.fields(DataConfig)} - {"resolution"}
        unknown = sorted(set(data_doc) - valid)
        if unknown:
            raise TaskgroupError(f"{where}: [data] unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(sorted(valid))}")
        data_fields.update(data_doc)
    train.validate()

    declare_tasks(declared.values(), str(config_file or "overrides"))  # before the data config names them
    where = f"{config_file}: [data]" if config_file is not None else "data config"
    data = DataConfig.from_dict(dict(data_fields, resolution=arch.resolution), where=where)
    return RunConfig(preset=preset, arch=arch, data=data, train=train, seed=seed,
                     esa_fraction=None if esa_fraction is None else float(esa_fraction),
                     declared_tasks=tuple(declared.values()))


def _read_toml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TaskgroupError(f"{path}: config file not found")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TaskgroupError(f"{path}: not valid TOML ({exc})") from exc


def _override(train: TrainConfig, doc: dict[str, Any], where: str) -> TrainConfig:
    valid = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in doc.items():
        if key not in valid:
            raise TaskgroupError(f"{where} unknown key '{key}'; valid keys: {', '.join(sorted(valid))}")
        expected = type(getattr(train, key))
        if expected is str:
            ok, what = isinstance(value, str), "a string"
        elif expected is bool:
            ok, what = isinstance(value, bool), "true or false"
        elif expected is dict:
            ok, what = isinstance(value, dict), "a table"
        elif expected is float:
            ok, what = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        else:
            ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
        if not ok:
            raise TaskgroupError(f"{where} key '{key}': expected {what}, found {type(value).__name__} ({value!r})")
    new = dataclasses.replace(train, **{k: (float(v) if isinstance(getattr(train, k), float) else
                                            {t: _number(w) for t, w in v.items()} if k == "task_weights" else v)
                                        for k, v in doc.items()})
    new.validate(where.rstrip(":"))
    return new


def _number(value: Any) -> Any:
    """TOML integers as floats; anything else unchanged (validate names it)."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _override_arch(arch: ArchPreset, doc: dict[str, Any], where: str) -> ArchPreset:
    valid = ("model", "model_config", "resolution")
    for key, value in doc.items():
        if key not in valid:
            raise TaskgroupError(f"{where} unknown key '{key}'; valid keys: {', '.join(valid)}")
    if "model" in doc and not isinstance(doc["model"], str):
        raise TaskgroupError(f"{where} key 'model': expected a string, found {type(doc['model']).__name__}")
    if "model_config" in doc and not isinstance(doc["model_config"], dict):
        raise TaskgroupError(f"{where} key 'model_config': expected a table, found {type(doc['model_config']).__name__}")
    if "resolution" in doc:
        r = doc["resolution"]
        if isinstance(r, bool) or not isinstance(r, int) or r < 16 or r % 16:
            raise TaskgroupError(f"{where} key 'resolution': expected a positive multiple of 16, found {r!r}")
    return ArchPreset(model=doc.get("model", arch.model), model_config=dict(doc.get("model_config", arch.model_config)),
                      resolution=doc.get("resolution", arch.resolution))
