"""Train the demo configuration on phantoms, evaluate it, and print time and accuracy.

Run: python benchmarks/bench_training.py  (generates phantoms with tools/make_phantoms.py
into a temporary folder unless --data names an existing data folder, then runs
tools/train.py and tools/evaluate.py --split test as child processes). The demo targets are
training in at most 240 s and, on the test split, a mean radial error under 1.5% of the
letterboxed input height with at least 90% of landmarks within 2% of that height.
The user's data/ and output/ folders are never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "configs" / "llrformer_demo.yaml"
TRAINING_SECONDS_TARGET = 240.0
MRE_PERCENT_TARGET = 1.5
PCK_2PCT_TARGET = 0.90


def run(command: list, label: str) -> float:
    """Run a child process, stream its output, and return its wall-clock seconds."""
    print(f"$ {' '.join(map(str, command))}", flush=True)
    started = time.perf_counter()
    result = subprocess.run([str(part) for part in command], cwd=REPO_ROOT)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{label} failed with exit status {result.returncode}")
    return seconds


def make_phantoms(folder: Path, counts: dict, seed: int) -> float:
    command = [sys.executable, REPO_ROOT / "tools" / "make_phantoms.py", "--out", folder]
    for split, count in counts.items():
        command += [f"--{split}", str(count)]
    return run(command + ["--seed", str(seed)], "make_phantoms.py")


def write_config(work: Path, data: Path, epochs: int = None) -> Path:
    """Copy the demo config with DATASET.ROOT and OUTPUT_DIR pointing into `work`."""
    values = yaml.safe_load(DEMO_CONFIG.read_text())
    values.setdefault("DATASET", {})["ROOT"] = str(data)
    values["OUTPUT_DIR"] = str(work / "output")
    if epochs is not None:
        values.setdefault("TRAIN", {})["END_EPOCH"] = epochs
    path = work / DEMO_CONFIG.name
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="existing data folder to use")
    parser.add_argument("--train", type=int, default=300, help="training phantoms to generate")
    parser.add_argument("--val", type=int, default=40, help="validation phantoms to generate")
    parser.add_argument("--test", type=int, default=60, help="test phantoms to generate")
    parser.add_argument("--seed", type=int, default=0, help="phantom and training seed")
    parser.add_argument("--epochs", type=int, default=None, help="replace TRAIN.END_EPOCH")
    parser.add_argument("--work", type=Path, default=None, help="keep files in this folder")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_training_"))
    work.mkdir(parents=True, exist_ok=True)
    data = args.data
    phantom_seconds = None
    if data is None:
        data = work / "data"
        counts = {"train": args.train, "val": args.val, "test": args.test}
        phantom_seconds = make_phantoms(data, counts, args.seed)
    config = write_config(work, data.resolve(), args.epochs)

    train_seconds = run(
        [sys.executable, REPO_ROOT / "tools" / "train.py", "--cfg", config, "--device", "cpu",
         "--seed", str(args.seed), "--overwrite"],
        "train.py",
    )  # fmt: skip
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    run_dir = work / "output" / "MyKeypointDataset" / "llrformer" / config.stem
    history = json.loads((run_dir / "metrics.json").read_text())
    evaluate_seconds = run(
        [sys.executable, REPO_ROOT / "tools" / "evaluate.py", "--cfg", config,
         "--checkpoint", run_dir / "model_best.pth", "--split", "test", "--device", "cpu"],
        "evaluate.py",
    )  # fmt: skip
    summary = json.loads((run_dir / "eval_test" / "summary.json").read_text())

    overall = summary["overall"]
    pck_2pct = next(r for r in overall["pck"] if abs(r["fraction_of_height"] - 0.02) < 1e-9)
    epoch_seconds = sum(record["seconds"] for record in history["history"])
    mre_percent = 100 * overall["nme"]
    print()
    print(f"machine: {os.cpu_count()} CPUs, torch threads default")
    if phantom_seconds is not None:
        print(f"phantoms generated in {phantom_seconds:.1f} s")
    print(
        f"training wall time (process): {train_seconds:.1f} s; epochs alone "
        f"{epoch_seconds:.1f} s; {history['epochs_trained']} epochs, {history['steps']} steps"
    )
    print(f"peak resident memory of the largest child: {peak_mb:.0f} MB")
    print(f"evaluation wall time: {evaluate_seconds:.1f} s for {summary['images']} test images")
    mm = "unknown" if overall["mre_mm"] is None else f"{overall['mre_mm']:.2f}"
    print(
        f"test MRE: {overall['mre_input_px']:.2f} input px = {mre_percent:.2f}% of height; "
        f"{overall['mre_original_px']:.1f} original px; {mm} mm"
    )
    print(f"test {pck_2pct['label']}: {100 * pck_2pct['value']:.1f}%")
    print(f"work folder: {work}")
    checks = {
        f"training <= {TRAINING_SECONDS_TARGET:.0f} s": train_seconds <= TRAINING_SECONDS_TARGET,
        f"MRE < {MRE_PERCENT_TARGET}% of height": mre_percent < MRE_PERCENT_TARGET,
        f"PCK@2% >= {100 * PCK_2PCT_TARGET:.0f}%": pck_2pct["value"] >= PCK_2PCT_TARGET,
    }
    for name, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
