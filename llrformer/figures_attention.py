"""The three kinds of attention figure, assembled from model outputs.

- keypoint matrices: the keypoint-to-keypoint block of the self-attention, one panel per layer;
- keypoint-to-image maps: a keypoint token's attention over the patch tokens drawn on the
  radiograph, rows = layers, columns = keypoints (or heads);
- token similarity: the similarity of the learned keypoint query tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.colors import LogNorm

from .attention_maps import (
    MATRIX_SCALES,
    MIN_OVERLAY_TOP,
    average_heads,
    cluster_order,
    keypoint_block,
    keypoint_share,
    normalize_block_rows,
    overlay_levels,
    overlay_top,
    patch_cells,
    token_similarity,
    uniform_multiples,
    visible_patches,
)
from .figures import MatrixScale, PixelLayout, draw_matrix_panels
from .figures_overlay import BlockMap, LandmarkMarker, OverlayScale, draw_image_panels

if TYPE_CHECKING:
    from .patch_grid import PatchGrid
    from .preprocess import Letterbox

MATRIX_CMAP = "viridis"


def heads_text(heads: Optional[Sequence[int]], num_heads: int) -> str:
    """Describe a head selection for titles: "mean of 8 heads" or "head 3"."""
    if heads is None:
        return f"mean of {num_heads} heads"
    if len(heads) == 1:
        return f"head {heads[0]}"
    return "mean of heads " + ",".join(str(head) for head in heads)


def matrix_scale_values(
    blocks: np.ndarray, keypoints: Sequence[int], mode: str
) -> Tuple[np.ndarray, MatrixScale]:
    """Apply a --scale mode to keypoint blocks [layers, K, K] and keep the chosen keypoints.

    Returns the values [layers, n, n] for the n chosen keypoints and their colour scale.

    - "shared": attention probabilities on one scale for all layers.
    - "layer": each layer divided by its own maximum.
    - "row": each row rescaled to sum to 1 over all K keypoint tokens.
    """
    index = np.ix_(range(len(blocks)), list(keypoints), list(keypoints))
    if mode == "shared":
        values = blocks[index]
        label = "attention probability (over all tokens)\nscale shared by all layers"
    elif mode == "layer":
        values = blocks[index]
        maxima = values.reshape(len(values), -1).max(axis=1)
        values = values / np.where(maxima > 0, maxima, 1.0)[:, None, None]
        label = "attention / maximum of its layer"
    elif mode == "row":
        values = normalize_block_rows(blocks)[index]
        label = "share of the row's attention on keypoint tokens\nscale shared by all layers"
    else:
        raise ValueError(f"unknown scale mode {mode!r}; choose from {MATRIX_SCALES}")
    vmax = float(values.max()) if values.size and values.max() > 0 else 1.0
    return values, MatrixScale(0.0, vmax, MATRIX_CMAP, label)


def keypoint_matrix_figure(
    self_rows: np.ndarray,
    layers: Sequence[int],
    heads: Optional[Sequence[int]],
    keypoints: Sequence[int],
    names: Sequence[str],
    scale_mode: str,
    source_line: str,
    dpi: int,
) -> PixelLayout:
    """Draw the keypoint-to-keypoint self-attention of each layer in `layers`.

    `self_rows` is [layers, heads, K, K + P]. `heads` None averages all heads. Panel titles
    give each layer's mean share of keypoint attention that goes to keypoint tokens.
    """
    num_keypoints = self_rows.shape[2]
    selected = average_heads(self_rows[list(layers)], heads)
    shares = keypoint_share(selected, num_keypoints)[:, list(keypoints)]
    values, scale = matrix_scale_values(
        keypoint_block(selected, num_keypoints), keypoints, scale_mode
    )
    titles = [
        f"layer {layer}: {100 * shares[row].mean():.1f} % of attention on keypoint tokens"
        for row, layer in enumerate(layers)
    ]
    title = (
        f"Self-attention among keypoint tokens, per layer ({heads_text(heads, self_rows.shape[1])})"
    )
    total_tokens = self_rows.shape[-1]
    summed_columns = f"all {num_keypoints} keypoint columns"
    if len(keypoints) < num_keypoints:
        summed_columns += f", not only the {len(keypoints)} drawn,"
    subtitle = (
        "Row: the keypoint token that queries; column: the keypoint token it attends to. "
        f"Attention is a softmax over all {total_tokens:,} tokens, so a row over {summed_columns} "
        "sums to the share that went to keypoint tokens (the rest went to patch tokens).\n"
        + source_line
    )
    labels = [names[index] for index in keypoints]
    return draw_matrix_panels(values, titles, labels, keypoints, [scale], title, subtitle, dpi)


@dataclass(frozen=True)
class ImageColumn:
    """One column of a keypoint-to-image figure.

    `patch_values` is [rows, P] attention over patch tokens in token order, one row per figure
    row; `keypoint_share` is [rows] (self-attention only) or None.
    """

    label: str
    patch_values: np.ndarray
    keypoint_share: Optional[np.ndarray]
    marker: Optional[LandmarkMarker]


KIND_TEXT = {
    "self": (
        "Self-attention of keypoint tokens on patch tokens",
        "Each panel: one keypoint token's self-attention on the patch tokens, each value drawn "
        "on its patch's pixels ({patch}). The values are the part of the attention that went "
        "to patches; 'to keypoints' is the part that went to keypoint tokens instead.",
    ),
    "cross": (
        "Cross-attention of keypoint tokens on patch tokens",
        "Each panel: one keypoint query's cross-attention over the patch tokens (a softmax "
        "over patches, summing to 1), each value drawn on its patch's pixels ({patch}).",
    ),
}
SCALE_TEXT = (
    "Colour and opacity: each patch's value as a multiple of the uniform level (the panel's "
    "mean over all patches), on one log scale for all panels from 1x, which is transparent so "
    "that a flat map leaves the radiograph unchanged, to {top:.3g}x: the largest multiple in "
    f"the figure, but at least {MIN_OVERLAY_TOP:g}x. 'padding': the attention on patches "
    "wholly in the letterbox padding, which is cropped from the drawing."
)
SCALE_TICKS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def overlay_scale(top: float) -> OverlayScale:
    """Return the colour bar of multiples of the uniform level, 1x to `top` on a log scale."""
    ticks = [tick for tick in SCALE_TICKS if tick <= top]
    return OverlayScale(
        "attention / uniform level\n(log scale, shared by all panels)",
        LogNorm(1.0, top),
        ticks,
        "{:g}x",
    )


def image_attention_figure(
    kind: str,
    columns: Sequence[ImageColumn],
    row_labels: Sequence[str],
    grid: PatchGrid,
    letterbox: Letterbox,
    image_rgb: np.ndarray,
    title_suffix: str,
    source_line: str,
    dpi: int,
    landmark_note: str = "",
) -> PixelLayout:
    """Draw attention over patch tokens on the radiograph: rows x columns panels.

    `image_rgb` [H, W, 3] is the image the model read, before letterboxing. Each patch
    token's value covers exactly its patch's rectangle mapped back onto that image, and the
    letterbox padding is left out. Colours show multiples of each panel's uniform level on one
    log scale for all panels (`overlay_levels`), whose top is the largest multiple on a
    patch that shows some of the radiograph.
    """
    image = image_rgb
    visible = visible_patches(grid, letterbox)
    padding_only = ~visible
    # [rows, columns, P]: each panel's values as multiples of its uniform level.
    multiples = np.stack(
        [uniform_multiples(column.patch_values[: len(row_labels)]) for column in columns], axis=1
    )
    top = overlay_top(multiples[..., visible].max())
    levels = overlay_levels(multiples, top)
    pixel_rows, pixel_columns = patch_cells(grid, letterbox)

    def panel_map(row: int, column: int) -> BlockMap:
        return BlockMap(grid.tokens_to_map(levels[row, column]), pixel_rows, pixel_columns)

    notes = []
    for row in range(len(row_labels)):
        line = []
        for number, column in enumerate(columns):
            values = column.patch_values[row]
            peak = float(values[visible].max())
            peak_multiple = float(multiples[row, number][visible].max())
            note = [f"max {peak:.2g} = {peak_multiple:.1f}x uniform"]
            if column.keypoint_share is not None:
                note.append(f"to keypoints {100 * column.keypoint_share[row]:.1f} %")
            if padding_only.any():
                note.append(f"padding {100 * values[padding_only].sum():.1f} %")
            line.append("\n".join(note))
        notes.append(line)

    patch_h, patch_w = grid.patch_pixels
    heading, explanation = KIND_TEXT[kind]
    explanation = explanation.format(patch=f"{patch_h} x {patch_w} pixels of the model input")
    subtitle = f"{explanation} {SCALE_TEXT.format(top=top)}\n{landmark_note}{source_line}"
    return draw_image_panels(
        image,
        panel_map,
        row_labels,
        [column.label for column in columns],
        notes,
        [column.marker for column in columns],
        f"{heading} ({title_suffix})",
        subtitle,
        overlay_scale(top),
        dpi,
    )


def token_similarity_figure(
    tokens: np.ndarray,
    keypoints: Sequence[int],
    names: Sequence[str],
    cluster: bool,
    source_line: str,
    dpi: int,
) -> PixelLayout:
    """Draw the softmax and cosine similarity of the keypoint query tokens [K, dim].

    With `cluster`, rows and columns follow the leaf order of average-linkage clustering on
    cosine distance (1 - cosine) instead of the canonical landmark order.
    """
    softmax, cosine = token_similarity(tokens)
    order = list(keypoints)
    if cluster:
        sub = cosine[np.ix_(order, order)]
        order = [order[position] for position in cluster_order(1.0 - sub)]
    index = np.ix_(order, order)
    dim = tokens.shape[1]
    matrices = [softmax[index], cosine[index]]
    scales = [
        MatrixScale(
            0.0, float(softmax[index].max()), MATRIX_CMAP, "softmax weight (rows sum to 1)"
        ),
        MatrixScale(-1.0, 1.0, "RdBu_r", "cosine similarity", separator_color="0.35"),
    ]
    titles = [
        f"softmax over each row of T Tᵀ / √{dim} (published plot)",
        "cosine similarity of the tokens",
    ]
    order_text = (
        "ordered by average-linkage clustering on cosine distance"
        if cluster
        else "in canonical landmark order"
    )
    drawn = f"{len(order)} of the {len(tokens)}" if len(order) < len(tokens) else f"{len(tokens)}"
    subtitle = (
        f"T: {drawn} keypoint query tokens before the first layer (kp_init + "
        f"kp_id_emb + kp_pos, {dim} values each), {order_text}. Left: row i is how token i's "
        "query would split its attention over the tokens.\n"
        "Right: cosine of the angle between two tokens, 1 = same direction, 0 = orthogonal, "
        "-1 = opposite.\n" + source_line
    )
    labels = [names[index] for index in order]
    return draw_matrix_panels(
        matrices,
        titles,
        labels,
        order,
        scales,
        "Similarity of the keypoint query tokens",
        subtitle,
        dpi,
        columns=2,
        separators=not cluster,
    )


def layer_labels(layers: Sequence[int]) -> List[str]:
    """Return the row labels "layer 0", "layer 1", ... of a keypoint-to-image figure."""
    return [f"layer {layer}" for layer in layers]
