"""Zigzag token order and the mapping of token values onto image pixels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REFERENCE_DIR

from llrformer.patch_grid import PatchGrid, zigzag_order
from llrformer.preprocess import Letterbox


def test_zigzag_non_square_by_hand():
    # Walked by hand with the published bounds tests: (2, 0) is dropped, then the
    # unreached cells follow in raster order.
    expected = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (1, 2)]
    assert zigzag_order(2, 3).tolist() == [list(pair) for pair in expected]


@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 5), (5, 1), (4, 3), (3, 7), (32, 32), (7, 2)])
def test_zigzag_is_permutation(rows, cols):
    order = zigzag_order(rows, cols)
    assert order.shape == (rows * cols, 2)
    cells = {tuple(pair) for pair in order.tolist()}
    assert cells == {(r, c) for r in range(rows) for c in range(cols)}


@pytest.mark.skipif(not (REFERENCE_DIR / "golden_small").is_dir(), reason="no reference")
def test_zigzag_matches_reference_32x32():
    expected = np.load(REFERENCE_DIR / "golden_small" / "expected.npz")["patch_order"]
    assert np.array_equal(zigzag_order(32, 32), expected)


GRIDS = [PatchGrid(32, 32, 9, 3), PatchGrid(4, 3, 6, 4), PatchGrid(5, 8, 2, 3)]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g.rows}x{g.cols}")
def test_planted_token_lands_on_its_rectangle(grid):
    height, width = grid.patch_pixels
    for token in [0, 1, grid.num_patches // 2, grid.num_patches - 1]:
        values = np.zeros(grid.num_patches)
        values[token] = 1.0
        pixels = grid.map_to_pixels(grid.tokens_to_map(values))

        x0, y0, x1, y1 = grid.token_rect(token)
        assert (x1 - x0, y1 - y0) == (width, height)
        assert pixels.shape == (grid.rows * height, grid.cols * width)
        assert pixels[y0:y1, x0:x1].min() == 1.0
        assert pixels.sum() == width * height


def test_full_grid_rectangle_is_36_by_12_pixels():
    grid = PatchGrid(32, 32, 9, 3)
    assert grid.patch_pixels == (36, 12)
    assert grid.token_rect(1) == (12, 0, 24, 36)  # token 1 is cell (row 0, column 1)
    assert grid.token_rect(2) == (0, 36, 12, 72)  # token 2 is cell (row 1, column 0)


def test_tokens_to_map_batches():
    grid = PatchGrid(4, 3, 6, 4)
    values = np.arange(2 * 5 * grid.num_patches, dtype=float).reshape(2, 5, grid.num_patches)
    maps = grid.tokens_to_map(values)
    assert maps.shape == (2, 5, 4, 3)
    for token, (row, col) in enumerate(grid.order):
        assert maps[1, 3, row, col] == values[1, 3, token]


def test_tokens_to_map_rejects_wrong_length():
    with pytest.raises(ValueError, match="expected 12 patch values"):
        PatchGrid(4, 3, 6, 4).tokens_to_map(np.zeros(11))


def test_padding_cropped_and_original_region():
    grid = PatchGrid(32, 32, 9, 3)
    box = Letterbox.fit((1040, 2900), (384, 1152))
    pixels = grid.map_to_pixels(np.ones((32, 32)), box)
    assert pixels.shape == (box.new_h, box.new_w)

    # Token 0 lies wholly in the 41-pixel top padding, so its original region is empty.
    x0, y0, x1, y1 = grid.token_rect_original(0, box)
    assert (x0, y0, y1) == (0.0, 0.0, 0.0)
    assert x1 == pytest.approx(12 / box.scale)

    # Token 3 is cell (row 2, column 0): input rows 72..108.
    assert tuple(grid.order[3]) == (2, 0)
    _, y0, _, y1 = grid.token_rect_original(3, box)
    assert y0 == pytest.approx((72 - box.pad_top) / box.scale)
    assert y1 == pytest.approx((108 - box.pad_top) / box.scale)
