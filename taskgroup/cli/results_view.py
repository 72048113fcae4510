"""What `taskgroup results` and `taskgroup train` print: a run's loss table and its inter-task affinity.

Rendering only: the table comes in as the loss table's own JSON document (`LossTable.to_json`),
the affinity is read back through `AffinityTable.from_json`.
"""

from __future__ import annotations

from taskgroup.affinity import AffinityTable
from taskgroup.learnability import is_learnt


def render_affinity(doc: dict) -> list:
    """Rich tables of the run's inter-task affinity (mean over seeds, whole run), if it has one."""
    from rich.table import Table

    if not doc.get("affinity"):
        return []
    affinity = AffinityTable.from_json(doc["affinity"], "losses.json")
    stage = "final" if "final" in affinity.stages() else affinity.stages()[0]
    seeds = affinity.seeds(stage)
    titles = {"tag": "lookahead affinity (TAG): 1 - L_target after a step on the source alone / L_target before",
              "tag-nomomentum": "the same lookahead without the optimizer's momentum buffer",
              "cosine": "cosine similarity of the per-task gradients on the shared parameters"}
    out = []
    for kind, title in titles.items():
        if kind not in affinity.kinds(stage):
            continue
        matrix = affinity.mean(kind, stage)
        table = Table(title=f"{title} (row = source, column = target; mean over seeds {','.join(map(str, seeds))}, "
                            f"{stage} stage)")
        table.add_column("source", overflow="fold")
        for t in affinity.tasks:
            table.add_column(t, justify="right")
        for t, row in zip(affinity.tasks, matrix):
            table.add_row(t, *[f"{v:.3g}" if kind != "cosine" else f"{v:.3f}" for v in row])
        out.append(table)
    return out


def render_table(doc: dict, split: str):
    """A rich table: one row per network, one column per task; the trivial predictor as the first row.

    With several seeds a cell is 'mean ± standard deviation' over seeds. A validation loss that
    does not beat the trivial predictor is marked '!' (the network learnt nothing about that task)."""
    from rich.table import Table

    tasks = doc["tasks"]
    status = doc.get("meta", {}).get("status", {})
    seeds = doc.get("meta", {}).get("seeds")
    title = f"{split} losses ({len(doc['networks'])} networks"
    if seeds:
        title += f", mean ± std over seeds {','.join(map(str, seeds))}"
    title += f"; {status['running']} interrupted)" if status.get("running") else ")"
    ref = doc.get("reference_losses", {})
    flagged = [(t, "+".join(n["tasks"]) + f"@{n['width']:g}" + ("" if n["stage"] == "final" else f"/{n['stage']}"))
               for n in doc["networks"] for t in n["tasks"]
               if _not_below(n["losses"].get("val", {}).get(t), ref.get(t, {}).get("val"))]
    caption = ("Per task its loss (cross_entropy: nats/pixel; l1: mean absolute error in the data's units; l2: mean "
               "squared error in the data's units squared; bce: nats per label and pixel), over labelled pixels; "
               "lower is better. Trivial = best constant predictor fitted on the training split.")
    recipe = (doc.get("meta", {}).get("run_config") or {}).get("train") or {}
    if isinstance(recipe, dict) and recipe:
        caption += (f" Trained with strategy {recipe.get('strategy', 'sum')}, weighting {recipe.get('weighting', 'none')}"
                    + (f" ({', '.join(f'{t} {w:g}' for t, w in recipe['task_weights'].items())})"
                       if recipe.get("task_weights") else "")
                    + (", per-task stopping" if recipe.get("per_task_stopping") else "") + ".")
    if flagged:
        caption += (" ! = not clearly (1%) below the trivial predictor on validation (not learnt): "
                    + ", ".join(f"{t} in {net}" for t, net in flagged) + ".")
    table = Table(title=title, caption=caption)
    table.add_column("network", overflow="fold")  # names identify the rows: wrap them, never cut them
    table.add_column("width", justify="right")
    table.add_column("stage")
    if seeds:
        table.add_column("seeds", justify="right")
    for t in tasks:
        table.add_column(t, justify="right")
    table.add_column("steps", justify="right")
    table.add_column("time s", justify="right")
    ref = doc.get("reference_losses", {})
    table.add_row("trivial predictor", "", "", *([""] if seeds else []), *[_fmt(ref.get(t, {}).get(split)) for t in tasks],
                  "", "", style="dim")
    counts = doc.get("meta", {}).get("labelled_samples") or {}
    labelled = counts.get("labelled") or {}
    for part in dict.fromkeys(("train", split)):  # the training split too: where labels are most often missing
        size = (counts.get("samples") or {}).get(part)
        if size and any(labelled.get(t, {}).get(part, size) < size for t in tasks):  # partial labels: say how many
            table.add_row(f"labelled {part} samples", "", "", *([""] if seeds else []),
                          *[f"{labelled.get(t, {}).get(part, '?')} of {size}" for t in tasks], "", "", style="dim")
    for n in doc["networks"] + doc.get("task_stops", []):
        losses = n["losses"].get(split, {})
        std = (n.get("loss_std") or {}).get(split, {})
        stage = n["stage"] if n["stage"] == "final" else f"{n['stage']} ({n['fraction']:.2f})"
        if n.get("stopped_for"):
            stage += f", best epoch of {n['stopped_for']}"
        cells = []
        for t in tasks:
            cell = _fmt(losses.get(t))
            if cell and std.get(t) is not None:
                cell += f" ± {std[t]:.4f}"
            if cell and _not_below(n["losses"].get("val", {}).get(t), ref.get(t, {}).get("val")):
                cell += " !"
            cells.append(cell)
        table.add_row("+".join(n["tasks"]), f"{n['width']:g}", stage, *([str(n.get("n_seeds", 1))] if seeds else []),
                      *cells, str(n.get("steps") or ""), _fmt(n.get("wall_time_s"), 1))
    return table


def _not_below(loss, trivial) -> bool:
    return loss is not None and trivial is not None and not is_learnt(loss, trivial)


def _fmt(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"
