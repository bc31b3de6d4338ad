"""Files and printed tables of the visualization scripts: figures, shares and symmetry.

Every file is written atomically; the functions log each path they write. matplotlib is
imported only by the functions that draw, so a script's main process can prepare the
figures without it and leave the drawing to figure workers (`figure_workers`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .attention_maps import (
    SYMMETRY_EXPLANATION,
    average_heads,
    format_share_table,
    format_symmetry_table,
    keypoint_share,
    patch_part,
    share_csv,
    symmetry_csv,
    symmetry_table,
)
from .fileio import write_text_atomic

if TYPE_CHECKING:
    from .figures_overlay import LandmarkMarker
    from .patch_grid import PatchGrid
    from .preprocess import Letterbox

logger = logging.getLogger(__name__)

GROUND_TRUTH = "ground truth"
PREDICTION = "prediction"


def report_keypoint_share(
    self_rows: np.ndarray,
    layers: Sequence[int],
    keypoints: Sequence[int],
    names: Sequence[str],
    csv_path: Path,
) -> None:
    """Print per layer the share of keypoint attention on keypoint tokens; write it as CSV.

    `self_rows` is [layers, heads, K, K + P]; the share is averaged over all heads.
    """
    num_keypoints = self_rows.shape[2]
    shares = keypoint_share(average_heads(self_rows[list(layers)]), num_keypoints)
    shares = shares[:, list(keypoints)]
    print(
        "Share of each keypoint token's self-attention that goes to keypoint tokens "
        "(the rest goes to patch tokens), mean of all heads:"
    )
    print(format_share_table(shares, layers, keypoints, names))
    write_text_atomic(csv_path, share_csv(shares, layers, keypoints, names))
    logger.info("wrote %s", csv_path)


def head_suffixed(path: Path, head: int) -> Path:
    """Return `path` with "_head<N>" before its suffix."""
    return path.with_name(f"{path.stem}_head{head}{path.suffix}")


def write_matrix_figures(
    self_rows: np.ndarray,
    layers: Sequence[int],
    heads: Optional[Sequence[int]],
    keypoints: Sequence[int],
    names: Sequence[str],
    scale_mode: str,
    source: str,
    path: Path,
    dpi: int,
) -> List[Path]:
    """Write the keypoint matrix figure averaged over all heads, plus one per chosen head."""
    from .figures import save_figure
    from .figures_attention import keypoint_matrix_figure

    written = []
    selections = [(None, path)] + [([head], head_suffixed(path, head)) for head in heads or []]
    for selection, target in selections:
        figure = keypoint_matrix_figure(
            self_rows, layers, selection, keypoints, names, scale_mode, source, dpi
        )
        save_figure(figure, target)
        logger.info("wrote %s", target)
        written.append(target)
    return written


@dataclass(frozen=True)
class Landmarks:
    """Landmark positions in letterboxed input pixels [K, 2] and the source of each.

    `predicted` [K, 2] keeps the model's predictions also where `positions` contains the
    ground truth. `annotated` is False when no annotation was read.
    """

    positions: np.ndarray
    sources: List[str]
    predicted: np.ndarray
    annotated: bool = False

    def note(self, names: Sequence[str], drawn: Optional[Sequence[int]] = None) -> str:
        """Return a sentence for the figures when the ground truth is partial, else "".

        `drawn` are the landmarks a figure marks (default: all). The sentence counts only
        those, so it is "" when all of them are annotated.
        """
        drawn = range(len(self.sources)) if drawn is None else list(drawn)
        missing = [names[index] for index in drawn if self.sources[index] != GROUND_TRUTH]
        if not self.annotated or not missing:
            return ""
        count = len(drawn) - len(missing)
        listed = ", ".join(missing) if len(missing) <= 6 else f"{', '.join(missing[:6])}, ..."
        if len(drawn) == len(self.sources):
            counted = f"{count} of {len(drawn)} landmarks annotated"
        else:
            counted = f"{count} of the {len(drawn)} landmarks drawn are annotated"
        return f"Ground truth is partial: {counted}; the prediction marks the others ({listed})."


def choose_landmarks(
    ground_truth_rgb: Optional[np.ndarray], predicted_input: np.ndarray, letterbox: Letterbox
) -> Landmarks:
    """Take each landmark from the ground truth when annotated, else from the prediction.

    `ground_truth_rgb` is [K, 2] in pixels of the image the model read (NaN where missing),
    `predicted_input` [K, 2] in letterboxed input pixels.
    """
    positions = np.array(predicted_input, dtype=np.float64)
    sources = [PREDICTION] * len(positions)
    if ground_truth_rgb is not None:
        annotated = letterbox.to_input(ground_truth_rgb)
        for index in np.flatnonzero(np.isfinite(annotated).all(axis=1)):
            positions[index] = annotated[index]
            sources[index] = GROUND_TRUTH
    predicted = np.array(predicted_input, dtype=np.float64)
    return Landmarks(positions, sources, predicted, annotated=ground_truth_rgb is not None)


def marker_for(landmarks: Landmarks, index: int, letterbox: Letterbox) -> LandmarkMarker:
    """Return the marker of a landmark in pixels of the image the model read."""
    from .figures_overlay import LandmarkMarker

    x, y = letterbox.to_original(landmarks.positions[index])
    return LandmarkMarker(float(x), float(y), landmarks.sources[index])


def landmark_line(context: ImageContext, keypoints: Sequence[int]) -> str:
    """Return the partial ground-truth sentence of a figure marking `keypoints`, or ""."""
    note = context.landmarks.note(context.names, keypoints)
    return note + "\n" if note else ""


def image_figure_path(out_dir: Path, kind: str, keypoints: Sequence[int]) -> Path:
    """Return the file of a keypoint-to-image figure, naming the chosen keypoint indices."""
    middle = "attention" if kind == "self" else "cross_attention"
    indices = "_".join(str(index) for index in keypoints)
    return out_dir / f"keypoint_to_image_{middle}_keypoints_{indices}.jpg"


def head_figure_path(out_dir: Path, kind: str, keypoint: int) -> Path:
    """Return the file of a per-head keypoint-to-image figure of one keypoint."""
    middle = "attention" if kind == "self" else "cross_attention"
    return out_dir / f"keypoint_to_image_{middle}_keypoint_{keypoint}_by_head.jpg"


def patch_attention(
    attention: Dict[str, np.ndarray], num_keypoints: int, heads: Optional[Sequence[int]]
) -> Dict[str, np.ndarray]:
    """Return attention over patch tokens per kind, [layers, K, P], averaged over `heads`.

    `attention` maps "self" to keypoint rows [layers, heads, K, K + P] and "cross" to
    [layers, heads, K, P]; `heads` None averages all heads.
    """
    result = {}
    for kind, values in attention.items():
        averaged = average_heads(values, heads)
        result[kind] = patch_part(averaged, num_keypoints) if kind == "self" else averaged
    return result


@dataclass(frozen=True)
class ImageContext:
    """Inputs shared by every keypoint-to-image figure of one run."""

    grid: PatchGrid
    letterbox: Letterbox
    image_rgb: np.ndarray
    landmarks: Landmarks
    names: Sequence[str]
    source_line: str
    dpi: int


def save_image_figure(
    kind: str,
    columns: Sequence,
    layers: Sequence[int],
    keypoints: Sequence[int],
    heading: str,
    context: ImageContext,
    target: Path,
) -> None:
    """Draw a keypoint-to-image figure of `columns` (rows = `layers`) and write it to `target`.

    `keypoints` are the landmarks the columns mark.
    """
    from .figures import save_figure
    from .figures_attention import image_attention_figure, layer_labels

    figure = image_attention_figure(
        kind,
        columns,
        layer_labels(layers),
        context.grid,
        context.letterbox,
        context.image_rgb,
        heading,
        context.source_line,
        context.dpi,
        landmark_line(context, keypoints),
    )
    save_figure(figure, target)
    logger.info("wrote %s", target)


def write_image_figures(
    attention: Dict[str, np.ndarray],
    layers: Sequence[int],
    keypoints: Sequence[int],
    context: ImageContext,
    out_dir: Path,
) -> List[Path]:
    """Write one keypoint-to-image figure per attention kind, averaged over all heads.

    Rows are `layers`, columns `keypoints`.
    """
    return [
        write_image_figure(kind, attention[kind], layers, keypoints, context, out_dir)
        for kind in attention
    ]


def write_image_figure(
    kind: str,
    values: np.ndarray,
    layers: Sequence[int],
    keypoints: Sequence[int],
    context: ImageContext,
    out_dir: Path,
) -> Path:
    """Write the keypoint-to-image figure of one attention kind, averaged over all heads.

    `values` is the recorded attention of that kind: keypoint rows [layers, heads, K, K + P]
    for "self", [layers, heads, K, P] for "cross".
    """
    from .figures_attention import ImageColumn, heads_text

    num_heads, num_keypoints = values.shape[1], values.shape[2]
    averaged = average_heads(values)
    shares = keypoint_share(averaged, num_keypoints) if kind == "self" else None
    patch_values = patch_part(averaged, num_keypoints) if kind == "self" else averaged
    columns = [
        ImageColumn(
            label=f"{index} {context.names[index]}",
            patch_values=patch_values[list(layers), index],
            keypoint_share=shares[list(layers), index] if shares is not None else None,
            marker=marker_for(context.landmarks, index, context.letterbox),
        )
        for index in keypoints
    ]
    target = image_figure_path(out_dir, kind, keypoints)
    heading = heads_text(None, num_heads)
    save_image_figure(kind, columns, layers, keypoints, heading, context, target)
    return target


def write_head_figures(
    attention: Dict[str, np.ndarray],
    layers: Sequence[int],
    heads: Sequence[int],
    keypoints: Sequence[int],
    context: ImageContext,
    out_dir: Path,
) -> List[Path]:
    """Write, per attention kind and keypoint, a figure with rows = layers, columns = heads."""
    from .figures_attention import ImageColumn

    num_keypoints = next(iter(attention.values())).shape[2]
    written = []
    for kind, values in attention.items():
        for index in keypoints:
            columns = []
            for head in heads:
                head_values = values[list(layers), head, index]
                share = None
                if kind == "self":
                    share = head_values[:, :num_keypoints].sum(axis=-1)
                    head_values = head_values[:, num_keypoints:]
                marker = marker_for(context.landmarks, index, context.letterbox)
                columns.append(ImageColumn(f"head {head}", head_values, share, marker))
            target = head_figure_path(out_dir, kind, index)
            heading = f"keypoint {index} {context.names[index]}, one column per head"
            save_image_figure(kind, columns, layers, [index], heading, context, target)
            written.append(target)
    return written


def left_right_pairs(keypoints: Sequence[int], num_keypoints: int) -> List[Tuple[int, int]]:
    """Return the (right, left) pairs (2i, 2i + 1) that the chosen keypoints belong to."""
    pairs = []
    for index in keypoints:
        pair = (index - index % 2, index - index % 2 + 1)
        if pair[1] < num_keypoints and pair not in pairs:
            pairs.append(pair)
    return pairs


def report_symmetry(
    attention: Dict[str, np.ndarray],
    layers: Sequence[int],
    keypoints: Sequence[int],
    grid: PatchGrid,
    landmarks: Landmarks,
    names: Sequence[str],
    csv_path: Path,
) -> None:
    """Print the left/right symmetry table of the chosen pairs and write it as CSV.

    Attention is averaged over all heads. The midline of a pair is halfway between its two
    landmarks; it uses the ground truth only when both are annotated.
    """
    num_keypoints = attention["self"].shape[2]
    pairs = left_right_pairs(keypoints, num_keypoints)
    midlines = {}
    for right, left in pairs:
        if landmarks.sources[right] == landmarks.sources[left] == GROUND_TRUTH:
            source, positions = GROUND_TRUTH, landmarks.positions
        else:
            source, positions = PREDICTION, landmarks.predicted
        midline = (positions[right, 0] + positions[left, 0]) / 2.0
        midlines[(right, left)] = (float(midline), source)
    rows = symmetry_table(
        grid, patch_attention(attention, num_keypoints, None), pairs, layers, midlines
    )
    print()
    print(
        "Left/right symmetry (attention over patch tokens, mean of all heads); "
        "midline x in letterboxed input pixels:"
    )
    for (right, left), (midline, source) in midlines.items():
        print(f"  {names[right]} / {names[left]}: midline x = {midline:.1f} from the {source}")
    print(format_symmetry_table(rows, names))
    print(SYMMETRY_EXPLANATION)
    write_text_atomic(csv_path, symmetry_csv(rows, names))
    logger.info("wrote %s", csv_path)
