"""Numbers behind the attention figures: head selection, keypoint blocks, pixel maps, symmetry.

Attention arrays come from `AttentionRecorder` in model token order, keypoint tokens first and
then patch tokens in zigzag order:

- cross-attention: [layers, heads, K, P], keypoint queries over patch keys;
- self-attention keypoint rows: [layers, heads, K, K + P], keypoint queries over all tokens.

Pixel maps are in letterboxed input pixels [input_h, input_w], one constant block per patch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    from .patch_grid import PatchGrid
    from .preprocess import Letterbox

TOP_FRACTION = 0.10
# Colour scale modes of the keypoint matrices: probabilities on one scale for all layers,
# each layer divided by its maximum, or each row rescaled to sum to 1 over keypoint tokens.
MATRIX_SCALES = ("shared", "layer", "row")
# The top of the keypoint-to-image colour scale is at least this multiple of the uniform
# attention level, so that a nearly flat map stays nearly transparent instead of filling
# the whole colour scale.
MIN_OVERLAY_TOP = 10.0


def average_heads(attention: np.ndarray, heads: Optional[Sequence[int]] = None) -> np.ndarray:
    """Average [layers, heads, queries, keys] over all heads, or over `heads` only."""
    attention = np.asarray(attention)
    if heads is not None:
        attention = attention[:, list(heads)]
    return attention.mean(axis=1)


def keypoint_block(self_rows: np.ndarray, num_keypoints: int) -> np.ndarray:
    """Return the keypoint-to-keypoint part [..., K, K] of self-attention rows [..., K, K + P].

    The values stay attention probabilities over all K + P tokens, so a row sums to the share
    of that keypoint's attention that went to keypoint tokens.
    """
    return np.asarray(self_rows)[..., :num_keypoints, :num_keypoints]


def keypoint_share(self_rows: np.ndarray, num_keypoints: int) -> np.ndarray:
    """Return the share of each keypoint query's attention on keypoint tokens, [..., K] in 0..1.

    The rest, 1 - share, went to patch tokens.
    """
    return keypoint_block(self_rows, num_keypoints).sum(axis=-1)


def patch_part(self_rows: np.ndarray, num_keypoints: int) -> np.ndarray:
    """Return the patch columns [..., K, P] of self-attention rows [..., K, K + P].

    The values are not renormalised: a row sums to 1 minus the keypoint share.
    """
    return np.asarray(self_rows)[..., num_keypoints:]


def normalize_block_rows(block: np.ndarray) -> np.ndarray:
    """Rescale each row of a keypoint block [..., K, K] to sum to 1 (attention among keypoints).

    A row whose attention on keypoint tokens is exactly 0 stays 0.
    """
    sums = block.sum(axis=-1, keepdims=True)
    return np.divide(block, sums, out=np.zeros_like(block, dtype=np.float64), where=sums > 0)


def pixel_map(
    grid: PatchGrid, patch_values: np.ndarray, letterbox: Optional[Letterbox] = None
) -> np.ndarray:
    """Draw per-token values [P] (zigzag token order) as a pixel map.

    Each patch token's value fills exactly its patch's rectangle of letterboxed input pixels
    (`grid.token_rect`). Without a letterbox the map covers the whole input [input_h,
    input_w]; with one, the padding is cropped away and the map is [new_h, new_w], aligned
    with the resized image region.
    """
    return grid.map_to_pixels(grid.tokens_to_map(patch_values), letterbox)


def patch_cells(grid: PatchGrid, letterbox: Letterbox) -> Tuple[np.ndarray, np.ndarray]:
    """Return the patch-grid row [original_h] and column [original_w] of each image pixel.

    The pixels are those of the original image. A pixel belongs to the patch that contains
    its centre after the letterbox mapping (x * scale + pad_left, y * scale + pad_top), so
    each patch covers exactly its rectangle `grid.token_rect_original`.
    """
    patch_h, patch_w = grid.patch_pixels
    y = (np.arange(letterbox.original_h) + 0.5) * letterbox.scale + letterbox.pad_top
    x = (np.arange(letterbox.original_w) + 0.5) * letterbox.scale + letterbox.pad_left
    rows = np.clip(np.floor(y / patch_h).astype(np.int64), 0, grid.rows - 1)
    columns = np.clip(np.floor(x / patch_w).astype(np.int64), 0, grid.cols - 1)
    return rows, columns


def row_map(grid: PatchGrid, patch_values: np.ndarray) -> np.ndarray:
    """Draw per-token values [P] as a map [rows, input_w]: one line per row of patches.

    Every pixel row of a patch row is the same in `pixel_map`, so this map has the same
    columns, Pearson correlation and top-fraction masks as the full pixel map at 1/patch_h
    of the cost. Horizontal mirroring, the only transform the symmetry analysis applies,
    acts on it exactly as on the full map.
    """
    _, patch_w = grid.patch_pixels
    return np.repeat(grid.tokens_to_map(patch_values), patch_w, axis=-1)


def visible_patches(grid: PatchGrid, letterbox: Letterbox) -> np.ndarray:
    """Return, per patch token, whether its rectangle overlaps the resized image, [P] bool.

    The other patches lie wholly in the letterbox padding.
    """
    patch_h, patch_w = grid.patch_pixels
    order = grid.order
    y0, x0 = order[:, 0] * patch_h, order[:, 1] * patch_w
    inside_y = (y0 < letterbox.pad_top + letterbox.new_h) & (y0 + patch_h > letterbox.pad_top)
    inside_x = (x0 < letterbox.pad_left + letterbox.new_w) & (x0 + patch_w > letterbox.pad_left)
    return inside_y & inside_x


def uniform_multiples(patch_values: np.ndarray) -> np.ndarray:
    """Return attention over patch tokens [..., P] as multiples of its mean over the P patches.

    1 is the uniform level: the value every patch would get if the attention were spread
    evenly. A row whose mean is 0 stays 0.
    """
    values = np.asarray(patch_values, dtype=np.float64)
    means = values.mean(axis=-1, keepdims=True)
    return np.divide(values, means, out=np.zeros_like(values), where=means > 0)


def overlay_top(largest_multiple: float) -> float:
    """Return the top of the overlay scale: `largest_multiple`, but at least MIN_OVERLAY_TOP."""
    return max(MIN_OVERLAY_TOP, float(largest_multiple))


def overlay_levels(multiples: np.ndarray, top: float) -> np.ndarray:
    """Map multiples of the uniform level to overlay levels in 0..1 on a log scale.

    1x (uniform) and less give 0, `top` and more give 1: the mapping of
    `matplotlib.colors.LogNorm(1, top)`, clipped.
    """
    logs = np.log(np.maximum(np.asarray(multiples, dtype=np.float64), 1.0))
    return np.clip(logs / np.log(top), 0.0, 1.0)


def mirror_columns(image_map: np.ndarray, midline_x: float) -> np.ndarray:
    """Reflect a pixel map [..., H, W] about the vertical line x = `midline_x`.

    Pixel column c covers x in [c, c + 1), so its centre c + 0.5 reflects to
    2 * midline_x - c - 0.5. That is the centre of column 2 * midline_x - c - 1, rounded to
    the nearest column. Columns whose reflection falls outside the map become 0.
    """
    width = image_map.shape[-1]
    columns = np.arange(width)
    source = np.rint(2.0 * midline_x - columns - 1).astype(np.int64)
    inside = (source >= 0) & (source < width)
    mirrored = np.zeros_like(image_map)
    mirrored[..., inside] = image_map[..., source[inside]]
    return mirrored


def pearson(first: np.ndarray, second: np.ndarray) -> float:
    """Return the Pearson correlation of two maps, or NaN when either is constant."""
    a = np.asarray(first, dtype=np.float64).ravel()
    b = np.asarray(second, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    if denominator == 0:
        return float("nan")
    return float(np.clip((a * b).sum() / denominator, -1.0, 1.0))


def top_mask(image_map: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """Return the mask of the pixels at or above the (1 - fraction) quantile of a map.

    Ties at the threshold are all included, so a map of constant patch blocks may mark a
    little more than `fraction` of its pixels. The quantile is the inverse of the empirical
    distribution function, which does not change when every pixel is repeated the same
    number of times (see `row_map`). A map without positive values gives an empty mask.
    """
    values = np.asarray(image_map, dtype=np.float64)
    if not np.any(values > 0):
        return np.zeros(values.shape, dtype=bool)
    threshold = np.quantile(values, 1.0 - fraction, method="inverted_cdf")
    return (values >= threshold) & (values > 0)


def top_iou(first: np.ndarray, second: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Return the intersection over union of the top-`fraction` masks of two maps."""
    mask_a = top_mask(first, fraction)
    mask_b = top_mask(second, fraction)
    union = np.logical_or(mask_a, mask_b).sum()
    if union == 0:
        return float("nan")
    return float(np.logical_and(mask_a, mask_b).sum() / union)


@dataclass(frozen=True)
class SymmetryScore:
    """Agreement of a right landmark's map with the mirrored map of its left partner.

    `pearson_mirrored` and `iou_mirrored` compare R's map with L's map reflected about the
    midline; `pearson_unmirrored` compares the two maps as they are, for contrast.
    """

    pearson_mirrored: float
    iou_mirrored: float
    pearson_unmirrored: float


def symmetry_score(
    right_map: np.ndarray,
    left_map: np.ndarray,
    midline_x: float,
    fraction: float = TOP_FRACTION,
) -> SymmetryScore:
    """Compare a right landmark's pixel map [H, W] with its left partner's map mirrored.

    `midline_x` is in the maps' pixel coordinates (letterboxed input pixels for maps from
    `pixel_map` without a letterbox). A map that is exactly the mirror image of the other
    scores 1.0 on both measures.
    """
    mirrored = mirror_columns(left_map, midline_x)
    return SymmetryScore(
        pearson_mirrored=pearson(right_map, mirrored),
        iou_mirrored=top_iou(right_map, mirrored, fraction),
        pearson_unmirrored=pearson(right_map, left_map),
    )


@dataclass(frozen=True)
class SymmetryRow:
    """One line of the symmetry table: a landmark pair, an attention kind and a layer."""

    right: int
    left: int
    kind: str
    layer: int
    midline_x: float
    midline_source: str
    score: SymmetryScore


def symmetry_table(
    grid: PatchGrid,
    patch_attention: Dict[str, np.ndarray],
    pairs: Sequence[Tuple[int, int]],
    layers: Sequence[int],
    midlines: Dict[Tuple[int, int], Tuple[float, str]],
) -> List[SymmetryRow]:
    """Score every pair, kind and layer.

    `patch_attention` maps a kind ("self", "cross") to head-averaged attention over patch
    tokens [layers, K, P]. `pairs` are (right, left) indices; `midlines` gives each pair's
    midline x in letterboxed input pixels and where it came from.
    """
    rows = []
    for right, left in pairs:
        midline_x, source = midlines[(right, left)]
        for kind, attention in patch_attention.items():
            for layer in layers:
                score = symmetry_score(
                    row_map(grid, attention[layer, right]),
                    row_map(grid, attention[layer, left]),
                    midline_x,
                )
                rows.append(SymmetryRow(right, left, kind, layer, midline_x, source, score))
    return rows


def token_similarity(tokens: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Return (softmax of scaled dot products, cosine similarity), both [K, K], for [K, dim].

    The first is softmax over each row of T T^T / sqrt(dim), as the published script plots it:
    row i shows how a query built from token i would split its attention over the tokens.
    The second is the cosine of the angle between two tokens, in -1..1.
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    logits = tokens @ tokens.T / np.sqrt(tokens.shape[1])
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    softmax = weights / weights.sum(axis=1, keepdims=True)

    norms = np.linalg.norm(tokens, axis=1, keepdims=True)
    unit = np.divide(tokens, norms, out=np.zeros_like(tokens), where=norms > 0)
    cosine = np.clip(unit @ unit.T, -1.0, 1.0)
    return softmax, cosine


def cluster_order(distance: np.ndarray) -> List[int]:
    """Return a leaf order from average-linkage hierarchical clustering of a distance matrix.

    `distance` is a symmetric [N, N] matrix. The two clusters with the smallest mean pairwise
    distance merge first (ties go to the lower indices), and a merged cluster lists the
    lower-numbered cluster's members first, so similar items end up next to each other.
    """
    linkage = np.array(distance, dtype=np.float64)
    count = len(linkage)
    np.fill_diagonal(linkage, np.inf)
    members: List[List[int]] = [[index] for index in range(count)]
    active = np.ones(count, dtype=bool)
    for _ in range(count - 1):
        masked = np.where(active[:, None] & active[None, :], linkage, np.inf)
        first, second = np.unravel_index(np.argmin(masked), masked.shape)
        first, second = min(first, second), max(first, second)
        size_first, size_second = len(members[first]), len(members[second])
        # Average linkage: the distance to a merged cluster is the size-weighted mean.
        merged = (size_first * linkage[first] + size_second * linkage[second]) / (
            size_first + size_second
        )
        linkage[first, :] = merged
        linkage[:, first] = merged
        linkage[first, first] = np.inf
        members[first] = members[first] + members[second]
        active[second] = False
    return members[int(np.flatnonzero(active)[0])] if count else []


SYMMETRY_EXPLANATION = """\
How to read the symmetry table: each right landmark's attention map is compared with its left
partner's map mirrored about the midline halfway between the two landmarks.
- r mirrored near 1: the right token attends to the mirror image of the places the left token
  attends to, so the model treats the pair symmetrically. Near 0: no mirror relation.
  Below 0: the right token attends where the mirrored left map is low.
- top-10% IoU: overlap of the most-attended tenth of the pixels after mirroring; 1 = the same
  regions, 0 = disjoint regions.
- r unmirrored compares the two maps without mirroring. When it is higher than r mirrored,
  both tokens attend to the same places (shared context) rather than to mirror-image places.
Maps are compared in letterboxed input pixels; mirrored pixels that fall outside the input
count as 0. The midline comes from the ground truth when both landmarks are annotated,
else from the model's predictions."""

SYMMETRY_CSV_HEADER = (
    "right_index,right_name,left_index,left_name,kind,layer,midline_x_input_px,"
    "midline_source,pearson_mirrored,top10_iou_mirrored,pearson_unmirrored"
)


def _number(value: float, digits: int = 3) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.{digits}f}"


def format_symmetry_table(rows: Sequence[SymmetryRow], names: Sequence[str]) -> str:
    """Return the symmetry rows as an aligned text table, one line per pair, kind and layer."""
    header = (
        f"{'right / left pair':<38} {'kind':<5} {'layer':>5} {'midline x':>9}  "
        f"{'r mirrored':>10} {'top-10% IoU':>11} {'r unmirrored':>12}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        pair = f"{names[row.right]} / {names[row.left]}"
        lines.append(
            f"{pair:<38} {row.kind:<5} {row.layer:>5} {row.midline_x:>9.1f}  "
            f"{_number(row.score.pearson_mirrored):>10} {_number(row.score.iou_mirrored):>11} "
            f"{_number(row.score.pearson_unmirrored):>12}"
        )
    return "\n".join(lines)


def symmetry_csv(rows: Sequence[SymmetryRow], names: Sequence[str]) -> str:
    """Return the symmetry rows as CSV text with a header line."""
    lines = [SYMMETRY_CSV_HEADER]
    for row in rows:
        lines.append(
            f"{row.right},{names[row.right]},{row.left},{names[row.left]},{row.kind},"
            f"{row.layer},{row.midline_x:.2f},{row.midline_source},"
            f"{_number(row.score.pearson_mirrored, 6)},{_number(row.score.iou_mirrored, 6)},"
            f"{_number(row.score.pearson_unmirrored, 6)}"
        )
    return "\n".join(lines) + "\n"


def format_share_table(
    shares: np.ndarray, layers: Sequence[int], keypoints: Sequence[int], names: Sequence[str]
) -> str:
    """Summarise per layer how much keypoint attention goes to keypoint tokens.

    `shares` is [len(layers), len(keypoints)] in 0..1 (see `keypoint_share`).
    """
    header = (
        f"{'layer':>5}  {'mean to keypoints':>17}  {'lowest (keypoint)':<28}  "
        f"{'highest (keypoint)':<28}"
    )
    lines = [header, "-" * len(header)]
    for row, layer in enumerate(layers):
        values = shares[row]
        low, high = int(np.argmin(values)), int(np.argmax(values))
        lowest = f"{100 * values[low]:5.1f} % ({names[keypoints[low]]})"
        highest = f"{100 * values[high]:5.1f} % ({names[keypoints[high]]})"
        lines.append(f"{layer:>5}  {100 * values.mean():>15.1f} %  {lowest:<28}  {highest:<28}")
    return "\n".join(lines)


def share_csv(
    shares: np.ndarray, layers: Sequence[int], keypoints: Sequence[int], names: Sequence[str]
) -> str:
    """Return CSV text: one line per keypoint, its share on keypoint tokens in each layer."""
    lines = ["keypoint_index,keypoint_name," + ",".join(f"layer_{layer}" for layer in layers)]
    for column, keypoint in enumerate(keypoints):
        values = ",".join(f"{shares[row, column]:.6f}" for row in range(len(layers)))
        lines.append(f"{keypoint},{names[keypoint]},{values}")
    return "\n".join(lines) + "\n"
