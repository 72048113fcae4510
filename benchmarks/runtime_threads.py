"""Thread safety and memory: 4 threads x 1,000 `Bundle.run` calls on a shared bundle.

Checks that every result equals the single-threaded result for the same frame (bitwise),
that no call raises, and how resident memory (VmRSS) grows from the first to the last
quarter of the calls (a leak would grow linearly). Runs with both execution modes.
Writes benchmarks/results/runtime_threads.json.

    python benchmarks/runtime_threads.py [--calls 1000] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "exporters"))


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def run_mode(bundle_dir: Path, execution: str, n_threads: int, calls: int) -> dict:
    from taskgroup_runtime import load_bundle

    rng = np.random.default_rng(0)
    with load_bundle(bundle_dir, execution=execution) as bundle:
        frames = [rng.integers(0, 256, (bundle.input.height, bundle.input.width, 3), dtype=np.uint8) for _ in range(16)]
        expected = [bundle.run(f) for f in frames]
        errors, mismatches = [], [0]
        rss_marks: list[int] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            for i in range(calls):
                j = (i * 7 + k) % len(frames)
                try:
                    out = bundle.run(frames[j])
                except Exception as exc:  # recorded: the benchmark reports every failure
                    with lock:
                        errors.append(repr(exc))
                    continue
                if any(not np.array_equal(out[t], expected[j][t]) for t in out):
                    with lock:
                        mismatches[0] += 1
                if k == 0 and i in (calls // 4, calls - 1):
                    rss_marks.append(rss_kib())

        rss_start = rss_kib()
        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
    return {"execution": execution, "threads": n_threads, "calls_per_thread": calls, "errors": errors[:5],
            "error_count": len(errors), "mismatches": mismatches[0], "wall_s": wall,
            "calls_per_s": n_threads * calls / wall, "rss_kib_start": rss_start,
            "rss_kib_after_quarter": rss_marks[0] if rss_marks else None,
            "rss_kib_end": rss_marks[-1] if rss_marks else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "runtime_threads.json")
    args = parser.parse_args()

    import onnxruntime

    from bundle_fixtures import make_grouping
    from taskgroup_exporters import export_bundle
    from taskgroup_runtime.bundle import cpu_cores
    from taskgroup.profile.device import cpu_model

    with tempfile.TemporaryDirectory() as tmp:
        # Separate networks: the execution modes are about how their sessions share the cores.
        bundle_dir = export_bundle(make_grouping(Path(tmp)), Path(tmp) / "deploy", resolution=16, fuse=False)
        results = [run_mode(bundle_dir, m, args.threads, args.calls) for m in ("sequential", "concurrent")]
    doc = {"kind": "benchmark_runtime_threads", "schema_version": 1,
           "machine": {"cpu": cpu_model(), "cores": cpu_cores(), "python": platform.python_version(),
                       "numpy": np.__version__, "onnxruntime": onnxruntime.__version__,
                       "load_average_1_5_15min": list(os.getloadavg())},
           "bundle": "tiny preset, 2 networks (3 tasks), 16x16 input", "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    for r in results:
        print(f"{r['execution']}: {r['threads']}x{r['calls_per_thread']} calls, {r['error_count']} errors, "
              f"{r['mismatches']} mismatches, RSS {r['rss_kib_after_quarter']} -> {r['rss_kib_end']} KiB")
    if any(r["error_count"] or r["mismatches"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
