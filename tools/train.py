"""Train LLRFormer on the landmark data set of a config.

Writes OUTPUT_DIR/DATASET.DATASET/MODEL.NAME/<config stem>/ with model_best.pth and
final_state.pth (bare state dicts), checkpoint.pth (for --resume), config.yaml, train.log and
metrics.json. Example: python tools/train.py --cfg configs/llrformer_demo.yaml
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llrformer.cli import REPO_ROOT, HelpFormatter, resolve_device  # noqa: E402
from llrformer.config import load_config, run_directory  # noqa: E402
from llrformer.errors import UserError, exit_on_interrupt, run_cli, setup_logging  # noqa: E402

with exit_on_interrupt():
    from llrformer.training import TrainOptions, train

logger = logging.getLogger("train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train LLRFormer on DATASET.ROOT/TRAIN_SET, validating on TEST_SET.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--cfg",
        "--config",
        dest="config",
        type=Path,
        required=True,
        help="config YAML; its file stem names the output folder",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CHECKPOINT",
        help="continue a run from its checkpoint.pth (default: the one in the output folder)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in an output folder that contains an earlier run, replacing "
        "its files",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="total epochs (replaces TRAIN.END_EPOCH)"
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="stop after this many optimisation steps, then validate and save",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of weights, shuffling, augmentation"
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N or auto (CUDA when available); the CUDA path is untested",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging details")
    return parser


def resume_path(value: Optional[str], cfg, root: Path) -> Optional[Path]:
    """Return the checkpoint to resume from, or None for a fresh run.

    --resume without a value, TRAIN.RESUME or AUTO_RESUME use checkpoint.pth of the run
    folder; the config switches start a fresh run when there is none.
    """
    default = run_directory(cfg, root) / "checkpoint.pth"
    if value is None:
        wanted = bool(cfg.TRAIN.RESUME or cfg.AUTO_RESUME)
        return default if wanted and default.is_file() else None
    path = default if value == "auto" else Path(value)
    if not path.is_file():
        raise UserError(
            f"--resume: checkpoint {path} not found; train without --resume first, or pass "
            "the path of a checkpoint.pth"
        )
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    for name, value in (("--epochs", args.epochs), ("--max-steps", args.max_steps)):
        if value is not None and value < 1:
            raise UserError(f"{name} must be at least 1, not {value}")

    cfg = load_config(args.config)
    options = TrainOptions(
        root=REPO_ROOT,
        device=resolve_device(args.device),
        seed=args.seed,
        epochs=args.epochs,
        max_steps=args.max_steps,
        resume=resume_path(args.resume, cfg, REPO_ROOT),
        overwrite=args.overwrite,
    )
    summary = train(cfg, options)
    print(
        f"best validation MRE {summary['best_val_mre_px']:.2f} px "
        f"({summary['best_val_mre_percent_height']:.2f}% of height) at epoch "
        f"{summary['best_epoch']}; {summary['seconds']:.0f} s; run folder "
        f"{summary['run_directory']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
