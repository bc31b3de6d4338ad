"""Draw the keypoint-to-keypoint self-attention of every transformer layer.

Writes cross_keypoint_attention_layers.png into attention_vis/ at the repository root (or
--out-dir): one panel per layer with the K x K block of the self-attention of the keypoint
tokens, averaged over heads. With --heads all or a list, it also writes
cross_keypoint_attention_layers_head<N>.png per head. It prints, per layer, how much of each
keypoint token's attention goes to keypoint tokens rather than patch tokens, and writes that
per keypoint to keypoint_token_share.csv.

Run with no arguments from the repository root or from visualization/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llrformer import figures_outputs as outputs  # noqa: E402
from llrformer import script_support as support  # noqa: E402
from llrformer.attention_maps import MATRIX_SCALES  # noqa: E402
from llrformer.errors import run_cli, setup_logging  # noqa: E402
from llrformer.figure_workers import FigureWorkers, default_worker_count  # noqa: E402

OUTPUT_NAME = "cross_keypoint_attention_layers.png"
SHARE_CSV_NAME = "keypoint_token_share.csv"


def build_parser() -> argparse.ArgumentParser:
    parser = support.build_script_parser(
        "Draw the self-attention among keypoint tokens for every transformer layer.",
        used=("image", "keypoints", "layers", "heads", "device"),
    )
    parser.add_argument(
        "--scale",
        choices=MATRIX_SCALES,
        default="shared",
        help="colour scale: 'shared' = attention probabilities on one scale for all layers; "
        "'layer' = each layer divided by its maximum; 'row' = each row rescaled to sum to 1 "
        "over the keypoint tokens (default: shared)",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    support.reject_conflicting_options(args)
    setup_logging(args.verbose)
    # The worker imports matplotlib while this process imports torch (see figure_workers).
    with FigureWorkers(default_worker_count(1), support.FIGURE_MODULES, args.verbose) as workers:
        return run(args, parser, workers)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser, workers: FigureWorkers) -> int:
    timer = support.StepTimer()
    dpi = support.check_dpi(args.dpi)
    device = support.check_device(args.device)
    out_dir = support.check_out_dir(args.out_dir)
    cfg, checkpoint = support.resolve_checkpoint(args)
    selection = support.select(args, cfg)
    image_path, _ = support.resolve_image_paths(args.image, None, False)
    support.warn_unused_options(args, parser)

    with timer.step("read image"):
        image = support.load_image_input(image_path, None, len(selection.names))
    with timer.step("load model"):
        model = support.load_model(cfg, checkpoint, device)
    image.log_messages()

    with timer.step("forward pass"):
        self_rows = support.record_self_attention(model, image.rgb)
    # The weights are not needed any more: freeing them lowers the peak while drawing.
    del model

    support.create_out_dir(out_dir)
    with timer.step("figures"):
        job = workers.submit(
            outputs.write_matrix_figures,
            self_rows,
            selection.layers,
            selection.heads,
            selection.keypoints,
            selection.names,
            args.scale,
            support.source_line(image.path, checkpoint),
            out_dir / OUTPUT_NAME,
            dpi,
        )
        outputs.report_keypoint_share(
            self_rows,
            selection.layers,
            selection.keypoints,
            selection.names,
            out_dir / SHARE_CSV_NAME,
        )
        job.result()
    timer.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
