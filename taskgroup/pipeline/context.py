"""What every pipeline stage shares (RunContext): the run directory, its settings, the measured
profile and budget, the loss table, training through the run's executor, and selection.

A stage (taskgroup.pipeline.stages) is a function of the context that reads earlier stages'
files; the context caches only what never changes within a run (the training data, the profile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from taskgroup.grouping import Grouping
from taskgroup.learnability import NotLearnt
from taskgroup.losstable import LossTable
from taskgroup.pipeline.config import PipelineConfig
from taskgroup.profile import load_profile
from taskgroup.search import candidates_from_table
from taskgroup.search.normalize import loss_scales
from taskgroup.search.profiled import standard_network_ms
from taskgroup.search.withinnoise import WithinNoise
from taskgroup.search.workflow import (Budget, SelectionRequest, SelectionResult, resolve_budget, seed_noise_off,
                                       select_grouping, served_not_learnt)
from taskgroup.train import make_run_config, train_candidates
from taskgroup.train.executors import create_executor
from taskgroup.train.recipes import seed_noise_for


class RunContext:
    """One run directory and its settings, with the helpers the stages read it through."""

    def __init__(self, run_dir: str | Path, config: PipelineConfig, *, say: Callable[[str], None] = print,
                 progress=None, executor=None):
        """`executor`: where every training stage trains its networks (an ExecutorSpec or its text:
        local, processes:N, ray; taskgroup.train.executors). It is not part of the run's settings:
        a run may be resumed with another executor and gives the same losses."""
        self.run_dir = Path(run_dir)
        self.config = config
        self.say = say
        self.progress = progress
        self._data = None  # training splits, loaded once and shared by every training stage
        self._profile = None  # the measured device profile, once the profile stage has written it
        self.executor = create_executor(executor)  # opened once, kept for every training stage, closed by the run

    @property
    def train_dir(self) -> Path:
        return self.run_dir / "train"

    def profile(self):
        """The profile this run measured (read once; it never changes after the profile stage)."""
        if self._profile is None:
            self._profile = load_profile(self.run_dir / "profile.json")
        return self._profile

    def budget(self) -> Budget:
        """The run's budget in ms on its profile (and the SNT multiple it came from)."""
        return resolve_budget(self.profile().standard_network_ms(), budget_ms=self.config.budget_ms,
                              budget_snt=self.config.budget_snt)

    def budget_ms(self) -> float:
        return float(self.budget().value)

    def run_config(self):
        return make_run_config(self.config.preset, self.config.config_file, seed=self.config.seed,
                               esa_fraction=self.config.esa)

    def table(self) -> LossTable:
        return LossTable.load(self.train_dir)

    def candidates(self, split: str, stage: str, estimate: str | None = None):
        return candidates_from_table(self.table(), split, stage, cost_fn=self.profile().cost_fn, estimate=estimate)

    def data(self):
        """The training splits, loaded (rendered and cached on first use) once for every training stage."""
        from taskgroup.train.trainer import load_run_data  # imports torch: only where networks train

        if self._data is None:
            self.say("loading data (rendered and cached on first use)")
            self._data = load_run_data(self.run_config(), self.config.tasks)
        return self._data

    def train(self, specs, stages: tuple[str, ...], affinity: bool = False) -> None:
        """Train `specs` to `stages` for every seed of the run, resuming the run's store where it exists."""
        config = self.run_config()
        resume = (self.train_dir / "runs.sqlite").exists()
        data = self.data()
        train_candidates(self.train_dir, self.config.tasks, specs, config, resume=resume, stages=stages,
                         progress=self.progress, data=data, seeds=self.config.seed_list, affinity=affinity,
                         executor=self.executor)

    def candidate_stage(self) -> str:
        """The stage selection reads: early with ESA; final otherwise, and for adaptive rounds (whose early
        stage only feeds their estimates)."""
        return "early" if self.config.esa is not None and self.config.candidates != "rounds" else "final"

    def within_noise(self, stage: str):
        """(the within-noise rule for a choice among networks of `stage`, or None; why it is off).

        The rule takes the cheapest grouping within one standard error of its paired difference from
        the optimum (taskgroup.search.withinnoise), from the preset's measured seed noise. It is off where
        that measurement does not hold: another recipe or task set, an objective it did not measure,
        and ESA's early losses (it was measured on fully trained networks)."""
        off = seed_noise_off(self.config.tasks, stage, self.config.normalize)
        if off:
            return None, off
        record = seed_noise_for(self.config.preset, self.run_config())
        if record is None:
            return None, (f"no seed noise was measured for this recipe (preset '{self.config.preset}'"
                          + (", changed by --config" if self.config.config_file else "") + ")")
        return WithinNoise(record, self.config.normalize, max(1, len(self.table().seed_values()))), ""

    def select(self, cands, stage: str, path: Path, top_k: int = 1, **options: Any) -> SelectionResult:
        """The selection workflow on this run's profile and budget, with the within-noise rule where it holds;
        the grouping file's extra says why the rule was off."""
        rule, off = self.within_noise(stage)
        p = self.profile()
        return select_grouping(SelectionRequest(
            cands, self.config.tasks, self.budget(), path, self.train_dir, profile=p,
            standard_ms=standard_network_ms(p, self.config.tasks), scales=self.scales("val"), top_k=top_k,
            within_noise=rule, prefer_cheaper=True, within_noise_off=off or None, explain=False,
            check_estimated=False, reference=self.table().reference_losses, **options))

    def scales(self, split: str) -> dict[str, float] | None:
        """Per-task objective divisors on `split` (None: the paper's plain sum). `single` uses the
        fully trained single where there is one, so selection and report divide by the same network."""
        table = self.table()
        singles = [c for c in self.candidates(split, self.candidate_stage()) if len(c.tasks) == 1]
        return loss_scales(self.config.normalize, table, singles, split)

    def not_learnt(self, grouping: Grouping) -> list[NotLearnt]:
        """Served tasks of a grouping whose trained network does not beat the trivial predictor on
        validation (networks only estimated are not checked)."""
        return served_not_learnt(grouping, self.table().reference_losses, measured_only=True)
