"""The patch grid: which pixels each patch token covers, in model token order.

LLRFormer cuts the backbone feature map into patches and feeds them to the transformer in
zigzag order, not raster order. Every map drawn from per-token values must undo that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional, Tuple

import numpy as np

from .preprocess import Letterbox

BACKBONE_STRIDE = 4


def zigzag_order(rows: int, cols: int) -> np.ndarray:
    """Return the (row, column) of each patch token, in token order, as int64 [rows * cols, 2].

    Walks the anti-diagonals s = 0 .. rows + cols - 2, alternating direction, as the published
    model does. Its bounds tests compare rows with `cols` and columns with `rows`, which only
    matters on non-square grids. Pairs outside the grid and repeats are dropped, and the cells
    never reached are appended in raster order.
    """
    pairs = []
    for s in range(rows + cols - 1):
        if s % 2 == 0:
            for j in range(min(s + 1, rows)):
                if s - j < cols:
                    pairs.append((s - j, j))
        else:
            for j in range(min(s + 1, cols)):
                if s - j < rows:
                    pairs.append((j, s - j))

    order, seen = [], set()
    for row, col in pairs:
        if 0 <= row < rows and 0 <= col < cols and (row, col) not in seen:
            seen.add((row, col))
            order.append((row, col))
    for row in range(rows):
        for col in range(cols):
            if (row, col) not in seen:
                order.append((row, col))
    return np.asarray(order, dtype=np.int64).reshape(rows * cols, 2)


@dataclass(frozen=True)
class PatchGrid:
    """The patch grid of a model: `rows` x `cols` patches of `patch_h` x `patch_w` feature cells.

    One feature cell is `stride` x `stride` pixels of the letterboxed input.
    """

    rows: int
    cols: int
    patch_h: int
    patch_w: int
    stride: int = BACKBONE_STRIDE

    @classmethod
    def from_config(cls, cfg) -> PatchGrid:
        """Build the grid for a config: feature map = IMAGE_SIZE / 4, cut into PATCH_SIZE."""
        image_w, image_h = cfg.MODEL.IMAGE_SIZE
        patch_h, patch_w = cfg.MODEL.PATCH_SIZE
        rows = image_h // BACKBONE_STRIDE // patch_h
        cols = image_w // BACKBONE_STRIDE // patch_w
        return cls(rows, cols, patch_h, patch_w)

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    @property
    def patch_pixels(self) -> Tuple[int, int]:
        """Return (height, width) of one patch in letterboxed input pixels."""
        return self.patch_h * self.stride, self.patch_w * self.stride

    @cached_property
    def order(self) -> np.ndarray:
        """Return the (row, column) of each token, int64 [num_patches, 2] (read-only)."""
        order = zigzag_order(self.rows, self.cols)
        order.flags.writeable = False
        return order

    @cached_property
    def raster_index(self) -> np.ndarray:
        """Return, for each token, the raster index row * cols + col of its cell."""
        order = self.order
        return order[:, 0] * self.cols + order[:, 1]

    def token_cell(self, token: int) -> Tuple[int, int]:
        """Return the (row, column) of a patch token's cell."""
        row, col = self.order[token]
        return int(row), int(col)

    def token_rect(self, token: int) -> Tuple[int, int, int, int]:
        """Return the pixel rectangle (x0, y0, x1, y1) of a token in the letterboxed input.

        x1 and y1 are exclusive.
        """
        row, col = self.token_cell(token)
        height, width = self.patch_pixels
        return col * width, row * height, (col + 1) * width, (row + 1) * height

    def token_rect_original(self, token: int, letterbox: Letterbox) -> Tuple[float, ...]:
        """Return a token's rectangle (x0, y0, x1, y1) in original-image pixels.

        The rectangle is clipped to the image, so a patch that lies in the letterbox padding
        alone has zero width or height.
        """
        x0, y0, x1, y1 = self.token_rect(token)
        corners = letterbox.to_original(np.array([[x0, y0], [x1, y1]], dtype=np.float64))
        corners[:, 0] = np.clip(corners[:, 0], 0, letterbox.original_w)
        corners[:, 1] = np.clip(corners[:, 1], 0, letterbox.original_h)
        return tuple(float(value) for value in corners.ravel())

    def tokens_to_map(self, values: np.ndarray) -> np.ndarray:
        """Scatter per-token values [..., num_patches] into grid maps [..., rows, cols]."""
        values = np.asarray(values)
        if values.shape[-1] != self.num_patches:
            raise ValueError(
                f"expected {self.num_patches} patch values in the last axis, "
                f"got shape {values.shape}"
            )
        grid = np.empty(values.shape[:-1] + (self.num_patches,), dtype=values.dtype)
        grid[..., self.raster_index] = values
        return grid.reshape(values.shape[:-1] + (self.rows, self.cols))

    def map_to_pixels(
        self, grid_map: np.ndarray, letterbox: Optional[Letterbox] = None
    ) -> np.ndarray:
        """Expand a grid map [rows, cols] to letterboxed input pixels, one block per patch.

        With a letterbox, the padding is cropped away so the result lines up with the resized
        image region (new_h x new_w) of the letterboxed input.
        """
        height, width = self.patch_pixels
        pixels = np.repeat(np.repeat(grid_map, height, axis=0), width, axis=1)
        if letterbox is not None:
            pixels = pixels[
                letterbox.pad_top : letterbox.pad_top + letterbox.new_h,
                letterbox.pad_left : letterbox.pad_left + letterbox.new_w,
            ]
        return pixels
