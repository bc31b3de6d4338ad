"""Attention numbers and drawing: planted tokens, mirror symmetry, token similarity, options."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REFERENCE_DIR
from PIL import Image

from llrformer.attention_maps import (
    MIN_OVERLAY_TOP,
    cluster_order,
    keypoint_block,
    keypoint_share,
    mirror_columns,
    overlay_levels,
    overlay_top,
    patch_cells,
    patch_part,
    pearson,
    pixel_map,
    row_map,
    symmetry_score,
    token_similarity,
    top_iou,
    uniform_multiples,
    visible_patches,
)
from llrformer.errors import UserError
from llrformer.figures import save_figure
from llrformer.figures_attention import ImageColumn, image_attention_figure
from llrformer.figures_outputs import choose_landmarks
from llrformer.figures_overlay import (
    MAX_OVERLAY_ALPHA,
    BlockMap,
    LandmarkMarker,
    blend_overlay,
    clamp_marker,
    compose_panel,
    draw_image_panels,
    marker_legend_handles,
)
from llrformer.keypoints import KEYPOINT_NAMES
from llrformer.patch_grid import PatchGrid
from llrformer.preprocess import Letterbox
from llrformer.script_support import default_image_path, parse_heads, parse_layers

FULL_GRID = PatchGrid(32, 32, 9, 3)
GRIDS = [FULL_GRID, PatchGrid(4, 3, 6, 4), PatchGrid(5, 8, 2, 3)]


def one_hot(grid: PatchGrid, token: int) -> np.ndarray:
    values = np.zeros(grid.num_patches)
    values[token] = 1.0
    return values


def input_size(grid: PatchGrid):
    patch_h, patch_w = grid.patch_pixels
    return grid.cols * patch_w, grid.rows * patch_h


def tall_letterbox(grid: PatchGrid) -> Letterbox:
    """A letterbox with padding on the left and right: the original is narrower than 1:3."""
    width, height = input_size(grid)
    return Letterbox.fit((width * 10 // 2, height * 10), (width, height))


def wide_letterbox(grid: PatchGrid) -> Letterbox:
    """A letterbox with padding on top and bottom."""
    width, height = input_size(grid)
    return Letterbox.fit((width * 13, height * 10), (width, height))


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g.rows}x{g.cols}")
@pytest.mark.parametrize("make_box", [tall_letterbox, wide_letterbox], ids=["tall", "wide"])
def test_pixel_map_planted_token_cropped(grid, make_box):
    box = make_box(grid)
    assert box.pad_left > 0 or box.pad_top > 0
    for token in range(grid.num_patches):
        drawn = pixel_map(grid, one_hot(grid, token), box)
        assert drawn.shape == (box.new_h, box.new_w)

        x0, y0, x1, y1 = grid.token_rect(token)
        expected = np.zeros((box.input_h, box.input_w))
        expected[y0:y1, x0:x1] = 1.0
        expected = expected[
            box.pad_top : box.pad_top + box.new_h, box.pad_left : box.pad_left + box.new_w
        ]
        assert np.array_equal(drawn, expected), f"token {token}"


def test_pixel_map_zigzag_tokens_full_grid():
    # Tokens 1 and 2 are cells (0, 1) and (1, 0): a raster reading would swap rows.
    drawn = pixel_map(FULL_GRID, one_hot(FULL_GRID, 2))
    assert drawn[36:72, 0:12].min() == 1.0
    assert drawn.sum() == 36 * 12
    drawn = pixel_map(FULL_GRID, one_hot(FULL_GRID, 1))
    assert drawn[0:36, 12:24].min() == 1.0


@pytest.mark.skipif(not (REFERENCE_DIR / "golden_small").is_dir(), reason="no reference")
def test_pixel_map_matches_reference_patch_order():
    expected = np.load(REFERENCE_DIR / "golden_small" / "expected.npz")
    attention = expected["cross_attention"][2, 0, 4]  # layer 2, head 0, keypoint 4
    grid_map = np.zeros((32, 32))
    for token, (row, col) in enumerate(expected["patch_order"]):
        grid_map[row, col] = attention[token]
    reference = np.repeat(np.repeat(grid_map, 36, axis=0), 12, axis=1)
    assert np.array_equal(pixel_map(FULL_GRID, attention), reference)


def test_visible_patches_excludes_padding_rows():
    box = Letterbox.fit((1040, 2900), (384, 1152))  # pad_top 41: the first patch row is padding
    visible = visible_patches(FULL_GRID, box)
    rows = FULL_GRID.order[:, 0]
    assert not visible[rows == 0].any()
    assert not visible[rows == 31].any()
    assert visible[(rows > 0) & (rows < 31)].all()


def planted_blocks(grid: PatchGrid, token: int, box: Letterbox) -> BlockMap:
    """The one-hot map of a token, as the keypoint-to-image figure passes it to a panel."""
    rows, columns = patch_cells(grid, box)
    return BlockMap(grid.tokens_to_map(one_hot(grid, token)), rows, columns)


def original_letterboxes(grid: PatchGrid):
    """Two letterboxes of originals about 1.4 times the input: padded left/right and top/bottom."""
    width, height = input_size(grid)
    return [
        Letterbox.fit((int(width * 1.1), int(height * 1.45)), (width, height)),
        Letterbox.fit((int(width * 1.7), int(height * 1.3)), (width, height)),
    ]


def centres_inside(grid: PatchGrid, token: int, box: Letterbox) -> np.ndarray:
    """Mask [original_h, original_w] of the pixels whose centres lie in a token's rectangle."""
    x0, y0, x1, y1 = grid.token_rect_original(token, box)
    ys = np.arange(box.original_h) + 0.5
    xs = np.arange(box.original_w) + 0.5
    inside_y = (ys >= y0) & (ys < y1)
    inside_x = (xs >= x0) & (xs < x1)
    return inside_y[:, None] & inside_x[None, :]


def sampled_tokens(grid: PatchGrid, box: Letterbox) -> np.ndarray:
    # Every 17th token of the 32 x 32 grid, plus the last, keeps the tests fast.
    tokens = np.flatnonzero(visible_patches(grid, box))
    return np.union1d(tokens[:: 17 if len(tokens) > 100 else 1], tokens[-1:])


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g.rows}x{g.cols}")
def test_patch_cells_cover_original_rectangles(grid):
    for box in original_letterboxes(grid):
        assert box.pad_left > 0 or box.pad_top > 0
        assert box.scale not in (0.5, 1.0)
        rows, columns = patch_cells(grid, box)
        for token in sampled_tokens(grid, box):
            row, column = grid.token_cell(token)
            lookup = (rows == row)[:, None] & (columns == column)[None, :]
            assert np.array_equal(lookup, centres_inside(grid, token, box)), f"token {token}"


def colored_pixels(panel: np.ndarray, background: int) -> np.ndarray:
    return np.any(panel != background, axis=-1)


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g.rows}x{g.cols}")
def test_drawn_panel_planted_token_exact(grid):
    for box in original_letterboxes(grid):
        height, width = box.original_h, box.original_w
        gray = np.full((height, width, 3), 90, dtype=np.uint8)
        for token in sampled_tokens(grid, box):
            panel = compose_panel(gray, planted_blocks(grid, token, box), height, width)
            expected = centres_inside(grid, token, box)
            assert np.array_equal(colored_pixels(panel, 90), expected), f"token {token}"


def test_drawn_panel_half_scale_follows_nearest_pixel():
    grid = PatchGrid(5, 8, 2, 3)  # patches of 8 x 12 input pixels
    box = Letterbox.fit((96, 40), (96, 40))
    gray = np.zeros((40, 96, 3), dtype=np.uint8)
    token = int(np.flatnonzero((grid.order == [2, 3]).all(axis=1))[0])
    panel = compose_panel(gray, planted_blocks(grid, token, box), 20, 48)
    rows, cols = np.nonzero(colored_pixels(panel, 0))
    # Cell (2, 3) covers input y 16..23 and x 36..47, so output rows 8..11 and columns 18..23.
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (8, 11, 18, 23)


def test_blend_keeps_radiograph_where_attention_is_zero():
    gray = np.full((4, 4, 3), 123, dtype=np.uint8)
    values = np.zeros((4, 4))
    values[0, 0] = 1.0
    blended = blend_overlay(gray, values)
    assert np.array_equal(blended[1:, :], gray[1:, :])
    # At the maximum the radiograph still contributes 1 - MAX_OVERLAY_ALPHA of the colour.
    assert MAX_OVERLAY_ALPHA < 1.0
    assert not np.array_equal(blended[0, 0], gray[0, 0])


def test_rendered_figure_planted_token_exact(tmp_path):
    grid = PatchGrid(5, 8, 2, 3)  # patches of 8 x 12 input pixels, input 96 x 40
    box = Letterbox.fit((96, 40), (96, 40))
    # A green "radiograph" no text or colour-bar pixel can match.
    radiograph = np.zeros((40, 96, 3), dtype=np.uint8)
    radiograph[...] = (10, 200, 30)
    token = int(np.flatnonzero((grid.order == [3, 5]).all(axis=1))[0])
    dpi = 100
    layout = draw_image_panels(
        radiograph,
        lambda row, column: planted_blocks(grid, token, box),
        ["layer 0"],
        ["kp"],
        [["note"]],
        [None],
        "title",
        "subtitle",
        "scale",
        dpi,
        panel_height=40 / dpi,  # one panel pixel per input pixel
    )
    path = tmp_path / "panel.png"
    save_figure(layout, path)
    rendered = np.asarray(Image.open(path).convert("RGB")).astype(int)

    hot = blend_overlay(radiograph[:1, :1], np.ones((1, 1)))[0, 0].astype(int)
    hot_ys, hot_xs = np.nonzero(np.all(rendered == hot, axis=-1))
    plain_ys, plain_xs = np.nonzero(np.all(rendered == (10, 200, 30), axis=-1))
    top, left = plain_ys.min(), plain_xs.min()
    assert (plain_ys.max() - top + 1, plain_xs.max() - left + 1) == (40, 96)
    x0, y0, x1, y1 = grid.token_rect(token)
    assert (hot_ys.min() - top, hot_ys.max() - top + 1) == (y0, y1)
    assert (hot_xs.min() - left, hot_xs.max() - left + 1) == (x0, x1)
    assert len(hot_ys) == (x1 - x0) * (y1 - y0)


def test_landscape_image_keeps_figure_narrow():
    grid = PatchGrid(5, 8, 2, 3)
    box = Letterbox.fit((2000, 300), (96, 40))
    wide_image = np.zeros((300, 2000, 3), dtype=np.uint8)
    layout = draw_image_panels(
        wide_image,
        lambda row, column: planted_blocks(grid, 0, box),
        ["layer 0"],
        ["a", "b", "c", "d"],
        [["note"] * 4],
        [None] * 4,
        "title",
        "subtitle",
        "scale",
        100,
    )
    # Four panels of at most 4 inches each, with labels and the colour bar, at 100 dpi.
    assert layout.width_px < 2000


def test_mirrored_maps_score_one():
    rng = np.random.default_rng(1)
    left = rng.random((60, 40))
    right = mirror_columns(left, 20.0)
    score = symmetry_score(right, left, midline_x=20.0)
    assert score.pearson_mirrored == 1.0
    assert score.iou_mirrored == 1.0


def test_mirrored_planted_tokens_score_one():
    grid = FULL_GRID
    order = grid.order.tolist()
    right_token = order.index([10, 7])
    left_token = order.index([10, 24])  # column 31 - 7: the mirror cell about x = 192
    right = pixel_map(grid, one_hot(grid, right_token))
    left = pixel_map(grid, one_hot(grid, left_token))
    score = symmetry_score(right, left, midline_x=192.0)
    assert score.pearson_mirrored == 1.0
    assert score.iou_mirrored == 1.0
    assert score.pearson_unmirrored < 0.0


def test_unmirrored_identical_maps_are_not_symmetric():
    grid = FULL_GRID
    same = pixel_map(grid, one_hot(grid, grid.order.tolist().index([5, 3])))
    score = symmetry_score(same, same, midline_x=192.0)
    assert score.pearson_unmirrored == 1.0
    assert score.pearson_mirrored < 0.0
    assert score.iou_mirrored == 0.0


def test_mirror_columns_off_centre_midline():
    row = np.arange(10, dtype=float)[None, :] + 1
    mirrored = mirror_columns(row, 3.0)
    # Column c takes column 2 * 3 - c - 1: 5, 4, 3, 2, 1, 0, then nothing.
    assert mirrored.tolist() == [[6, 5, 4, 3, 2, 1, 0, 0, 0, 0]]


def test_pearson_constant_map_is_nan():
    assert np.isnan(pearson(np.ones((3, 3)), np.arange(9.0).reshape(3, 3)))


def test_top_iou_disjoint_is_zero():
    first = np.zeros((10, 10))
    second = np.zeros((10, 10))
    first[0, :] = 1
    second[9, :] = 1
    assert top_iou(first, second) == 0.0


def test_keypoint_share_and_patch_part_sum_to_one():
    rng = np.random.default_rng(2)
    rows = rng.random((2, 3, 5, 5 + 7))
    rows /= rows.sum(axis=-1, keepdims=True)
    share = keypoint_share(rows, 5)
    assert keypoint_block(rows, 5).shape == (2, 3, 5, 5)
    assert np.allclose(share + patch_part(rows, 5).sum(axis=-1), 1.0)


def test_token_similarity_formulas():
    rng = np.random.default_rng(3)
    tokens = rng.normal(size=(6, 16))
    softmax, cosine = token_similarity(tokens)
    logits = tokens @ tokens.T / 4.0
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(softmax, expected)
    assert np.allclose(softmax.sum(axis=1), 1.0)
    assert np.allclose(np.diag(cosine), 1.0)
    assert np.isclose(
        cosine[0, 1], tokens[0] @ tokens[1] / np.linalg.norm(tokens[[0, 1]], axis=1).prod()
    )


def test_cluster_order_groups_neighbours():
    points = np.array([0.0, 10.0, 0.2, 10.3, 0.1, 10.1])
    distance = np.abs(points[:, None] - points[None, :])
    order = cluster_order(distance)
    assert sorted(order) == list(range(6))
    groups = [set(order[:3]), set(order[3:])]
    assert {0, 2, 4} in groups
    assert {1, 3, 5} in groups


def test_parse_layers_and_heads():
    assert parse_layers("all", 6) == [0, 1, 2, 3, 4, 5]
    assert parse_layers("5,0,2", 6) == [0, 2, 5]
    assert parse_heads("mean", 8) is None
    assert parse_heads("all", 2) == [0, 1]
    assert parse_heads("3", 8) == [3]


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: parse_layers("6", 6), "layer 6 is out of range"),
        (lambda: parse_layers("-1", 6), "layer -1 is out of range"),
        (lambda: parse_layers("first", 6), "not a layer number"),
        (lambda: parse_heads("8", 8), "head 8 is out of range"),
        (lambda: parse_heads(",", 8), "names no head"),
    ],
)
def test_parse_rejects_bad_values(call, fragment):
    with pytest.raises(UserError, match=fragment):
        call()


def test_default_image_missing_says_how_to_make_one(tmp_path):
    with pytest.raises(UserError) as error:
        default_image_path(tmp_path)
    message = str(error.value)
    assert "data/test/images" in message
    assert "make_phantoms.py" in message
    assert "\n" not in message


def test_default_image_falls_back_to_val(tmp_path):
    folder = tmp_path / "data" / "val" / "images"
    folder.mkdir(parents=True)
    (folder / "b.png").write_bytes(b"")
    (folder / "a.png").write_bytes(b"")
    (tmp_path / "data" / "test" / "images").mkdir(parents=True)
    assert default_image_path(tmp_path) == folder / "a.png"


def test_row_map_scores_equal_pixel_map_scores():
    rng = np.random.default_rng(4)
    right, left = rng.random(FULL_GRID.num_patches), rng.random(FULL_GRID.num_patches)
    right[rng.random(FULL_GRID.num_patches) < 0.5] = 0.0
    for midline in (192.0, 181.5, 200.25):
        full = symmetry_score(pixel_map(FULL_GRID, right), pixel_map(FULL_GRID, left), midline)
        rows = symmetry_score(row_map(FULL_GRID, right), row_map(FULL_GRID, left), midline)
        assert np.isclose(rows.pearson_mirrored, full.pearson_mirrored, rtol=0, atol=1e-12)
        assert rows.iou_mirrored == full.iou_mirrored
        assert np.isclose(rows.pearson_unmirrored, full.pearson_unmirrored, rtol=0, atol=1e-12)


def test_overlay_levels_flat_map_transparent():
    rng = np.random.default_rng(3)
    flat = 1.0 + 0.02 * rng.standard_normal(1024)
    flat /= flat.sum()
    peaked = np.full(1024, 0.5 / 1023)
    peaked[7] = 0.5
    multiples = uniform_multiples(np.stack([flat, peaked]))
    top = overlay_top(multiples.max())
    levels = overlay_levels(multiples, top)
    assert levels[0].max() < 0.05
    assert levels[1, 7] == 1.0
    assert np.all(levels[1, np.arange(1024) != 7] == 0.0)


def test_overlay_top_floor_keeps_nearly_flat_faint():
    assert overlay_top(1.3) == MIN_OVERLAY_TOP
    assert overlay_top(250.0) == 250.0
    assert overlay_levels(np.array([1.3]), overlay_top(1.3))[0] < 0.15


def flat_figure_panels(kind: str, patch_values: np.ndarray):
    grid = PatchGrid(5, 8, 2, 3)  # patches of 8 x 12 input pixels, input 96 x 40
    box = Letterbox.fit((96, 40), (96, 40))
    radiograph = np.zeros((40, 96, 3), dtype=np.uint8)
    radiograph[...] = (10, 200, 30)
    column = ImageColumn("kp", patch_values[None, :], None, None)
    return image_attention_figure(
        kind, [column], ["layer 0"], grid, box, radiograph, "test", "source", 100
    )


def test_flat_map_drawn_as_plain_radiograph():
    grid = PatchGrid(5, 8, 2, 3)
    flat = np.full(grid.num_patches, 1.0 / grid.num_patches)
    flat[3] *= 1.01
    layout = flat_figure_panels("cross", flat / flat.sum())
    rendered = layout.render().astype(int)
    plain = np.all(np.abs(rendered - (10, 200, 30)) <= 2, axis=-1)
    ys, xs = np.nonzero(plain)
    assert len(ys) > 0
    # The panel is the bounding box of the plain pixels: every pixel in it is plain.
    assert plain[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
    # The panel has the 96 x 40 image's aspect, to within the rounding to whole pixels.
    panel_h, panel_w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert abs(panel_h - panel_w * 40 / 96) <= 1


def test_image_figure_states_normalisation():
    grid = PatchGrid(5, 8, 2, 3)
    values = np.full(grid.num_patches, 1.0 / grid.num_patches)
    layout = flat_figure_panels("cross", values)
    texts = " ".join(text.get_text() for text in layout.figure.texts)
    bar_labels = " ".join(axes.get_ylabel() for axes in layout.figure.axes)
    assert "multiple of the uniform level" in texts
    assert "at least 10x" in texts
    assert "attention / uniform level" in bar_labels
    assert "log scale" in bar_labels


def test_marker_outside_image_clamped_to_edge():
    above = clamp_marker(LandmarkMarker(30.0, -12.0, "prediction"), 96, 40)
    assert (above.x, above.y, above.outside) == (30.0, 0.0, "top")
    right = clamp_marker(LandmarkMarker(130.0, 20.0, "prediction"), 96, 40)
    assert (right.x, right.y, right.outside) == (96.0, 20.0, "right")
    inside = LandmarkMarker(10.0, 10.0, "ground truth")
    assert clamp_marker(inside, 96, 40) is inside


def test_marker_legend_labels():
    markers = [
        LandmarkMarker(1.0, 1.0, "ground truth"),
        LandmarkMarker(1.0, 1.0, "prediction"),
        LandmarkMarker(0.0, 0.0, "prediction", outside="top"),
    ]
    labels = [handle.get_label() for handle in marker_legend_handles(markers)]
    assert labels == [
        "ground-truth landmark",
        "predicted landmark",
        "predicted landmark outside the image, drawn on its edge",
    ]


def test_partial_ground_truth_note():
    box = Letterbox.fit((96, 40), (96, 40))
    ground_truth = np.full((36, 2), 5.0)
    ground_truth[[0, 15]] = np.nan
    landmarks = choose_landmarks(ground_truth, np.full((36, 2), 7.0), box)
    note = landmarks.note(KEYPOINT_NAMES)
    assert note.startswith("Ground truth is partial: 34 of 36 landmarks annotated")
    assert "(R_FC, L_LLP)" in note
    complete = choose_landmarks(np.full((36, 2), 5.0), np.full((36, 2), 7.0), box)
    assert complete.note(KEYPOINT_NAMES) == ""
    predicted_only = choose_landmarks(None, np.full((36, 2), 7.0), box)
    assert predicted_only.note(KEYPOINT_NAMES) == ""
