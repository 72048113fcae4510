"""Render throughput of the built-in scenes: images per second, single process and as built.

Writes benchmarks/results/render_throughput.json with machine info. Usage:
    python benchmarks/render_throughput.py [--resolution 64] [--views 200]
    python benchmarks/render_throughput.py --preset gpu [--views 100] [--pool-views 400]

With --preset, the preset's resolution is used and the result (render_throughput-PRESET.json)
also has a split of --pool-views views built as the toolkit builds splits (one worker process
per core), its bytes on disk per view, and the time the preset's whole dataset takes at the
measured rate per core of CPU time (the rate scales with cores: each layout renders alone).
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



def preset_estimate(preset: str, pool_views: int, single: dict) -> dict:
    """Build one split of `pool_views` views the way the toolkit does, then estimate the preset's dataset."""
    from taskgroup.data import DataConfig, open_split
    from taskgroup.data.scenes import TARGET_TASKS
    from taskgroup.presets import get_arch_preset
    from taskgroup.train.config import DATA_PRESETS

    fields = DATA_PRESETS[preset]
    res = get_arch_preset(preset).resolution
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        config = DataConfig(resolution=res, n_train=pool_views, n_val=1, n_test=1,
                            views_per_layout=fields["views_per_layout"], cache_dir=tmp)
        t0 = time.perf_counter()
        open_split(config, "train", list(TARGET_TASKS))
        pool_s = time.perf_counter() - t0
        disk = sum(p.stat().st_size for p in Path(tmp).rglob("*.npy") if "train" in p.parts)
    views = fields["n_train"] + fields["n_val"] + fields["n_test"]
    per_core = single["images_per_s_cpu"]
    return {"preset": preset, "resolution": res, "views": views, "views_per_layout": fields["views_per_layout"],
            "pool": {"views": pool_views, "workers": cores, "wall_s": round(pool_s, 2),
                     "images_per_s_wall": round(pool_views / pool_s, 1)},
            "bytes_per_view_on_disk": round(disk / pool_views),
            "dataset_gb_on_disk": round(disk / pool_views * views / 1e9, 1),
            "estimated_dataset_minutes_at_pool_rate_here": round(views / (pool_views / pool_s) / 60, 1),
            "estimated_dataset_minutes_per_cores": {str(n): round(views / (per_core * n) / 60, 1)
                                                    for n in (2, 8, 16, 32)},
            "estimate": "views / (CPU-time rate of one process x cores); layouts render independently"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--views", type=int, default=200, help="views rendered in the single-process measurement")
    parser.add_argument("--full", action="store_true", help="also time building the default dataset (train+val+test)")
    parser.add_argument("--preset", help="measure at this preset's resolution and estimate its whole dataset")
    parser.add_argument("--pool-views", type=int, default=400, help="with --preset: views of the split built on workers")
    args = parser.parse_args()
    if args.preset:
        from taskgroup.presets import get_arch_preset

        args.resolution = get_arch_preset(args.preset).resolution

    import cv2

    from taskgroup.data import DataConfig, open_split
    from taskgroup.data import scenes

    per = 10
    if args.preset:  # layouts of the preset's size (a layout's set-up is shared by its views)
        from taskgroup.train.config import DATA_PRESETS

        per = DATA_PRESETS[args.preset]["views_per_layout"]
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
    if args.preset:
        result["preset"] = preset_estimate(args.preset, args.pool_views, result["single_process"])
    name = f"render_throughput-{args.preset}.json" if args.preset else "render_throughput.json"
    out = Path(__file__).parent / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
