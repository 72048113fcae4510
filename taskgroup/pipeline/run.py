"""The end-to-end pipeline: profile -> train candidates -> select -> train the chosen networks
fully -> baselines -> export -> benchmark -> report, in one run directory.

RUN_DIR/
  pipeline.json      config and the stages finished so far (resume skips them)
  profile.json       device profile measured at the start (costs in ms)
  train/             the training run (runs.sqlite, losses.json, checkpoints/)
  selected.json      the grouping chosen on the candidates (may contain estimated networks)
  frontier.json      the whole time-vs-loss trade-off on the candidates
  best.json          the final grouping: chosen networks fully trained, evaluated on test
  baselines.json     baselines at the same budget, trained and evaluated the same way
  bundle/            the deployable bundle (taskgroup export)
  bench.json         measured latency of the bundle
  report/            report.md and figures

Each stage writes its outputs atomically and is then recorded as finished in pipeline.json;
an interrupted pipeline re-run with `resume=True` repeats no finished stage (training itself
resumes candidate by candidate).

The modules of the pipeline: config (PipelineConfig), context (what every stage shares), stages
(the stage functions, in order), this module (the run: its lock, its state file and resume),
baselines (the baselines and baselines.json), report_assembly (the report's data from the run's
files), report_model, report_text, report_figures and report (writing it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import DirectoryLock, differences
from taskgroup.pipeline.config import BUDGET_FIELDS, PipelineConfig
from taskgroup.pipeline.context import RunContext
from taskgroup.pipeline.stages import STAGE_FUNCTIONS, STAGES
from taskgroup.pipeline.state import STATE_FILE, PipelineState
from taskgroup.train import CandidateSpec


class Pipeline(RunContext):
    """Runs the stages in order (taskgroup.pipeline.stages) in one run directory, which it locks, and
    records each finished stage in pipeline.json so that a resumed run skips it."""

    def __init__(self, run_dir: str | Path, config: PipelineConfig, *, resume: bool = False,
                 say: Callable[[str], None] = print, progress=None, executor=None):
        """`executor`: where every training stage trains its networks (RunContext)."""
        super().__init__(run_dir, config, say=say, progress=progress, executor=executor)
        # One process per run directory (released when run() ends or the process exits).
        self._lock = DirectoryLock(self.run_dir)
        try:
            if resume and (self.run_dir / STATE_FILE).is_file():  # never leave a lock file in a directory that is no run
                self._lock.acquire()
            self.state = self._open_state(resume)
            if not self._lock.held:
                self._lock.acquire()
        except BaseException:
            self.executor.close()
            raise

    # ---- state
    def _open_state(self, resume: bool) -> PipelineState:
        path = self.run_dir / STATE_FILE
        if resume:
            if not path.exists():
                raise TaskgroupError(f"{self.run_dir}: nothing to resume (no {STATE_FILE}); run without --resume")
            state = PipelineState.load(self.run_dir)
            now, then = json.loads(json.dumps(self.config.to_json())), state.config
            changes = differences(then, now)
            if changes and {k.split(".")[0] for k, _, _ in changes} <= set(BUDGET_FIELDS):
                # Only the budget changed: profiles and trained networks stay valid; selection onwards is redone.
                redo = [st for st in STAGES[STAGES.index("select"):] if st in state.finished]
                for st in redo:
                    del state.finished[st]
                state.config = now
                state.save(self.run_dir)
                self.say(f"budget changed ({'; '.join(f'{k}: {a!r} -> {b!r}' for k, a, b in changes)}); "
                         f"redoing {', '.join(redo) or 'nothing finished yet'}")
            elif changes:
                changed = "; ".join(f"{k}: run has {a!r}, now {b!r}" for k, a, b in changes)
                raise TaskgroupError(f"{path}: refusing to resume with different settings ({changed}); use the "
                                     "original options or a new --out (a new budget alone is accepted)")
            return state
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise TaskgroupError(f"{self.run_dir}: exists and is not a directory; give a new --out")
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise TaskgroupError(f"{self.run_dir}: directory is not empty; use --resume to continue a run or a new --out")
        self._preflight()
        state = PipelineState(self.config.to_json())
        state.save(self.run_dir)
        return state

    def _preflight(self) -> None:
        """Problems with the architecture or the data must surface before the run directory exists,
        not after minutes of profiling: build a network, load the data, check it can train."""
        from taskgroup.train.trainer import build_model, check_trainable  # imports torch

        config = self.run_config()
        model = build_model(config, CandidateSpec(self.config.tasks))  # a bad architecture fails before the data loads
        check_trainable(config, self.data(), model)
        self.executor.open()  # an unreachable Ray cluster or a missing GPU, too

    def run(self) -> Path:
        """Every stage not finished yet, in order; the report's path. The lock and the executor are
        released however it ends."""
        try:
            for stage, step in STAGE_FUNCTIONS:
                if stage in self.state.finished:
                    self.say(f"[{stage}] already finished; skipped")
                    continue
                self.say(f"[{stage}] ...")
                start = time.perf_counter()
                info = step(self) or {}
                self.state.finish(self.run_dir, stage, time.perf_counter() - start, **info)
                self.say(f"[{stage}] done in {time.perf_counter() - start:.1f} s")
            return self.run_dir / "report" / "report.md"
        finally:
            self.executor.close()
            self._lock.release()
