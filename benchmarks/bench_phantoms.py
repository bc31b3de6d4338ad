"""Time the phantom generator: images per second, writing JPEG and LabelMe files.

Run: python benchmarks/bench_phantoms.py [--count 300] [--workers 2]

It writes --count training phantoms into a temporary folder with write_dataset, the code
behind tools/make_phantoms.py. It prints the wall time, the CPU time of the worker
processes and images per second. Then it splits one process's time per image into body
geometry, rendering and JPEG encoding. The target is 300 images in under 20 s on two
cores. Numbers depend on the machine and on other load, so the script prints the load
average too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from llrformer.phantom_body import sample_body  # noqa: E402
from llrformer.phantom_render import (  # noqa: E402
    plan_view,
    render_radiograph,
    sample_appearance,
)
from llrformer.phantoms import JPEG_QUALITY, case_rng, write_dataset  # noqa: E402


def child_cpu_seconds() -> float:
    """Return the user + system CPU seconds of finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_dataset(count: int, workers: int) -> dict:
    """Write `count` phantoms with `workers` processes; return timings."""
    with tempfile.TemporaryDirectory() as folder:
        cpu_before = child_cpu_seconds()
        started = time.perf_counter()
        summary = write_dataset(Path(folder) / "data", {"train": count}, 0, workers)
        wall = time.perf_counter() - started
        cpu = child_cpu_seconds() - cpu_before
    return {
        "images": count,
        "workers": summary["workers"],
        "wall_s": round(wall, 2),
        "images_per_s": round(count / wall, 1),
        "worker_cpu_s": round(cpu, 2),
        "cpu_ms_per_image": round(1000 * cpu / count, 1) if workers > 1 else None,
    }


def time_stages(count: int) -> dict:
    """Return the mean milliseconds per image of each stage, in this process."""
    cv2.setNumThreads(1)
    totals = {"body": 0.0, "render": 0.0, "jpeg": 0.0}
    sample_body(case_rng(0, "val", 0))  # warm the caches (noise and texture tiles)
    render_radiograph(*_prepared(case_rng(0, "val", 0)))
    for index in range(count):
        rng = case_rng(1, "val", index)
        started = time.perf_counter()
        body = sample_body(rng)
        look = sample_appearance(rng)
        view = plan_view(body, rng)
        rendered = time.perf_counter()
        image = render_radiograph(body, view, look, rng)
        encoded = time.perf_counter()
        cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        done = time.perf_counter()
        totals["body"] += rendered - started
        totals["render"] += encoded - rendered
        totals["jpeg"] += done - encoded
    return {name: round(1000 * value / count, 1) for name, value in totals.items()}


def _prepared(rng: np.random.Generator):
    body = sample_body(rng)
    look = sample_appearance(rng)
    return body, plan_view(body, rng), look, rng


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="phantoms to write")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--stage-count", type=int, default=20, help="images for the split")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}, CPUs: {os.cpu_count()}")
    print("dataset:", json.dumps(time_dataset(args.count, args.workers)))
    print("stages, ms per image in one process:", json.dumps(time_stages(args.stage_count)))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
