"""Render throughput of the built-in scenes: images per second, single process and as built.

Writes benchmarks/results/render_throughput.json with machine info. Usage:
    python benchmarks/render_throughput.py [--resolution 64] [--views 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from taskgroup.profile.device import cpu_model  # noqa: E402




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--views", type=int, default=200, help="views rendered in the single-process measurement")
    parser.add_argument("--full", action="store_true", help="also time building the default dataset (train+val+test)")
    args = parser.parse_args()

    import cv2

    from taskgroup.data import DataConfig, open_split
    from taskgroup.data import scenes

    per = 10
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    for k in range(args.views // per):
        scenes.render_split_layout(0, 0, k, per, args.resolution)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    result = {
        "kind": "benchmark_render_throughput",
        "schema_version": 1,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "opencv": cv2.__version__,
                    "load_average_at_start": list(os.getloadavg())},
        "resolution": args.resolution,
        "single_process": {"views": args.views // per * per, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                           "images_per_s_wall": round(args.views / wall, 1),
                           "images_per_s_cpu": round(args.views / cpu, 1)},
    }
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            config = DataConfig(resolution=args.resolution, cache_dir=tmp)
            timings = {}
            for split in ("train", "val", "test"):
                t0 = time.perf_counter()
                arrays = open_split(config, split, ["rgb"])
                timings[split] = {"views": len(arrays), "wall_s": round(time.perf_counter() - t0, 3)}
            total = sum(t["views"] for t in timings.values())
            total_s = sum(t["wall_s"] for t in timings.values())
            t0 = time.perf_counter()
            reopened = open_split(config, "train", ["depth_zbuffer", "normal", "segment_semantic"])
            reopen_s = time.perf_counter() - t0
            rng = np.random.default_rng(0)
            reopened.batch(np.arange(len(reopened)))  # warm the page cache: measure indexing, not first disk reads
            t0 = time.perf_counter()
            for _ in range(20):
                reopened.batch(rng.integers(0, len(reopened), 64))
            batch_ms = (time.perf_counter() - t0) / 20 * 1000
        result["default_dataset"] = {"splits": timings, "images_per_s_wall": round(total / total_s, 1),
                                     "total_wall_s": round(total_s, 2), "reopen_s": round(reopen_s, 4),
                                     "batch64_ms_3_tasks": round(batch_ms, 2)}
    out = Path(__file__).parent / "results" / "render_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
