"""The pipeline's settings (PipelineConfig): what a run trains, selects and measures, with its defaults.

Every option a later stage uses is checked when the config is made, before the run directory
exists; `to_json` is what pipeline.json records and what a resume compares against.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from taskgroup.errors import TaskgroupError
from taskgroup.profile.device import parse_device, resolve_backend
from taskgroup.search.normalize import NORMALIZATIONS
from taskgroup.search.registry import TRAINING_PLANS, get_estimator
from taskgroup.tasks import PAPER_TASKS, parse_task_list
from taskgroup.train import CANDIDATE_SETS, make_run_config
from taskgroup.train.candidates import tracks_affinity
from taskgroup.train.rounds import DEFAULT_FRACTION
from taskgroup.train.run import check_seeds
from taskgroup.train.strategies import check_affinity

DEFAULT_BUDGET_SNT = 1.5  # between one network (1) and one network per task (1.5-1.75 measured on the default preset)
BUDGET_FIELDS = ("budget_ms", "budget_snt")  # a resume may change these: only selection onwards depends on them


@dataclass(frozen=True)
class PipelineConfig:
    preset: str = "default"  # architecture, data and training recipe (taskgroup.presets / taskgroup.train)
    config_file: str | None = None  # TOML overriding preset fields, as `taskgroup train --config`
    tasks: tuple[str, ...] = PAPER_TASKS  # tasks to group (default: the paper's five)
    candidates: str = "pairs"  # candidate set trained for the search: singles | pairs | all | affinity
    estimate: str | None = "hoa"  # estimator for untrained networks: hoa (pairs), tag or cosine (affinity), None
    normalize: str = "reference"  # objective: reference (each loss / its trivial predictor's) | none (the paper's plain sum) | single
    esa: float | None = None  # Early Stopping Approximation: train candidates for this fraction only
    budget_ms: float | None = None  # budget in measured milliseconds on this device...
    budget_snt: float | None = None  # ...or in standard-network times (x the profiled all-task network); DEFAULT_BUDGET_SNT if neither
    random_baselines: int = 3  # random groupings drawn as baselines
    seed: int = 0  # weights, batch order, random baselines (the first of `seeds` when those are given)
    seeds: tuple[int, ...] | None = None  # train every network once per seed (None: just `seed`)
    top_k: int = 1  # finalize trains the networks of the k best groupings under the estimate and re-chooses (1: off)
    device: str = "cpu"  # device to profile and benchmark on
    backend: str = "onnxruntime"  # profiling backend; the runtime uses ONNX Runtime

    def __post_init__(self) -> None:
        if self.candidates == "rounds" and self.esa is None:  # rounds start from every candidate's early stage
            object.__setattr__(self, "esa", DEFAULT_FRACTION)
        if self.seeds is not None:
            seeds = check_seeds(list(self.seeds))
            object.__setattr__(self, "seeds", None if seeds == (self.seed,) else seeds)
            object.__setattr__(self, "seed", seeds[0])
        if self.budget_ms is None and self.budget_snt is None:
            object.__setattr__(self, "budget_snt", DEFAULT_BUDGET_SNT)
        if self.budget_ms is not None and self.budget_snt is not None:
            raise TaskgroupError("give exactly one budget: --budget-ms X or --budget-snt Y")
        budget = self.budget_ms if self.budget_ms is not None else self.budget_snt
        if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
            raise TaskgroupError(f"the budget must be a positive number, got {budget!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or not 1 <= self.top_k <= 50:
            raise TaskgroupError(f"--top-k must be an integer from 1 to 50, got {self.top_k!r}")
        if self.random_baselines < 0:
            raise TaskgroupError(f"--random-baselines must be >= 0, got {self.random_baselines}")
        self._check_stage_options()  # reads the config file, which may declare tasks: before the names are checked
        object.__setattr__(self, "tasks", parse_task_list(list(self.tasks)))
        if len(self.tasks) < 2:
            raise TaskgroupError("grouping needs at least two tasks")

    def _check_stage_options(self) -> None:
        """Every option a later stage uses is checked now, before anything is written: a typo
        must not surface after minutes of training, in a run that then cannot be resumed."""
        if self.candidates not in CANDIDATE_SETS:
            raise TaskgroupError(f"unknown candidate set '{self.candidates}'; valid sets: {', '.join(CANDIDATE_SETS)}")
        if self.estimate is not None:
            get_estimator(self.estimate)  # an unknown name fails here, listing the valid ones
            plan = TRAINING_PLANS.get(self.estimate)
            uses_table = getattr(get_estimator(self.estimate), "uses_table", False)
            if uses_table and self.candidates != plan:
                what = {"affinity": "the affinity measured while training the all-task network",
                        "base": "the all-task network alone (full and half width) and its affinity",
                        "rounds": "the early stage of every candidate, trained in rounds"}[plan]
                raise TaskgroupError(f"--estimate {self.estimate} estimates from {what}: use it with "
                                     f"--candidates {plan}")
            if self.candidates in ("affinity", "base", "rounds") and plan != self.candidates:
                fitting = sorted(e for e, p in TRAINING_PLANS.items() if p == self.candidates)
                raise TaskgroupError(f"--candidates {self.candidates} trains no pairs for --estimate {self.estimate}; "
                                     f"use --estimate {' or '.join(fitting)} (or none: measured networks only)")
        if self.candidates in ("base", "rounds") and self.normalize == "single":
            raise TaskgroupError(f"--candidates {self.candidates} trains no single for --normalize single; use "
                                 "reference or none")
        if self.normalize not in NORMALIZATIONS:
            raise TaskgroupError(f"unknown normalisation '{self.normalize}'; valid options: {', '.join(NORMALIZATIONS)}")
        run_config = make_run_config(self.preset, self.config_file, seed=self.seed, esa_fraction=self.esa)
        if tracks_affinity(self.candidates):
            check_affinity(run_config.train.strategy)
        resolve_backend(self.backend, parse_device(self.device))

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["tasks"] = list(self.tasks)
        if self.seeds is None:
            del doc["seeds"]  # one seed: the document a one-seed pipeline always wrote
        else:
            doc["seeds"] = list(self.seeds)
        if self.top_k == 1:
            del doc["top_k"]  # off: the document a pipeline without re-ranking always wrote
        # What --config resolves to, not just its path: editing the file between runs must not go unnoticed.
        doc["run_config"] = make_run_config(self.preset, self.config_file, seed=self.seed,
                                            esa_fraction=self.esa).to_dict()
        doc.pop("config_file")
        return doc

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds if self.seeds is not None else (self.seed,)
