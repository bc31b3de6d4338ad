"""Draw the similarity of LLRFormer's 36 learned keypoint query tokens.

Writes keypoint_token_similarity.png into attention_vis/ at the repository root (or
--out-dir): the softmax of scaled dot products of the tokens, as the published script plots
it, beside their cosine similarity. The tokens are kp_init + kp_id_emb + kp_pos of the
checkpoint. Only those three tensors are read, without importing torch, and no model is
built, so no image is needed.

Run with no arguments from the repository root or from visualization/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llrformer import script_support as support  # noqa: E402
from llrformer.checkpoint_files import read_arrays  # noqa: E402
from llrformer.errors import UserError, run_cli, setup_logging  # noqa: E402
from llrformer.figures import save_figure  # noqa: E402
from llrformer.figures_attention import token_similarity_figure  # noqa: E402
from llrformer.keypoints import keypoint_names  # noqa: E402

logger = logging.getLogger("plot_keypoint_token_similarity")

OUTPUT_NAME = "keypoint_token_similarity.png"
TOKEN_KEYS = ("transformer.kp_init", "transformer.kp_id_emb.weight", "transformer.kp_pos")


def build_parser() -> argparse.ArgumentParser:
    parser = support.build_script_parser(
        "Draw the similarity of the keypoint query tokens of an LLRFormer checkpoint.",
        used=("keypoints",),
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="order the landmarks by average-linkage hierarchical clustering on cosine "
        "distance instead of the canonical order",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    support.reject_conflicting_options(args)
    setup_logging(args.verbose)
    timer = support.StepTimer()
    dpi = support.check_dpi(args.dpi)
    out_dir = support.check_out_dir(args.out_dir)
    cfg, checkpoint = support.resolve_checkpoint(args)
    # Checked against the config now, and against the checkpoint's tokens once read.
    support.parse_keypoints(args.keypoints, int(cfg.MODEL.NUM_JOINTS))
    support.warn_unused_options(args, parser)

    with timer.step("read tokens"):
        logger.info("checkpoint: %s", checkpoint)
        tensors = read_arrays(checkpoint, TOKEN_KEYS)
        init, identity, position = (tensors[key].astype(np.float64) for key in TOKEN_KEYS)
        if not init.shape[1:] == identity.shape == position.shape[1:]:
            raise UserError(
                f"checkpoint {checkpoint}: the keypoint token tensors do not fit together "
                f"({', '.join(f'{key} {tuple(tensors[key].shape)}' for key in TOKEN_KEYS)})"
            )
        tokens = init[0] + identity + position[0]
        expected = (int(cfg.MODEL.NUM_JOINTS), int(cfg.MODEL.DIM))
        if tokens.shape != expected:
            raise UserError(
                f"checkpoint {checkpoint} does not fit config {cfg.path}: its keypoint tokens "
                f"are {tokens.shape[0]} x {tokens.shape[1]}, the config's NUM_JOINTS x DIM are "
                f"{expected[0]} x {expected[1]}; pass the config the checkpoint was trained with"
            )
    names = keypoint_names(len(tokens))
    keypoints = support.parse_keypoints(args.keypoints, len(tokens))

    with timer.step("figure"):
        layout = token_similarity_figure(
            tokens,
            keypoints,
            names,
            args.cluster,
            support.source_line(None, checkpoint),
            dpi,
        )
        target = support.create_out_dir(out_dir) / OUTPUT_NAME
        save_figure(layout, target)
    logger.info("wrote %s", target)
    timer.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
