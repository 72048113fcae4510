"""The pipeline's report: Markdown plus PNG figures in the run directory.

Everything shown is read from what the pipeline measured; the report only lays it out. It
says plainly where the chosen grouping is not the best at its budget.
"""

from __future__ import annotations

from pathlib import Path

from taskgroup.fileio import write_bytes_atomic
from taskgroup.pipeline.report_figures import plot_frontier, plot_gains, plot_task_losses
from taskgroup.pipeline.report_model import ReportData
from taskgroup.pipeline.report_text import markdown


def write_report(run_dir: str | Path, data: ReportData) -> Path:
    """Write report.md and its figures into run_dir/report/; return the Markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(run_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    if not data.affinity:  # an affinity run trained no pairs: its section shows the affinity instead
        plot_gains(out / "pairwise_gains.png", data)
    plot_frontier(out / "frontier.png", data)
    plot_task_losses(out / "task_losses.png", data)
    path = out / "report.md"
    write_bytes_atomic(path, markdown(data).encode())
    return path
