"""Time the three visualization scripts on the full LLRFormer and one phantom radiograph.

Each script runs as its own process, pinned to two CPU cores, as a user would start it. The
table gives the wall time (best and median of --repeat runs) and the peak resident memory
of each script with its figure workers.

Setup, not timed: the full configuration (configs/llrformer.yaml) gets deterministic weights
from make_weights.py of the reference folder, and tools/make_phantoms.py draws one test image.

    python benchmarks/bench_visualization.py [--repeat 3] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"
CORES = 2
# Budgets for one image on two cores, against about 8.0, 9.5 and 4.1 s and 1.4-1.7 GB
# peak for the published scripts.
SCRIPTS: Tuple[Tuple[str, float], ...] = (
    ("attention_vis_keypoint_attention_layers.py", 4.0),
    ("attention_visualize.py", 4.5),
    ("plot_keypoint_token_similarity.py", 2.0),
)
MEMORY_BUDGET_MB = 1200.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per script (default: 3)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="folder for the weights, the image and the figures; kept after the run "
        "(default: a temporary folder, deleted afterwards)",
    )
    return parser


def make_checkpoint(work_dir: Path) -> Path:
    """Save deterministic weights for configs/llrformer.yaml (about 430 MB) once."""
    path = work_dir / "llrformer_full.pth"
    if path.is_file():
        return path
    if not (REFERENCE_DIR / "make_weights.py").is_file():
        raise SystemExit(f"make_weights.py not found in {REFERENCE_DIR}")
    # A child process builds the model, so this process stays small. Each script is forked
    # from this process, and Linux keeps a process's peak memory from before exec in
    # ru_maxrss, so a large parent would show up as the scripts' peak.
    child = multiprocessing.get_context("spawn").Process(target=_write_weights, args=(path,))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"writing the weights {path} failed (exit status {child.exitcode})")
    return path


def _write_weights(path: Path) -> None:
    import torch

    sys.path.insert(0, str(REFERENCE_DIR))
    from make_weights import deterministic_state_dict

    from llrformer.config import load_config
    from llrformer.model import build_model

    model = build_model(load_config(REPO_ROOT / "configs" / "llrformer.yaml"), initialize=True)
    torch.save(deterministic_state_dict(model.state_dict()), path)


def make_image(work_dir: Path) -> Path:
    """Draw one phantom test radiograph with its annotation; return the image path."""
    folder = work_dir / "data"
    images = folder / "test" / "images"
    if not images.is_dir():
        command = [sys.executable, str(REPO_ROOT / "tools" / "make_phantoms.py"), "--out"]
        command += [str(folder), "--train", "0", "--val", "0", "--test", "1", "--quiet"]
        subprocess.run(command, check=True)
    return sorted(images.iterdir())[0]


def pin_to_cores() -> None:
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, available[:CORES])


def tree_rss_mb(group: int) -> float:
    """Return the summed resident memory, in MB, of every process in process group `group`."""
    total_pages = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                # The command name may contain spaces, so fields are counted after its ")".
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != group:
                continue
            with open(f"/proc/{entry.name}/statm") as handle:
                total_pages += int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while being read
    return total_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_once(command: Sequence[str]) -> Tuple[float, float, float]:
    """Run a command; return wall seconds, CPU seconds and peak resident memory in MB.

    CPU seconds (user + system) vary less than wall time when other jobs share the cores.
    The script runs in a process group of its own, and the peak memory is the larger of its
    own peak and the summed memory of the group (figure workers included), sampled every
    20 ms. The sum counts shared library pages once per process, so it errs high.
    """
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=pin_to_cores,
        start_new_session=True,
        cwd=REPO_ROOT / "visualization",
    )
    peak_tree = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not stop.wait(0.02):
            peak_tree = max(peak_tree, tree_rss_mb(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, max(peak_tree, usage.ru_maxrss / 1024.0)  # ru_maxrss is in kilobytes


def benchmark(checkpoint: Path, image: Path, out_dir: Path, repeat: int) -> Dict[str, List]:
    results: Dict[str, List] = {}
    config = REPO_ROOT / "configs" / "llrformer.yaml"
    for script, _ in SCRIPTS:
        command = [sys.executable, str(REPO_ROOT / "visualization" / script)]
        command += ["--config", str(config), "--checkpoint", str(checkpoint)]
        command += ["--image", str(image), "--out-dir", str(out_dir), "--device", "cpu"]
        results[script] = [run_once(command) for _ in range(repeat)]
    return results


def print_table(results: Dict[str, List]) -> None:
    header = (
        f"{'script':<45} {'best s':>7} {'median s':>9} {'budget s':>9} {'CPU s':>6} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for script, budget in SCRIPTS:
        walls = [wall for wall, _, _ in results[script]]
        cpu = min(cpu for _, cpu, _ in results[script])
        peak = max(memory for _, _, memory in results[script])
        print(
            f"{script:<45} {min(walls):>7.2f} {statistics.median(walls):>9.2f} "
            f"{budget:>9.1f} {cpu:>6.2f} {peak:>8.0f}"
        )
    print(f"memory budget: {MEMORY_BUDGET_MB:.0f} MB per script")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_visualization_"))
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        checkpoint = make_checkpoint(work_dir)
        image = make_image(work_dir)
        print(f"image: {image.name}; checkpoint: {checkpoint}; pinned to {CORES} cores")
        results = benchmark(checkpoint, image, work_dir / "figures", args.repeat)
        print_table(results)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
