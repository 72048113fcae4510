"""The report's figures (PNG): pairwise gains, the time-vs-loss frontier with the baselines, and the
per-task test losses. matplotlib is imported only here, and only when a figure is drawn.
"""

from __future__ import annotations

from pathlib import Path

from taskgroup.fileio import write_bytes_atomic
from taskgroup.pipeline.report_model import ReportData


def plot_gains(path: Path, d: ReportData) -> None:
    """The pairwise gains as a heat map (%), row task trained with column partner."""
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(d.tasks)
    grid = np.full((n, n), np.nan)
    for i, t in enumerate(d.tasks):
        for j, p in enumerate(d.tasks):
            if i != j and p in d.pairwise_gains.get(t, {}):
                grid[i, j] = 100 * d.pairwise_gains[t][p]
    fig, ax = plt.subplots(figsize=(1.2 * n + 2, 1.0 * n + 1.5))
    finite = grid[np.isfinite(grid)]
    limit = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    im = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit)
    for i in range(n):
        for j in range(n):
            if np.isfinite(grid[i, j]):
                dark = abs(grid[i, j]) > 0.6 * limit  # white text on the saturated cells
                ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=9,
                        color="white" if dark else "black")
    ax.set_xticks(range(n), d.tasks, rotation=40, ha="right")
    ax.set_yticks(range(n), d.tasks)
    ax.set_xlabel("trained together with")
    ax.set_ylabel("task")
    ax.set_title(f"Pairwise gain (%), {d.gains_split} split")
    fig.colorbar(im, ax=ax, label="L(half single)/L(pair) - 1 (%)")
    _save(fig, path)


def plot_frontier(path: Path, d: ReportData) -> None:
    """The optimum at every budget (selection split), the same groupings on test, the baselines and the choice."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = sorted(d.frontier, key=lambda p: p["cost"])
    if pts:
        xs = [p["cost"] for p in pts]
        ax.step(xs, [p["objective"] for p in pts], where="post", label="optimum (selection split)", color="tab:blue")
        marked = [p for p in pts if p.get("beyond_noise")]
        if marked:
            ax.plot([p["cost"] for p in marked], [p["objective"] for p in marked], "o", markersize=13,
                    fillstyle="none", color="tab:red", label="beats one network beyond noise (95%)")
        tested = [p for p in pts if p.get("evaluated_losses")]  # groupings with an estimated network have none
        if tested:  # scored as the chosen grouping is: the plain total, or normalised by the test scales
            ax.plot([p["cost"] for p in tested],
                    [sum(v / (d.test_scales[t] if d.test_scales else 1.0) for t, v in p["evaluated_losses"].items())
                     for p in tested], "o", color="tab:blue", alpha=0.5, label="same groupings, test split")
    markers = iter("sDv^<>ph*")
    for b in d.baselines:
        e = d.score_estimate(b)
        ax.errorbar([b.cost], [e.mean], yerr=None if e.stderr is None else [e.stderr], fmt=next(markers, "x"),
                    capsize=3, label=f"{b.name} (test)", markersize=8)
    e = d.score_estimate(d.chosen)
    ax.errorbar([d.chosen.cost], [e.mean], yerr=None if e.stderr is None else [e.stderr], fmt="*", color="black",
                capsize=3, markersize=14, label="chosen (test)" + ("" if e.stderr is None else ", ± 1 se"))
    ax.axvline(d.budget, color="gray", linestyle="--", label="budget")
    ax.set_xlabel(f"inference cost ({d.budget_unit})")
    ax.set_ylabel("total loss" if d.test_scales is None else "normalised objective")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_task_losses(path: Path, d: ReportData) -> None:
    """Per-task test losses of the choice and every baseline, side by side."""
    import matplotlib.pyplot as plt
    import numpy as np

    results = [d.chosen] + d.baselines
    n = len(d.tasks)
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * n), 4.5))
    for k, r in enumerate(results):
        errors = [r.task_estimate(t).std or 0.0 for t in d.tasks] if d.several_seeds else None
        ax.bar(np.arange(n) + k * width, [r.test_losses[t] for t in d.tasks], width, yerr=errors, capsize=2,
               label=f"{r.name} ({d.score_estimate(r).short(4)}{'' if d.fits(r) else ', over budget'})")
    ax.set_xticks(np.arange(n) + 0.4 - width / 2, d.tasks, rotation=20, ha="right")
    ax.set_ylabel("test loss")
    ax.legend(fontsize=8)
    ax.set_title("Per-task test loss: chosen grouping vs baselines")
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """The figure as PNG, written atomically, and closed (pyplot keeps every open figure)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
