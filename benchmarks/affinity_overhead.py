"""Cost of measuring inter-task affinity: the all-task network trained with and without it.

Trains the full-width network of the five paper tasks on a preset (the whole schedule, one
seed) with affinity tracking at `affinity_every` and without, alternating rounds so background
load hits both alike, and reports each wall time and the ratio of medians. On a shared machine
the load swings between runs, so it also reports the ratio within each tracked run: its wall
time over its wall time minus the time spent measuring (measurement and training alternate
every few steps, so load hits both alike). The two runs must give identical losses (tracking
never changes training); the script checks it. Writes benchmarks/results/affinity_overhead.json.

    python benchmarks/affinity_overhead.py [--preset default] [--rounds 2] [--every 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

from taskgroup.profile.device import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    import torch

    from taskgroup.tasks import PAPER_TASKS
    from taskgroup.train import CandidateSpec, make_run_config
    from taskgroup.train.trainer import load_run_data, train_one

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--every", type=int, default=None, help="affinity_every (default: the config's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "affinity_overhead.json")
    args = parser.parse_args()

    config = make_run_config(args.preset)
    if args.every is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, affinity_every=args.every))
    spec = CandidateSpec(PAPER_TASKS, 1.0)
    data = load_run_data(config, PAPER_TASKS)
    times: dict[str, list[float]] = {"without": [], "with": []}
    measuring: list[float] = []
    losses = {}
    for r in range(args.rounds):
        for mode in ("without", "with") if r % 2 == 0 else ("with", "without"):
            start = time.perf_counter()
            result = train_one(spec, config, data, affinity=mode == "with")["final"]
            times[mode].append(time.perf_counter() - start)
            losses[mode] = result.losses
            if mode == "with":
                measuring.append(result.affinity["seconds"])
                steps = (result.steps, result.affinity["steps"])
            print(f"round {r + 1} {mode:7s} affinity: {times[mode][-1]:.1f} s", flush=True)
    if losses["with"] != losses["without"]:
        raise SystemExit("affinity tracking changed the trained network's losses")
    ratio = statistics.median(times["with"]) / statistics.median(times["without"])
    within = [w / (w - m) for w, m in zip(times["with"], measuring)]
    doc = {
        "what": "wall time of train_one on the full-width all-task network, with vs without affinity tracking",
        "preset": args.preset, "tasks": list(PAPER_TASKS), "affinity_every": config.train.affinity_every,
        "threads": config.train.threads, "steps": steps[0], "measured_steps": steps[1],
        "seconds_without": times["without"], "seconds_with": times["with"],
        "seconds_measuring": measuring, "ratio_of_medians": ratio, "ratio_within_tracked_runs": within,
        "losses_identical": True,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"with / without = {ratio:.2f} across runs, {statistics.median(within):.2f} within tracked runs "
          f"(affinity every {config.train.affinity_every} steps); wrote {args.out}")


if __name__ == "__main__":
    main()
