"""Reader for the paper's tab-separated loss tables (taskgroup/data/standley2020).

Format: one network per line, one column per task, a cell is that network's loss on that
task and an empty cell means the network lacks the task. Line 1 holds the half-size
single-task networks (width 0.5, one per non-empty cell); every other line is one
full-size network whose task set is its non-empty cells.
"""

from __future__ import annotations

import math
from pathlib import Path

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable, NetworkResult


def default_task_names(n: int) -> tuple[str, ...]:
    return tuple(f"t{i}" for i in range(n))


def read_paper_table(path: str | Path, task_names: tuple[str, ...] | None = None,
                     split: str = "val", stage: str = "final") -> LossTable:
    """Read a paper table into a LossTable whose losses sit under `split` (one split per file)."""
    path = Path(path)
    if not path.is_file():
        raise TaskgroupError(f"{path}: no such file")
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise TaskgroupError(f"{path}: not a text file ({exc})") from exc
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip(" \r\n"):  # blank lines are skipped; a line of tabs is a row with no losses
            rows.append((lineno, line.rstrip("\r\n").split("\t")))
    if not rows:
        raise TaskgroupError(f"{path}: empty table")
    width = len(rows[0][1])
    if task_names is None:
        task_names = default_task_names(width)
    if len(task_names) != width:
        raise TaskgroupError(f"{path}: the table has {width} task columns but {len(task_names)} task names were "
                             f"given ({','.join(task_names)})")
    if len(set(task_names)) != len(task_names):
        raise TaskgroupError(f"duplicate task names: {','.join(task_names)}")
    networks: list[NetworkResult] = []
    seen: dict[tuple, int] = {}
    for row_index, (lineno, cells) in enumerate(rows):
        if len(cells) != width:
            raise TaskgroupError(f"{path}, line {lineno}: ragged row: {len(cells)} columns, expected {width} "
                                 "(tab-separated, one column per task)")
        values: dict[str, float] = {}
        for col, cell in enumerate(cells):
            cell = cell.strip()
            if not cell:
                continue
            try:
                v = float(cell)
            except ValueError:
                raise TaskgroupError(f"{path}, line {lineno}, column {col + 1}: not a number: {cell!r}") from None
            if not math.isfinite(v) or v < 0:
                raise TaskgroupError(f"{path}, line {lineno}, column {col + 1}: a loss must be a finite number "
                                     f">= 0, found {cell!r}")
            values[task_names[col]] = v
        if not values:
            raise TaskgroupError(f"{path}, line {lineno}: a row with no losses")
        if row_index == 0:  # the half-size single-task networks, one per cell
            nets = [((t,), 0.5, {t: v}) for t, v in values.items()]
        else:
            nets = [(tuple(values), 1.0, values)]
        for tasks, w, losses in nets:
            key = (frozenset(tasks), w)
            if key in seen:
                raise TaskgroupError(f"{path}, line {lineno}: duplicate network {'+'.join(tasks)} at width {w:g} "
                                     f"(already on line {seen[key]})")
            seen[key] = lineno
            networks.append(NetworkResult(tasks=tasks, width=w, stage=stage, losses={split: dict(losses)}))
    return LossTable(tasks=tuple(task_names), networks=networks, meta={"source": str(path), "format": "standley2020-tsv"})
