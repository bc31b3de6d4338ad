"""Export LLRFormer's heatmaps, attention and decoded keypoints for images as .npz files.

Each file holds, for one image: letterboxed_rgb [H, W, 3] uint8, heatmaps [K, Hh, Wh],
cross_attention [layers, heads, K, P], self_attention_keypoint_rows [layers, heads, K, K + P],
patch_order [P, 2] (row, column of each patch token), vis_pos [P, dim], keypoint_tokens
[K, dim], keypoints_input and keypoints_image [K, 2] (x, y in letterboxed and original pixels).
Attention is in the model's token order: keypoint tokens first, then patches in zigzag order.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from llrformer.cli import HelpFormatter, add_model_arguments, load_model_from_args  # noqa: E402
from llrformer.errors import UserError, exit_on_interrupt, run_cli, setup_logging  # noqa: E402
from llrformer.fileio import atomic_path  # noqa: E402
from llrformer.images import IMAGE_SUFFIXES, list_images, read_image  # noqa: E402

with exit_on_interrupt():
    from llrformer.inference import predict

logger = logging.getLogger("export_attention")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Export heatmaps, attention and keypoints of LLRFormer as .npz files.",
        formatter_class=HelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--image",
        type=Path,
        nargs="+",
        required=True,
        help="an image file, several files, or a folder of images",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output .npz file for one image; a folder (one <stem>.npz per "
        "image) for several images or a folder of images",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging details")
    return parser


def collect_images(arguments: Sequence[Path]) -> List[Path]:
    """Expand folders into their image files and check that every file exists."""
    images: List[Path] = []
    for path in arguments:
        if path.is_dir():
            images.extend(list_images(path))
        elif path.is_file():
            images.append(path)
        else:
            raise UserError(f"image not found: {path}")
    stems = [image.stem for image in images]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise UserError(
            f"several images share the name {duplicates[0]!r}, so their .npz files "
            "would overwrite each other; export them in separate runs"
        )
    return images


def output_paths(images: Sequence[Path], out: Path, single_input: bool) -> List[Path]:
    """Return one output path per image: `out` itself for one image file, else out/<stem>.npz."""
    if single_input and len(images) == 1 and out.suffix == ".npz":
        return [out]
    if out.suffix == ".npz":
        raise UserError(
            f"--out {out} is a .npz file, but {len(images)} images were given; "
            "pass a folder as --out"
        )
    return [out / f"{image.stem}.npz" for image in images]


def export_one(model, image_path: Path, out_path: Path) -> None:
    """Run the model on one image and write its arrays to `out_path`."""
    device = next(model.parameters()).device
    loaded = read_image(image_path)
    prediction = predict(model, loaded.rgb, record=True, keypoint_rows_only=True, device=device)
    transformer = model.transformer
    arrays = {
        "letterboxed_rgb": prediction.letterboxed_rgb,
        "heatmaps": prediction.heatmaps.astype(np.float32),
        "cross_attention": prediction.cross_attention.astype(np.float32),
        "self_attention_keypoint_rows": prediction.self_attention.astype(np.float32),
        "patch_order": model.grid.order,
        "vis_pos": transformer.vis_pos[0].detach().cpu().numpy(),
        "keypoint_tokens": transformer.initial_keypoint_tokens()[0].detach().cpu().numpy(),
        "keypoints_input": prediction.keypoints_input,
        "keypoints_image": prediction.keypoints_image * loaded.reduction,
    }
    with atomic_path(out_path) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    images = collect_images(args.image)
    if not images:
        raise UserError(
            f"no images with suffixes {', '.join(IMAGE_SUFFIXES)} in "
            f"{' '.join(map(str, args.image))}"
        )
    single_input = len(args.image) == 1 and args.image[0].is_file()
    outputs = output_paths(images, args.out, single_input)

    _, _, model = load_model_from_args(args)
    if len(images) == 1:
        export_one(model, images[0], outputs[0])
        logger.info("wrote %s", outputs[0])
        return 0

    # With several images, an unreadable one is reported and skipped, and the rest exported.
    failed: List[Path] = []
    for image_path, out_path in tqdm(list(zip(images, outputs)), desc="export", unit="image"):
        try:
            export_one(model, image_path, out_path)
        except UserError as error:
            logger.error("skipped %s: %s", image_path, error)
            failed.append(image_path)
            continue
        logger.debug("wrote %s", out_path)
    written = len(images) - len(failed)
    logger.info("wrote %d of %d .npz files into %s", written, len(images), args.out)
    if failed:
        raise UserError(
            f"{len(failed)} of {len(images)} images could not be exported (first: "
            f"{failed[0]}); fix or remove them and run again"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
