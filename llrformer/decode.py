"""Decoding heatmaps into keypoint coordinates with sub-pixel refinement."""

from __future__ import annotations

from typing import Tuple

import numpy as np


def _axis_offset(
    low: np.ndarray, mid: np.ndarray, high: np.ndarray, inside: np.ndarray
) -> np.ndarray:
    """Return sub-cell offsets in [-0.5, 0.5] from three samples around each peak.

    Where all three are positive, a parabola is fitted to their logarithm, which is exact for
    a sampled Gaussian. Elsewhere (negative predictions) the peak moves a quarter cell toward
    the larger neighbour. Peaks on the border (`inside` False) keep offset 0.
    """
    offset = np.zeros(len(mid))
    positive = inside & (np.minimum(np.minimum(low, mid), high) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_low, log_mid, log_high = (np.log(np.where(positive, v, 1.0)) for v in (low, mid, high))
        curvature = log_low - 2 * log_mid + log_high
        parabola = 0.5 * (log_low - log_high) / curvature
    use_parabola = positive & (curvature < 0)
    offset[use_parabola] = parabola[use_parabola]
    quarter = inside & ~use_parabola
    offset[quarter] = 0.25 * np.sign(high - low)[quarter]
    return np.clip(offset, -0.5, 0.5)


def decode_heatmaps(
    heatmaps: np.ndarray, input_size: Tuple[int, int]
) -> Tuple[np.ndarray, np.ndarray]:
    """Decode heatmaps [..., K, Hh, Wh] into input-pixel coordinates [..., K, 2] and peaks.

    `input_size` is the model input (width, height). Heatmap cell (row, col) covers input
    pixels [col * sx, (col + 1) * sx) x [row * sy, (row + 1) * sy), and its centre maps to
    ((col + 0.5) * sx, (row + 0.5) * sy). This undoes the int() of the published targets on
    average and recovers a noise-free sub-pixel target exactly (see `make_targets`). Returns
    (coordinates, peak values [..., K]).
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    *leading, height, width = heatmaps.shape
    flat = heatmaps.reshape(-1, height, width)
    peak_index = flat.reshape(len(flat), -1).argmax(axis=1)
    rows, cols = np.divmod(peak_index, width)
    peaks = flat.reshape(len(flat), -1)[np.arange(len(flat)), peak_index]
    index = np.arange(len(flat))
    dx = _axis_offset(
        flat[index, rows, np.maximum(cols - 1, 0)],
        peaks,
        flat[index, rows, np.minimum(cols + 1, width - 1)],
        (cols > 0) & (cols < width - 1),
    )
    dy = _axis_offset(
        flat[index, np.maximum(rows - 1, 0), cols],
        peaks,
        flat[index, np.minimum(rows + 1, height - 1), cols],
        (rows > 0) & (rows < height - 1),
    )
    input_w, input_h = input_size
    x = (cols + dx + 0.5) * (input_w / width)
    y = (rows + dy + 0.5) * (input_h / height)
    coordinates = np.stack([x, y], axis=-1).reshape(*leading, 2)
    return coordinates, peaks.reshape(leading)
