"""Draw what LLRFormer's keypoint tokens attend to, and how symmetric left and right are.

Writes into attention_vis/ at the repository root (or --out-dir):
- cross_keypoint_attention_layers.jpg: the self-attention among keypoint tokens per layer;
- keypoint_to_image_attention_keypoints_<indices>.jpg: each chosen keypoint token's
  self-attention on the patch tokens, drawn on the radiograph (rows = layers, columns =
  keypoints);
- keypoint_to_image_cross_attention_keypoints_<indices>.jpg: the same for the
  cross-attention, the keypoint-to-patch step;
- with --heads all or a list, keypoint_to_image_[cross_]attention_keypoint_<k>_by_head.jpg;
- keypoint_token_share.csv and left_right_symmetry_keypoints_<indices>.csv.
It prints the keypoint-token share per layer and a left/right symmetry table.

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

MATRIX_NAME = "cross_keypoint_attention_layers.jpg"
SHARE_CSV_NAME = "keypoint_token_share.csv"
IMAGE_KEYPOINTS = "4,5,14,15"


def build_parser() -> argparse.ArgumentParser:
    parser = support.build_script_parser(
        "Draw keypoint-to-keypoint and keypoint-to-image attention of LLRFormer on a "
        "radiograph and print a left/right symmetry analysis.",
        used=("image", "annotation", "keypoints", "layers", "heads", "device"),
        image_keypoints=IMAGE_KEYPOINTS,
    )
    parser.add_argument(
        "--scale",
        choices=MATRIX_SCALES,
        default="shared",
        help="colour scale of the keypoint matrices: 'shared', 'layer' or 'row' "
        "(see attention_vis_keypoint_attention_layers.py --help; default: shared)",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    support.reject_conflicting_options(args)
    setup_logging(args.verbose)
    # The workers import matplotlib while this process imports torch (see figure_workers).
    with FigureWorkers(default_worker_count(2), support.FIGURE_MODULES, args.verbose) as workers:
        return run(args, parser, workers)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser, workers: FigureWorkers) -> int:
    timer = support.StepTimer()
    dpi = support.check_dpi(args.dpi)
    device = support.check_device(args.device)
    out_dir = support.check_out_dir(args.out_dir)
    cfg, checkpoint = support.resolve_checkpoint(args)
    selection = support.select(args, cfg, IMAGE_KEYPOINTS)
    image_path, annotation_path = support.resolve_image_paths(
        args.image, args.annotation, not args.no_annotation
    )
    support.warn_unused_options(args, parser)

    with timer.step("read image"):
        image = support.load_image_input(image_path, annotation_path, len(selection.names))
    with timer.step("load model"):
        model = support.load_model(cfg, checkpoint, device)
    image.log_messages()

    with timer.step("forward pass"):
        from llrformer.inference import predict

        device = next(model.parameters()).device
        prediction = predict(model, image.rgb, record=True, keypoint_rows_only=True, device=device)
    grid = model.grid
    # The weights are not needed any more: freeing them lowers the peak while drawing.
    del model
    attention = {"self": prediction.self_attention, "cross": prediction.cross_attention}
    landmarks = outputs.choose_landmarks(
        image.ground_truth, prediction.keypoints_input, prediction.letterbox
    )
    source = support.source_line(image.path, checkpoint)
    context = outputs.ImageContext(
        grid,
        prediction.letterbox,
        image.rgb,
        landmarks,
        selection.names,
        source,
        dpi,
    )

    support.create_out_dir(out_dir)
    with timer.step("figures"):
        # The slowest figures go first, so that both workers stay busy to the end.
        jobs = [
            workers.submit(
                outputs.write_image_figure,
                kind,
                attention[kind],
                selection.layers,
                selection.image_keypoints,
                context,
                out_dir,
            )
            for kind in attention
        ]
        jobs.append(
            workers.submit(
                outputs.write_matrix_figures,
                attention["self"],
                selection.layers,
                selection.heads,
                selection.keypoints,
                selection.names,
                args.scale,
                source,
                out_dir / MATRIX_NAME,
                dpi,
            )
        )
        if selection.heads is not None:
            jobs += [
                workers.submit(
                    outputs.write_head_figures,
                    {kind: attention[kind]},
                    selection.layers,
                    selection.heads,
                    selection.image_keypoints,
                    context,
                    out_dir,
                )
                for kind in attention
            ]
        outputs.report_keypoint_share(
            attention["self"],
            selection.layers,
            selection.keypoints,
            selection.names,
            out_dir / SHARE_CSV_NAME,
        )
        indices = "_".join(str(index) for index in selection.image_keypoints)
        outputs.report_symmetry(
            attention,
            selection.layers,
            selection.image_keypoints,
            grid,
            landmarks,
            selection.names,
            out_dir / f"left_right_symmetry_keypoints_{indices}.csv",
        )
        for job in jobs:
            job.result()
    timer.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
