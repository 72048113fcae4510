"""Pairwise task relationships on the built-in scenes, as in the paper's pair tables.

Trains the `pairs` candidate set (full and half singles, every pair at full width) of the
paper's five tasks on the `default` preset through the normal training API, into a run
directory, then prints per pair and task the gain of the pair over the half-size single
network of that task: L(half single) / L(pair) - 1 (positive: training with the partner
helped at equal total cost of two half networks vs one full network; negative: it hurt).
Writes benchmarks/results/pairwise_gains.md. Re-running resumes the run directory.

    python benchmarks/pairwise_gains.py [--run-dir DIR] [--split test]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from taskgroup.profile.device import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"




class PrintProgress:
    def run_started(self, total, finished): print(f"{total} candidates, {finished} already trained", flush=True)
    def candidate_started(self, name, total_steps): self.t = time.perf_counter()
    def advance(self, steps=1): pass
    def epoch_done(self, name, epoch, epochs, val_total, lr): pass
    def candidate_done(self, name, summary): print(f"done {name}: {summary}", flush=True)
    def candidate_skipped(self, name, reason): print(f"skip {name}: {reason}", flush=True)
    def message(self, text): print(text, flush=True)


def main() -> None:
    import numpy
    import torch

    from taskgroup.tasks import PAPER_TASKS
    from taskgroup.train import candidate_set, make_run_config, train_candidates
    from taskgroup.train.store import STORE_FILENAME

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/taskgroup-pairwise-gains"))
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tasks = PAPER_TASKS
    config = make_run_config("default", seed=args.seed)
    start = time.perf_counter()
    table = train_candidates(args.run_dir, tasks, candidate_set("pairs", tasks), config,
                             resume=(args.run_dir / STORE_FILENAME).exists(), progress=PrintProgress())
    elapsed = time.perf_counter() - start

    nets = {(frozenset(n.tasks), n.width): n for n in table.networks if n.stage == "final"}
    ref = table.reference_losses
    short = {t: t.split("_")[0][:8] for t in tasks}
    lines = [
        "# Pairwise gains on the built-in scenes (default preset)",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, numpy {numpy.__version__}, "
        f"Python {platform.python_version()}.",
        f"Run: `python benchmarks/pairwise_gains.py` ({len(table.networks)} networks; wall time of this "
        f"invocation {elapsed:.0f} s, training time summed over networks "
        f"{sum(n.wall_time_s or 0 for n in table.networks):.0f} s). Split: {args.split}. "
        f"Recipe: {config.train.epochs} epochs x {config.data.n_train} images at {config.arch.resolution}x"
        f"{config.arch.resolution}, batch {config.train.batch_size}, SGD lr {config.train.lr}, seed {args.seed}.",
        "",
        "## Single networks: loss relative to the trivial constant predictor (lower is better; 1 = learnt nothing)",
        "",
        "| task | trivial loss | full single | half single | full / trivial | half / trivial |",
        "|---|---|---|---|---|---|",
    ]
    for t in tasks:
        full, half = nets[(frozenset([t]), 1.0)].losses[args.split][t], nets[(frozenset([t]), 0.5)].losses[args.split][t]
        r = ref[t][args.split]
        lines.append(f"| {t} | {r:.4f} | {full:.4f} | {half:.4f} | {full / r:.3f} | {half / r:.3f} |")
    lines += [
        "",
        "## Gain of each pair over the half-size single network: L(half single) / L(pair) - 1",
        "",
        "Rows: the pair; columns: the task whose loss is compared (the paper's Table layout). "
        "Positive = the partner task helped.",
        "",
        "| pair | " + " | ".join(short[t] for t in tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    gains = []
    for i, a in enumerate(tasks):
        for b in tasks[i + 1:]:
            pair = nets[(frozenset([a, b]), 1.0)]
            cells = []
            for t in tasks:
                if t in (a, b):
                    g = nets[(frozenset([t]), 0.5)].losses[args.split][t] / pair.losses[args.split][t] - 1
                    gains.append((g, t, a, b))
                    cells.append(f"{g:+.3f}")
                else:
                    cells.append("")
            lines.append(f"| {short[a]}+{short[b]} | " + " | ".join(cells) + " |")
    pos = sum(1 for g, *_ in gains if g > 0.01)
    neg = sum(1 for g, *_ in gains if g < -0.01)
    best, worst = max(gains), min(gains)
    lines += [
        "",
        f"Of {len(gains)} (pair, task) entries, {pos} gain more than 1%, {neg} lose more than 1%, "
        f"{len(gains) - pos - neg} are within 1%. Largest gain: {best[1]} with {best[2] if best[1] != best[2] else best[3]} "
        f"({best[0]:+.3f}); largest loss: {worst[1]} with {worst[2] if worst[1] != worst[2] else worst[3]} ({worst[0]:+.3f}).",
        "",
        "Also compare the full single (same cost as the pair): L(full single) / L(pair) - 1:",
        "",
        "| pair | " + " | ".join(short[t] for t in tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for i, a in enumerate(tasks):
        for b in tasks[i + 1:]:
            pair = nets[(frozenset([a, b]), 1.0)]
            cells = [f"{nets[(frozenset([t]), 1.0)].losses[args.split][t] / pair.losses[args.split][t] - 1:+.3f}"
                     if t in (a, b) else "" for t in tasks]
            lines.append(f"| {short[a]}+{short[b]} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pairwise_gains.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
