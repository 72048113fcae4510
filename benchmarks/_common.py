"""What every training benchmark shares: the machine it ran on and a plain progress printer."""

from __future__ import annotations

import os
import platform
import time
from typing import Any


def machine() -> dict[str, Any]:
    """The machine and library versions, with the load when the benchmark started (the machine may be shared)."""
    import numpy
    import torch

    from taskgroup.profile.device import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__,
            "load_average_1_5_15min_at_start": [round(x, 2) for x in os.getloadavg()],
            "date": time.strftime("%Y-%m-%d")}


def machine_line(m: dict[str, Any]) -> str:
    return (f"{m['cpu']}, {m['cores']} cores; torch {m['torch']}, numpy {m['numpy']}, Python {m['python']}; "
            f"load average at start {m['load_average_1_5_15min_at_start']} (a shared machine); {m['date']}.")


class PrintProgress:
    """taskgroup.train.trainer.Progress that prints one line per network."""

    def run_started(self, total, finished): print(f"{total} jobs, {finished} already trained", flush=True)
    def candidate_started(self, name, total_steps): pass
    def advance(self, steps=1): pass
    def epoch_done(self, name, epoch, epochs, val_total, lr): pass
    def candidate_done(self, name, summary): print(f"done {name}: {summary}", flush=True)
    def candidate_skipped(self, name, reason): pass
    def message(self, text): print(text, flush=True)
