"""Time model build, checkpoint load and forward passes of the full model; report peak memory.

Run: python benchmarks/bench_core.py  (full configs/llrformer.yaml, make_weights weights,
one 384 x 1152 input, BN folded as the scripts do). "build" is the empty (meta) model alone,
"build+load" a second build plus reading the checkpoint into it. Each measurement runs in a
fresh child process, so peak resident memory is that of loading and running the model alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))


def peak_rss_mb() -> float:
    """Return this process's peak resident memory in MB.

    VmHWM starts afresh at exec, unlike ru_maxrss, which a child inherits from its parent.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(checkpoint: str, record: bool) -> dict:
    started = time.perf_counter()
    import torch

    from llrformer.config import load_config
    from llrformer.model import build_model

    imported = time.perf_counter()
    cfg = load_config(REPO_ROOT / "configs" / "llrformer.yaml")
    build_model(cfg, initialize=False)
    built = time.perf_counter()

    from llrformer.checkpoint import load_model

    model = load_model(cfg, checkpoint, fuse_batchnorm=True)
    loaded = time.perf_counter()

    from llrformer.recorder import AttentionRecorder

    batch = torch.randn(1, 3, 1152, 384)
    forward_times = []
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            if record:
                with AttentionRecorder(model, keypoint_rows_only=True):
                    model(batch)
            else:
                model(batch)
            forward_times.append(time.perf_counter() - start)
    return {
        "import_s": imported - started,
        "build_s": built - imported,
        "build_load_s": loaded - built,
        "forward_first_s": forward_times[0],
        "forward_best_s": min(forward_times),
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--record", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.record)))
        return

    from full_weights import full_weights_path

    checkpoint = full_weights_path()
    print(f"checkpoint: {checkpoint} ({checkpoint.stat().st_size / 1e6:.0f} MB)")
    print(
        f"{'mode':<10} {'import':>7} {'build':>7} {'build+load':>11} {'fwd 1st':>8} {'fwd best':>9}"
        f" {'peak RSS':>9}"
    )
    for record in (False, True):
        command = [sys.executable, __file__, "--child", str(checkpoint)]
        output = subprocess.run(
            command + (["--record"] if record else []), check=True, capture_output=True, text=True
        ).stdout
        row = json.loads(output.strip().splitlines()[-1])
        print(
            f"{'recorded' if record else 'fused':<10} {row['import_s']:7.2f} "
            f"{row['build_s']:7.2f} {row['build_load_s']:11.2f} {row['forward_first_s']:8.2f} "
            f"{row['forward_best_s']:9.2f} {row['peak_rss_mb']:7.0f}MB"
        )
    print(f"torch threads: {row['threads']}")


if __name__ == "__main__":
    main()
