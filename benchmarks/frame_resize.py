"""Camera-frame conversion in the runtime: a uint8 frame of any size resized to the bundle's input
(runtime.resize: the training loaders' area averaging, in numpy), timed per frame.

For common camera sizes and the presets' input sizes, times `to_network_input` (what `Bundle.run`
does before the networks) for a fused bundle's uint8 input and a separate bundle's float32 input,
with the runtime's own timing function, and OpenCV's `cv2.resize(..., INTER_AREA)` on the same frame
for scale (the runtime does not use OpenCV). Writes benchmarks/results/frame_resize.json with the
machine description.

    python benchmarks/frame_resize.py [--min-runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskgroup_runtime.specs import InputSpec  # noqa: E402
from taskgroup_runtime.preprocess import to_network_input  # noqa: E402
from taskgroup_runtime.timing import TimingConfig, measure  # noqa: E402

CAMERAS = [(480, 640), (720, 1280), (1080, 1920)]
INPUTS = [32, 64]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-runs", type=int, default=200)
    args = parser.parse_args()
    import cv2

    rows = []
    for h, w in CAMERAS:
        frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        for side in INPUTS:
            fused = InputSpec("frame", side, side, "uint8", "NHWC", resize="area")
            separate = InputSpec("image", side, side, "float32", "NCHW", resize="area")
            calls = {"fused (uint8)": lambda s=fused: to_network_input(frame, s),
                     "separate (float32)": lambda s=separate: to_network_input(frame, s),
                     "cv2 INTER_AREA": lambda s=side: cv2.resize(frame, (s, s), interpolation=cv2.INTER_AREA)}
            timed = measure(calls, TimingConfig(warmup_runs=5, min_runs=args.min_runs, min_seconds=0.2))
            for name, t in timed.items():
                rows.append({"camera": f"{w}x{h}", "input": side, "path": name, **t.summary()})
                print(f"{w}x{h} -> {side}: {name}: p50 {t.summary()['p50_ms']:.3f} ms", flush=True)
    out = {"benchmark": "frame_resize", "machine": {"cpu": _cpu(), "cores": os.cpu_count(),
                                                      "python": platform.python_version(), "numpy": np.__version__,
                                                      "opencv": cv2.__version__,
                                                      "load_average_1_5_15min_at_start": [round(x, 2) for x in
                                                                                          os.getloadavg()],
                                                      "date": time.strftime("%Y-%m-%d")},
           "threads": "numpy and OpenCV defaults", "rows": rows}
    path = Path(__file__).resolve().parent / "results" / "frame_resize.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
