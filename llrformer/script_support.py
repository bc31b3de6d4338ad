"""Options, inputs and outputs shared by the three visualization scripts.

Every script accepts the same shared options (--config, --checkpoint, --device, --image,
--annotation, --keypoints, --layers, --heads, --out-dir, --dpi, -v). Shared options that a
script does not use are still accepted, say so in --help and log a warning when given. The
scripts add their own options (--scale, --cluster), which the other scripts reject.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .cli import REPO_ROOT, add_model_arguments
from .errors import UserError
from .keypoints import keypoint_names, parse_keypoint_list

logger = logging.getLogger(__name__)

DEFAULT_OUT_DIR = REPO_ROOT / "attention_vis"
DEFAULT_IMAGE_FOLDERS = (Path("data") / "test" / "images", Path("data") / "val" / "images")
DEFAULT_DPI = 150
# Modules the figure workers import before their first figure (see figure_workers).
FIGURE_MODULES = ("llrformer.figures_outputs", "llrformer.figures_attention")
# At 400 dpi the default keypoint-to-image figure (6 layers x 4 keypoints) is about
# 3,100 x 10,600 pixels. attention_visualize.py then peaks at about 1.8 GB of memory
# (measured on the full model), and the memory grows with the square of the dpi.
MAX_DPI = 400
# An image with a side shorter than this is almost certainly not a radiograph (a thumbnail, an
# icon, a wrong file), so the scripts warn but still run on it.
MIN_IMAGE_SIDE = 32
NOT_USED = " (not used by this script)"
SCRIPT_OPTIONS = ("image", "annotation", "keypoints", "layers", "heads", "device")


def build_script_parser(
    description: str,
    used: Sequence[str],
    image_keypoints: Optional[str] = None,
) -> argparse.ArgumentParser:
    """Build the parser shared by the visualization scripts.

    `used` names the options from SCRIPT_OPTIONS that the script uses; the others are
    accepted but marked as unused in --help. `image_keypoints` is the default keypoint list
    of the script's keypoint-to-image figures, or None when it draws none.
    """
    parser = argparse.ArgumentParser(description=description)

    def note(option: str) -> str:
        return "" if option in used else NOT_USED

    add_model_arguments(parser, device_note=note("device"))
    parser.add_argument(
        "--image",
        type=Path,
        default=None,
        help="radiograph to run the model on (default: the first image of data/test/images, "
        "else of data/val/images, relative to the repository root)" + note("image"),
    )
    parser.add_argument(
        "--annotation",
        type=Path,
        default=None,
        help="LabelMe JSON with the ground-truth landmarks (default: the annotation found "
        "beside the image, if any)" + note("annotation"),
    )
    parser.add_argument(
        "--no-annotation",
        action="store_true",
        help="ignore any annotation and mark the model's predicted landmarks" + note("annotation"),
    )
    parser.add_argument(
        "--keypoints",
        default=None,
        help=keypoints_help(image_keypoints) + note("keypoints"),
    )
    parser.add_argument(
        "--layers",
        default="all",
        help="transformer layers, 0-based and comma-separated, e.g. 0,2,5, or 'all' "
        "(default: all)" + note("layers"),
    )
    parser.add_argument(
        "--heads",
        default="mean",
        help="'mean' averages the attention over all heads; 'all' or a list of 0-based heads "
        "such as 0,3 also draws each of those heads in its own figure (default: mean)"
        + note("heads"),
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"folder for the figures and tables (default: {DEFAULT_OUT_DIR})",
    )
    parser.add_argument(
        "--dpi",
        type=int,
        default=DEFAULT_DPI,
        help=f"resolution of the saved figures in dots per inch, 30 to {MAX_DPI} "
        f"(default: {DEFAULT_DPI})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log timings and details")
    parser.set_defaults(script_options_used=tuple(used))
    return parser


def keypoints_help(image_keypoints: Optional[str]) -> str:
    """Return the --keypoints help: the same meaning in every script, with its defaults."""
    text = (
        "landmarks to draw, as 0-based indices or names, comma-separated, e.g. 4,5,R_LLP. "
        "Given, the list applies to every figure and table the script writes: the rows and "
        "columns of the keypoint matrices and of keypoint_token_share.csv"
    )
    if image_keypoints is None:
        return text + " (default: all)"
    return (
        text + ", the columns of the keypoint-to-image figures and the left/right pairs of "
        f"the symmetry table (default: all in the matrices and the CSV, {image_keypoints} in "
        "the keypoint-to-image figures and the symmetry table)"
    )


def warn_unused_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Log a warning for each option the user gave that this script does not use."""
    for option in SCRIPT_OPTIONS:
        if option in args.script_options_used:
            continue
        dest = option.replace("-", "_")
        if getattr(args, dest) != parser.get_default(dest):
            logger.warning("warning: --%s is not used by this script; ignoring it", option)
    if "annotation" not in args.script_options_used and args.no_annotation:
        logger.warning("warning: --no-annotation is not used by this script; ignoring it")


def reject_conflicting_options(args: argparse.Namespace) -> None:
    """Raise UserError when --annotation and --no-annotation are both given."""
    if args.annotation is not None and args.no_annotation:
        raise UserError(
            f"--annotation {args.annotation} and --no-annotation contradict each other; "
            "give one of them"
        )


def check_dpi(dpi: int) -> int:
    """Return `dpi` if it is a usable figure resolution, else raise UserError."""
    if not 30 <= dpi <= MAX_DPI:
        raise UserError(
            f"--dpi {dpi} is out of range; use a value from 30 to {MAX_DPI}, e.g. {DEFAULT_DPI}"
        )
    return dpi


def parse_layers(text: str, num_layers: int) -> List[int]:
    """Parse --layers ("all" or "0,2,5") into sorted unique 0-based layer indices."""
    return _parse_index_list(text, num_layers, "layer", "--layers")


def parse_heads(text: str, num_heads: int) -> Optional[List[int]]:
    """Parse --heads: None for "mean", else sorted unique 0-based head indices."""
    if text.strip().lower() == "mean":
        return None
    return _parse_index_list(text, num_heads, "head", "--heads", "'mean' (the default), 'all'")


def _parse_index_list(
    text: str, count: int, noun: str, option: str, words: str = "'all'"
) -> List[int]:
    """Parse "all" or comma-separated 0-based indices; `words` lists the accepted words."""
    if text.strip().lower() == "all":
        return list(range(count))
    indices = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            index = int(item)
        except ValueError:
            raise UserError(
                f"{option} {text!r}: {item!r} is not a {noun} number; give {words} or 0-based "
                "numbers such as 0,2"
            ) from None
        if not 0 <= index < count:
            raise UserError(
                f"{option}: {noun} {index} is out of range; the model has {noun}s "
                f"0..{count - 1}; give {words} or numbers in that range"
            )
        indices.append(index)
    if not indices:
        raise UserError(f"{option} {text!r} names no {noun}; give {words} or numbers such as 0,2")
    return sorted(set(indices))


@dataclass(frozen=True)
class Selection:
    """The layers, heads and keypoints a script draws, checked against the model config.

    `heads` None means the mean over all heads. `keypoints` are those of the keypoint
    matrices and the share table, `image_keypoints` those of the keypoint-to-image figures
    and the symmetry table. Both are the --keypoints list when it is given.
    """

    layers: List[int]
    heads: Optional[List[int]]
    keypoints: List[int]
    names: List[str]
    image_keypoints: List[int]


def select(args: argparse.Namespace, cfg, image_keypoints: Optional[str] = None) -> Selection:
    """Check --layers, --heads and --keypoints against a config; raise UserError if invalid.

    Without --keypoints, the matrices get every keypoint and the keypoint-to-image figures
    get `image_keypoints` (None: every keypoint).
    """
    num_keypoints = int(cfg.MODEL.NUM_JOINTS)
    keypoints = parse_keypoints(args.keypoints, num_keypoints)
    image_text = args.keypoints if args.keypoints is not None else image_keypoints
    return Selection(
        layers=parse_layers(args.layers, int(cfg.MODEL.CROSS_SELF_ATTENTION_LAYERS)),
        heads=parse_heads(args.heads, int(cfg.MODEL.TRANSFORMER_HEADS)),
        keypoints=keypoints,
        names=keypoint_names(num_keypoints),
        image_keypoints=parse_keypoints(image_text, num_keypoints),
    )


def check_device(name: str) -> str:
    """Return --device unchanged if this machine has it, else raise UserError."""
    from .cli import resolve_device

    resolve_device(name)
    return name


def resolve_checkpoint(args: argparse.Namespace):
    """Return (config, checkpoint path) for --config and --checkpoint, searching if needed.

    The choice is not logged here: `load_model` logs it once the other options have been
    checked, so that a bad option ends the script with its error line alone.
    """
    from .checkpoint_files import resolve_config_and_checkpoint
    from .cli import DEFAULT_CONFIG

    checkpoint_logger = logging.getLogger(resolve_config_and_checkpoint.__module__)
    level = checkpoint_logger.level
    checkpoint_logger.setLevel(logging.WARNING)
    try:
        return resolve_config_and_checkpoint(
            args.config, args.checkpoint, REPO_ROOT, DEFAULT_CONFIG
        )
    finally:
        checkpoint_logger.setLevel(level)


def load_model(cfg, checkpoint: Path, device_name: str):
    """Load the checkpoint into an LLRFormer in eval mode on --device.

    The convolution weights are stored channels-last: the full model's forward pass then
    took about 25% less CPU time (PyTorch 2.13 CPU build, 2 cores shared with other jobs).
    Outputs differ from the default layout only by float32 rounding, about 3e-6 relative.
    """
    import torch

    from .checkpoint import load_model as load_checkpoint_model
    from .cli import CONFIG_DIR, resolve_device

    device = resolve_device(device_name)
    logger.info("checkpoint: %s", checkpoint)
    logger.info("config: %s", cfg.path)
    model = load_checkpoint_model(cfg, checkpoint, device=device, config_dir=CONFIG_DIR)
    return model.to(memory_format=torch.channels_last)


def parse_keypoints(text: Optional[str], num_keypoints: int) -> List[int]:
    """Parse --keypoints into indices, keeping the given order; None means every keypoint."""
    if text is None or text.strip().lower() == "all":
        return list(range(num_keypoints))
    indices = parse_keypoint_list(text, num_keypoints)
    return list(dict.fromkeys(indices))


def default_image_path(root: Path = REPO_ROOT) -> Path:
    """Return the first image of data/test/images, else of data/val/images, under `root`."""
    from .images import list_images

    searched = []
    for folder in DEFAULT_IMAGE_FOLDERS:
        directory = root / folder
        searched.append(str(directory))
        if directory.is_dir():
            try:
                return list_images(directory)[0]
            except UserError:
                continue
    raise UserError(
        f"no image given and none found in {' or '.join(searched)}; pass --image PATH, or "
        "make phantom radiographs with `python tools/make_phantoms.py --out data`"
    )


@dataclass
class ImageInput:
    """The radiograph a script runs on, and its ground-truth landmarks if annotated.

    `ground_truth` is [K, 2] (x, y) in pixels of `rgb` (NaN where a landmark is missing), or
    None without an annotation. `messages` are the (logging level, text) lines about the
    image and its annotation; `log_messages` writes them.
    """

    rgb: np.ndarray
    path: Path
    annotation_path: Optional[Path]
    ground_truth: Optional[np.ndarray]
    messages: List[Tuple[int, str]] = field(default_factory=list)

    def log_messages(self) -> None:
        """Log the lines about the image and its annotation, in the order they arose."""
        for level, text in self.messages:
            logger.log(level, "%s", text)


def resolve_image_paths(
    image: Optional[Path], annotation: Optional[Path], use_annotation: bool
) -> Tuple[Path, Optional[Path]]:
    """Return the image (default: `default_image_path`) and its annotation, or None.

    An explicit `annotation` must exist; otherwise the annotation beside the image is used
    when one is found. Raises UserError for a missing file. Nothing is read or logged.
    """
    image_path = Path(image) if image is not None else default_image_path()
    if image is not None and image_path.is_dir():
        raise UserError(
            f"--image {image_path} is a folder, not an image file; pass one image file, "
            "e.g. one of the images in that folder"
        )
    if image is not None and not image_path.is_file():
        raise UserError(f"image not found: {image_path}; pass an existing file to --image")
    if not use_annotation:
        return image_path, None
    if annotation is None:
        return image_path, _find_annotation(image_path)
    annotation_path = Path(annotation)
    if not annotation_path.is_file():
        raise UserError(
            f"annotation not found: {annotation}; pass an existing LabelMe JSON file "
            "to --annotation, or leave it out"
        )
    return image_path, annotation_path


def load_image_input(
    image_path: Path, annotation_path: Optional[Path], num_keypoints: int
) -> ImageInput:
    """Read the image and its annotation, if any, from `resolve_image_paths`.

    Nothing is logged here. The lines about both files go to `ImageInput.messages`, which
    the script logs once the checkpoint has loaded. So a bad file, or a checkpoint that does
    not fit the config, ends the script with its error line alone. Each problem the
    annotation reader found (unknown labels, missing landmarks, ...) becomes one warning.
    Annotation coordinates are mapped onto the decoded image, which a very large JPEG may
    be reduced to.
    """
    from .annotations import read_annotation
    from .images import read_image

    annotation_data = None
    if annotation_path:
        annotation_data = read_annotation(annotation_path, image_path=image_path)
    loaded = read_image(image_path)
    messages = [(logging.INFO, f"image: {image_path} ({loaded.size[0]} x {loaded.size[1]})")]
    width, height = loaded.original_size
    if min(width, height) < MIN_IMAGE_SIDE:
        messages.append(
            (
                logging.WARNING,
                f"warning: {image_path} is only {width} x {height} pixels, under "
                f"{MIN_IMAGE_SIDE} on a side, so it is unlikely to be a radiograph; check that "
                "this is the image you meant",
            )
        )

    ground_truth = None
    if annotation_data is not None:
        messages += [
            (logging.WARNING, f"warning: {line}") for line in annotation_data.report_lines()
        ]
        ground_truth = _ground_truth(annotation_data, loaded, num_keypoints, messages)
        if ground_truth is None:
            annotation_path = None
    return ImageInput(loaded.rgb, image_path, annotation_path, ground_truth, messages)


def _ground_truth(
    annotation, loaded, num_keypoints: int, messages: List[Tuple[int, str]]
) -> Optional[np.ndarray]:
    """Return the annotated landmarks [K, 2] in pixels of the decoded image, NaN if missing.

    Returns None, with a warning in `messages`, when the annotation's image size does not
    match the image.
    """
    from .annotations import image_size_mismatch

    mismatch = image_size_mismatch(annotation, loaded.original_size, loaded.exif_orientation)
    if mismatch:
        messages.append(
            (logging.WARNING, f"warning: {mismatch}; marking the model's predictions instead")
        )
        return None
    keypoints = np.asarray(annotation.keypoints, dtype=np.float64)
    ground_truth = np.full((num_keypoints, 2), np.nan)
    count = min(num_keypoints, len(keypoints))
    ground_truth[:count] = keypoints[:count] / loaded.reduction
    annotated = int(np.isfinite(ground_truth[:, 0]).sum())
    messages.append(
        (
            logging.INFO,
            f"annotation: {annotation.path} ({annotated} of {num_keypoints} landmarks)",
        )
    )
    return ground_truth


def _find_annotation(image_path: Path) -> Optional[Path]:
    from .annotations import find_annotation

    found = find_annotation(image_path)
    return Path(found) if found is not None else None


def check_out_dir(path: Path) -> Path:
    """Return --out-dir if it is a folder or can be created, else raise UserError.

    Nothing is created here: `create_out_dir` does that once there is something to write,
    so a run that fails leaves no empty folder behind.
    """
    out_dir = Path(path)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out-dir {out_dir} is a file; pass a folder")
    existing = out_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create the output folder {out_dir}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == out_dir.absolute():
            raise UserError(
                f"cannot write into the output folder {out_dir}; pass a writable --out-dir or "
                "change the folder's permissions"
            )
        raise UserError(
            f"cannot write into {existing}, so the output folder {out_dir} cannot be made; "
            "pass a writable --out-dir"
        )
    return out_dir


def create_out_dir(out_dir: Path) -> Path:
    """Create the output folder and its parents, or raise UserError."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the output folder {out_dir}: {error.strerror}") from None
    return out_dir


class StepTimer:
    """Log the duration of each step of a script at debug level, and the total at info level."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        begin = time.perf_counter()
        yield
        logger.debug("%s: %.2f s", name, time.perf_counter() - begin)

    def finish(self) -> None:
        logger.info("done in %.1f s", time.perf_counter() - self.start)


def source_line(image_path: Optional[Path], checkpoint: Path) -> str:
    """Return the "image: ... · checkpoint: ..." line that every figure carries."""
    parts = []
    if image_path is not None:
        parts.append(f"image: {Path(image_path).name}")
    parts.append(f"checkpoint: {_short_path(checkpoint)}")
    return "   ·   ".join(parts)


def _short_path(path: Path) -> str:
    """Return `path` relative to the repository root when it lies inside it."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def record_self_attention(model, rgb: np.ndarray) -> np.ndarray:
    """Run the model on an RGB image and return the keypoint rows of the self-attention.

    Returns float32 [layers, heads, K, K + P] in model token order. Only `model.encode` runs,
    not the heatmap head, whose last linear layer contains most of the model's weights (95.6 M
    of 107.5 M parameters in the published model), so those weights are never read.
    """
    import torch

    from .preprocess import prepare_input
    from .recorder import AttentionRecorder

    device = next(model.parameters()).device
    batch, _, _ = prepare_input(rgb, model.image_size)
    with torch.inference_mode():
        with AttentionRecorder(model, keypoint_rows_only=True, kinds=("self",)) as recorder:
            model.encode(batch.to(device))
    return recorder.stacked("self", batch_index=0).float().numpy()
