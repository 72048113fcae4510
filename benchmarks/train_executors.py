"""Training executors on this machine: networks per minute and the overhead each adds per network.

Two measurements, each for every executor asked for (default: local, processes:2, ray):

1. Throughput: a candidate set of the preset (default: the five paper tasks' singles, 10
   networks, on the default preset) trained from scratch into a fresh run, as a user would
   run it: wall time from the call to the loss table, including the executor's start (worker
   processes importing torch, a local Ray instance). Networks per minute and the speed-up
   over `local`. The losses must be identical across executors (checked, and recorded).
2. Overhead: many short networks (the tiny preset cut to one epoch) trained twice with the same
   opened executor: the first run pays the start, the second shows the steady state. Per
   network, overhead = (wall time x slots - the networks' own training time) / networks: the
   slot-seconds not spent inside `train_one` (handing jobs out, moving splits and checkpoints,
   committing, idle slots). Start-up = opening the executor + (first run - second run).

The machine is shared: the load average before and after every run is recorded next to it.
Writes benchmarks/results/train_executors.json and .md.

    python benchmarks/train_executors.py [--preset default] [--candidates singles] [--executors local,processes:2,ray]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from _common import machine, machine_line

RESULTS = Path(__file__).resolve().parent / "results"
PAPER_TASKS = "segment_semantic,depth_zbuffer,normal,keypoints2d,edge_texture"


class Quiet:
    """Progress that records nothing (timings come from the store)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kw: None


def committed(run_dir: Path) -> tuple[list, float]:
    """(rows that must not depend on the executor, summed in-worker training seconds)."""
    con = sqlite3.connect(f"file:{run_dir / 'runs.sqlite'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT name, seed, stage, losses, steps, checkpoint_sha256 FROM results "
                           "ORDER BY name, seed, stage").fetchall()
        train_s = con.execute("SELECT SUM(wall_time_s) FROM results WHERE stage = 'final'").fetchone()[0]
    finally:
        con.close()
    return rows, float(train_s)


def slots(executor: str) -> int:
    if executor.startswith("processes:"):
        return int(executor.split(":")[1])
    if executor == "ray":
        return os.cpu_count() or 1  # the local instance offers every core; each task asks for one
    return 1


def timed_run(run_dir: Path, tasks, specs, config, data, executor) -> dict:
    from taskgroup.train import train_candidates

    load_before = [round(x, 2) for x in os.getloadavg()]
    start = time.perf_counter()
    train_candidates(run_dir, tasks, specs, config, data=data, executor=executor, progress=Quiet())
    wall = time.perf_counter() - start
    rows, train_s = committed(run_dir)
    return {"wall_s": round(wall, 2), "train_s": round(train_s, 2), "networks": len(specs),
            "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()], "_rows": rows}


def main() -> None:
    from taskgroup.tasks import parse_task_list
    from taskgroup.train import candidate_set, make_run_config
    from taskgroup.train.executors import create_executor, parse_executor
    from taskgroup.train.trainer import load_run_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--tasks", default=PAPER_TASKS)
    parser.add_argument("--candidates", default="singles")
    parser.add_argument("--executors", default="local,processes:2,ray")
    parser.add_argument("--overhead-candidates", default="pairs", help="tiny-preset set for the overhead runs")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    executors = [e.strip() for e in args.executors.split(",")]
    for e in executors:
        parse_executor(e)
    tasks = parse_task_list(args.tasks)
    work = Path(tempfile.mkdtemp(prefix="train_executors-"))
    doc = {"kind": "benchmark_train_executors", "schema_version": 1, "machine": machine(),
           "nice": os.nice(0), "threads_per_network": 1}

    # 1. throughput on the preset, cold, as a user runs it
    if not args.skip_throughput:
        config = make_run_config(args.preset)
        specs = candidate_set(args.candidates, tasks)
        data = load_run_data(config, tasks)
        runs = {}
        for e in executors:
            print(f"throughput: {e} ({len(specs)} networks, {args.preset} preset)", flush=True)
            runs[e] = timed_run(work / f"throughput-{e.replace(':', '_')}", tasks, specs, config, data, e)
            print(f"  {runs[e]['wall_s']} s wall, load {runs[e]['load_before']} -> {runs[e]['load_after']}", flush=True)
        reference = runs[executors[0]]["_rows"]
        identical = all(r.pop("_rows") == reference for r in runs.values())
        base = runs[executors[0]]["wall_s"]
        doc["throughput"] = {
            "preset": args.preset, "tasks": list(tasks), "candidates": args.candidates, "networks": len(specs),
            "identical_losses_and_checkpoints": identical,
            "runs": {e: {**r, "networks_per_minute": round(60 * r["networks"] / r["wall_s"], 2),
                         "speedup_over_first": round(base / r["wall_s"], 3)} for e, r in runs.items()}}

    # 2. overhead per network: short networks, cold then warm on one opened executor
    config = make_run_config("tiny", overrides={"train": {"epochs": 1}})
    specs = candidate_set(args.overhead_candidates, tasks)
    data = load_run_data(config, tasks)
    overhead = {}
    for e in executors:
        print(f"overhead: {e} ({len(specs)} one-epoch tiny networks, twice)", flush=True)
        executor = create_executor(e)
        start = time.perf_counter()
        executor.open()
        open_s = time.perf_counter() - start
        try:
            cold = timed_run(work / f"overhead-cold-{e.replace(':', '_')}", tasks, specs, config, data, executor)
            warm = timed_run(work / f"overhead-warm-{e.replace(':', '_')}", tasks, specs, config, data, executor)
        finally:
            executor.close()
        n, k = len(specs), slots(e)
        overhead[e] = {
            "slots": k, "open_s": round(open_s, 2), "cold": {k_: v for k_, v in cold.items() if k_ != "_rows"},
            "warm": {k_: v for k_, v in warm.items() if k_ != "_rows"},
            "startup_s": round(open_s + cold["wall_s"] - warm["wall_s"], 2),
            "overhead_per_network_s": round((warm["wall_s"] * k - warm["train_s"]) / n, 3),
            "train_per_network_s": round(warm["train_s"] / n, 3),
            "identical_across_runs": cold["_rows"] == warm["_rows"]}
        print(f"  start {overhead[e]['startup_s']} s, overhead {overhead[e]['overhead_per_network_s']} s per network",
              flush=True)
    doc["overhead"] = {"preset": "tiny, 1 epoch", "candidates": args.overhead_candidates, "networks": len(specs),
                       "executors": overhead}
    doc["machine"]["load_average_1_5_15min_at_end"] = [round(x, 2) for x in os.getloadavg()]

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_executors.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "train_executors.md").write_text(render(doc, executors))
    print(render(doc, executors))


def render(doc: dict, executors: list[str]) -> str:
    lines = ["# Training executors: networks per minute and overhead per network", "",
             f"Machine: {machine_line(doc['machine'])} Load average at the end "
             f"{doc['machine']['load_average_1_5_15min_at_end']}. Run at nice {doc['nice']}; every network trains on "
             "one thread. Command: `python benchmarks/train_executors.py` (`benchmarks/results/train_executors.json` "
             "has every number).", ""]
    t = doc.get("throughput")
    if t:
        lines += [f"## Throughput: {t['networks']} networks ({t['candidates']} of {len(t['tasks'])} tasks, "
                  f"{t['preset']} preset), from scratch including the executor's start", "",
                  "| executor | wall s | networks per minute | speed-up | training s per network (in the worker) | "
                  "load average before -> after |", "|---|---|---|---|---|---|"]
        for e in executors:
            r = t["runs"][e]
            lines.append(f"| {e} | {r['wall_s']} | {r['networks_per_minute']} | {r['speedup_over_first']}x | "
                         f"{r['train_s'] / r['networks']:.1f} | {r['load_before'][0]} -> {r['load_after'][0]} |")
        lines += ["", f"Identical losses and checkpoint bytes across executors: {t['identical_losses_and_checkpoints']}.",
                  ""]
    o = doc["overhead"]
    lines += [f"## Overhead: {o['networks']} short networks ({o['preset']}), trained twice on one opened executor", "",
              "| executor | slots | start-up s | per-network overhead s (steady state) | training per network s | "
              "load average (warm run) |", "|---|---|---|---|---|---|"]
    for e in executors:
        r = o["executors"][e]
        lines.append(f"| {e} | {r['slots']} | {r['startup_s']} | {r['overhead_per_network_s']} | "
                     f"{r['train_per_network_s']} | {r['warm']['load_before'][0]} -> {r['warm']['load_after'][0]} |")
    lines += ["", "Per-network overhead = (wall time x slots - the networks' own training time) / networks: the "
              "slot-seconds spent outside `train_one` (handing out jobs, moving checkpoints, committing, slots "
              "waiting). Start-up = opening the executor plus the difference between the first and second run. "
              "Training time per network grows with two workers because the two share the machine's cores with "
              "everything else running on it.", "",
              "The machine is shared: other processes compete for its two cores, and the load moves during a run; compare executors within one run of this "
              "script, and only roughly (the training time per network, in the JSON, shows how much CPU the "
              "networks got). Ray starts its workers at niceness +15 (its default `worker_niceness`).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
