"""`taskgroup doctor`: what works on this machine (torch's CUDA devices, the ONNX Runtime providers that
really run, TensorRT, Polygraphy), and the exact fix for each missing piece."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app, output_console
from taskgroup.doctor import diagnose, report_doc
from taskgroup.fileio import write_json_atomic


@app.command("doctor", short_help="Report what really works here (CUDA, ONNX Runtime providers, TensorRT) and how to fix the rest.")
def doctor_command(
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the findings to this JSON file."),
) -> None:
    """Try every accelerated path instead of trusting lists: count torch's CUDA devices, run a tiny model on
    each ONNX Runtime provider (onnxruntime-gpu lists CUDA and TensorRT even where they cannot run), import
    TensorRT and Polygraphy. Prints what works and, for each missing piece, the exact fix. Runs on a CPU-only
    machine too, and says so. Always exits 0: it reports, it does not judge."""
    from rich.markup import escape
    from rich.table import Table


    found = diagnose()
    table = Table(title="taskgroup doctor")
    for col in ("area", "check", "status", "found", "fix"):
        table.add_column(col, overflow="fold")
    marks = {"ok": "[green]ok[/green]", "missing": "[red]missing[/red]", "info": "-"}
    for f in found[:-1]:
        table.add_row(f.area, f.item, marks[f.status], escape(f.detail), escape(f.fix or ""))  # a fix may hold '[tensorrt]'
    console = output_console()
    console.print(table)
    summary = found[-1]
    console.print(escape(summary.detail + (f"; {summary.fix}" if summary.fix else "")))
    if json_out is not None:
        write_json_atomic(json_out, report_doc(found))
