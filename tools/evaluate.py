"""Evaluate an LLRFormer checkpoint on a data split and write error tables and a bar plot.

Reports mean radial error in letterboxed input pixels, original pixels and millimetres (where
the pixel spacing is known), NME, PCK at fractions of the input height, the PCK AUC, and
tables per anatomical region and per landmark. Writes per_landmark.csv, per_region.csv,
per_image.csv, summary.json and errors_by_landmark.png into eval_<split>/ beside the run.
Example: python tools/evaluate.py --cfg configs/llrformer_demo.yaml --split test
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from llrformer.checkpoint_files import resolve_config_and_checkpoint  # noqa: E402
from llrformer.cli import (  # noqa: E402
    CONFIG_DIR,
    DEFAULT_CONFIG,
    REPO_ROOT,
    HelpFormatter,
    add_model_arguments,
    resolve_device,
)
from llrformer.config import resolve_repo_path, run_directory  # noqa: E402
from llrformer.errors import UserError, exit_on_interrupt, run_cli, setup_logging  # noqa: E402
from llrformer.fileio import write_text_atomic  # noqa: E402
from llrformer.metrics import (  # noqa: E402
    build_report,
    compute_errors,
    format_table,
    per_image_rows,
    plot_errors_by_landmark,
    write_csv,
)
from llrformer.script_support import check_out_dir  # noqa: E402

with exit_on_interrupt():
    from llrformer.checkpoint import load_model
    from llrformer.data import load_split
    from llrformer.training import predict_samples

logger = logging.getLogger("evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Evaluate an LLRFormer checkpoint on DATASET.ROOT/<split>.",
        formatter_class=HelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--split", default="test", help="data split folder under DATASET.ROOT (train, val, test)"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="output folder (default: eval_<split>/ beside the checkpoint when it sits in a "
        "training run folder, else in OUTPUT_DIR/.../<config stem>/)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per forward pass (default: "
        "TEST.BATCH_SIZE_PER_GPU)"
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging details")
    return parser


def output_folder(args: argparse.Namespace, cfg, checkpoint: Path) -> Path:
    """Choose where the evaluation files go (see --out-dir)."""
    if args.out_dir is not None:
        return args.out_dir
    if (checkpoint.parent / "config.yaml").is_file():
        return checkpoint.parent / f"eval_{args.split}"
    return run_directory(cfg, REPO_ROOT) / f"eval_{args.split}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {args.batch_size}")

    cfg, checkpoint = resolve_config_and_checkpoint(
        args.config, args.checkpoint, REPO_ROOT, DEFAULT_CONFIG
    )
    device = resolve_device(args.device)
    # The output folder and the checkpoint are checked first, because reading the split is slow.
    out_dir = check_out_dir(output_folder(args, cfg, checkpoint))
    model = load_model(cfg, checkpoint, device=device, config_dir=CONFIG_DIR, fuse_batchnorm=True)
    data_root = resolve_repo_path(cfg.DATASET.ROOT or "data", REPO_ROOT)
    samples = load_split(cfg, data_root, args.split)

    batch_size = args.batch_size or int(cfg.TEST.BATCH_SIZE_PER_GPU)
    predicted = predict_samples(model, samples, batch_size, device, progress=True)
    input_height = int(cfg.MODEL.IMAGE_SIZE[1])
    errors = compute_errors(
        predicted,
        np.stack([s.keypoints for s in samples]),
        np.stack([s.keypoints_original for s in samples]),
        [s.letterbox for s in samples],
        [s.reduction for s in samples],
        [s.pixel_spacing_mm for s in samples],
        input_height,
        image_names=[s.image_path.name for s in samples],
    )
    fractions = [float(f) for f in cfg.EVALUATION.PCK_THRESHOLDS] or [0.01, 0.02, 0.05]
    context = {
        "split": args.split,
        "data": str(data_root / args.split),
        "checkpoint": str(checkpoint),
        "config": str(cfg.get("path")),
        "input_size": list(cfg.MODEL.IMAGE_SIZE),
    }
    report = build_report(errors, fractions, context)

    # The slow plot comes first. A Ctrl-C while it is drawn then leaves the earlier files as
    # they were. Only the few milliseconds of the table writes after it can leave a mixed set.
    title = (
        f"Mean radial error per landmark: {args.split} split, {len(samples)} images, "
        f"{checkpoint.parent.name}/{checkpoint.name}"
    )
    plot_errors_by_landmark(report, errors, out_dir / "errors_by_landmark.png", title)
    write_csv(report["landmarks"], out_dir / "per_landmark.csv")
    write_csv(report["regions"], out_dir / "per_region.csv")
    write_csv(per_image_rows(errors), out_dir / "per_image.csv")
    write_text_atomic(out_dir / "summary.json", json.dumps(report, indent=1) + "\n")

    print(format_table(report))
    print(f"wrote {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
