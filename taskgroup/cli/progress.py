"""The training progress display of `taskgroup train` and `taskgroup pipeline` (rich, on stderr).

It implements the progress interface the trainer and the executors report to
(taskgroup.train.trainer.Progress): run_started, candidate_started/advance/epoch_done/candidate_done
for a network trained here, job_started/job_failed for one on a worker, candidate_skipped, message.
"""

from __future__ import annotations


class RichProgress:
    """Rich progress display: an overall bar over candidates, and a bar for each network training now.

    A network trained in this process has a bar in steps; one trained by a worker (processes:N,
    ray) has a bar in epochs where its executor forwards them (processes) or a pulsing one (ray).
    The overall bar counts networks running, done and failed across workers."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                             console=Console(stderr=True))
        self._overall = None
        self._current = None
        self._jobs: dict[str, object] = {}  # name -> bar of a network on a worker
        self._done = 0
        self._failed = 0

    def __enter__(self) -> "RichProgress":
        self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.stop()

    def run_started(self, total: int, finished: int) -> None:
        self._overall = self._bar.add_task("all candidates", total=total, completed=finished, info="")

    def candidate_started(self, name: str, total_steps: int) -> None:
        if self._current is not None:
            self._bar.remove_task(self._current)
        self._current = self._bar.add_task(f"  {name}", total=total_steps, info="")

    def advance(self, steps: int = 1) -> None:
        self._bar.advance(self._current, steps)

    def epoch_done(self, name: str, epoch: int, epochs: int, val_total: float, lr: float) -> None:
        if name in self._jobs:
            self._bar.update(self._jobs[name], total=epochs, completed=epoch, info=f"val {val_total:.4f} lr {lr:.3g}")
        else:
            self._bar.update(self._current, info=f"epoch {epoch}/{epochs} val {val_total:.4f} lr {lr:.3g}")

    def candidate_done(self, name: str, summary: str) -> None:
        self._bar.console.print(f"[green]done[/] {name}: {summary}")
        self._bar.advance(self._overall, 1)
        self._done += 1
        if name in self._jobs:
            self._bar.remove_task(self._jobs.pop(name))
            self._show_counts()

    def job_started(self, name: str, where: str) -> None:
        self._jobs[name] = self._bar.add_task(f"  {name}", total=None, info=f"on {where}")
        self._show_counts()

    def job_failed(self, name: str, reason: str, retrying: bool) -> None:
        self._failed += 1
        self._bar.console.print(f"[red]failed[/] {name}: {reason}")
        if name in self._jobs:
            self._bar.remove_task(self._jobs.pop(name))
        self._show_counts()

    def _show_counts(self) -> None:
        if self._overall is not None:
            info = f"running {len(self._jobs)}, done {self._done}, failed {self._failed}"
            self._bar.update(self._overall, info=info)

    def candidate_skipped(self, name: str, reason: str) -> None:
        self._bar.console.print(f"[dim]skip {name}: {reason}[/]")

    def message(self, text: str) -> None:
        self._bar.console.print(text)
