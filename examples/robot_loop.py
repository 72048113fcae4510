"""Embedding the taskgroup runtime in a robot's perception loop.

    python examples/robot_loop.py DEPLOY_DIR [--frames 100] [--device cpu]

The loop grabs a frame (here: a synthetic camera producing uint8 HWC RGB images), runs every
task of the bundle on it, uses the outputs, and counts frames that missed the latency
budget the bundle was selected for. Only numpy and the runtime are needed: no torch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from taskgroup_runtime import RuntimeInputError, load_bundle


def camera(height: int, width: int, n: int):
    """A stand-in for the robot's camera driver: a moving colour pattern, uint8 HWC RGB."""
    yy, xx = np.mgrid[0:height, 0:width]
    for k in range(n):
        r = (xx * 4 + k * 3) % 256
        g = (yy * 4 + k) % 256
        b = ((xx + yy) * 2 + k * 5) % 256
        yield np.stack([r, g, b], axis=-1).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="directory written by `taskgroup export`")
    parser.add_argument("--frames", type=int, default=100, help="frames to process")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()

    bundle = load_bundle(args.bundle, device=args.device)  # verifies hashes, warms up, picks execution mode
    budget = bundle.manifest.selection.budget  # what the grouping was selected under (None: not recorded)
    deadline_ms = budget.value if budget is not None and budget.unit == "ms" else None
    print(f"loaded {args.bundle}: tasks {', '.join(bundle.tasks)}; backend {bundle.backend}, "
          f"execution {bundle.execution}")

    latencies, missed = [], 0
    with bundle:
        for frame in camera(bundle.input.height, bundle.input.width, args.frames):
            t0 = time.perf_counter()
            try:
                out = bundle.run(frame)
            except RuntimeInputError as exc:  # a bad frame from the driver: skip it, keep the robot going
                print(f"skipped frame: {exc}")
                continue
            ms = (time.perf_counter() - t0) * 1e3
            latencies.append(ms)
            missed += deadline_ms is not None and ms > deadline_ms
            # Use the outputs: e.g. the dominant segmentation class and the mean depth in view.
            summary = {}
            if "segment_semantic" in out:
                summary["segment_semantic"] = int(np.bincount(out["segment_semantic"][0].argmax(0).ravel()).argmax())
            for task in out:
                summary.setdefault(task, float(out[task][0].mean()))
    p50, p99 = np.percentile(latencies, [50, 99])
    print(f"{len(latencies)} frames: p50 {p50:.3f} ms, p99 {p99:.3f} ms"
          + (f", {missed} over the {deadline_ms:g} ms budget" if deadline_ms is not None else ""))
    print("last frame:", ", ".join(f"{t}={v:.3g}" if isinstance(v, float) else f"{t}=class {v}"
                                   for t, v in summary.items()))


if __name__ == "__main__":
    main()
