"""Sub-pixel decoding, radial errors in three units, PCK, AUC and the report tables."""

from __future__ import annotations

import csv
import math

import cv2
import numpy as np
import pytest

from llrformer.decode import decode_heatmaps
from llrformer.keypoints import KEYPOINT_NAMES, REGIONS
from llrformer.metrics import (
    LandmarkErrors,
    build_report,
    compute_errors,
    format_table,
    landmark_rows,
    pck,
    pck_auc,
    pck_label,
    per_image_rows,
    plot_errors_by_landmark,
    radial_errors,
    region_rows,
    summarize,
    write_csv,
)
from llrformer.preprocess import Letterbox


def _gaussians(centres: np.ndarray, sigmas: np.ndarray, size=(16, 24)) -> np.ndarray:
    """Heatmaps [K, Hh, Wh] with a Gaussian at each (x, y) heatmap-cell position."""
    width, height = size
    columns = np.arange(width)[None, None, :]
    rows = np.arange(height)[None, :, None]
    x, y = centres[:, 0, None, None], centres[:, 1, None, None]
    squared = (columns - x) ** 2 + (rows - y) ** 2
    return np.exp(-squared / (2 * sigmas[:, None, None] ** 2))


def test_decode_finds_subpixel_gaussian_centres():
    rng = np.random.default_rng(7)
    centres = rng.uniform([2, 2], [13, 21], size=(50, 2))
    sigmas = rng.choice([1.0, 1.5, 2.0, 3.0], size=50)
    stride = 4

    coordinates, peaks = decode_heatmaps(_gaussians(centres, sigmas), (16 * stride, 24 * stride))

    # A heatmap cell (col, row) centre is input pixel ((col + 0.5) * stride, (row + 0.5) * stride).
    decoded_cells = coordinates / stride - 0.5
    # Decoding must be accurate to 0.1 cell. The smoothing before the fit costs at most 0.03
    # here, for Gaussians whose tails are cut by the border.
    assert np.abs(decoded_cells - centres).max() < 0.03
    assert np.all(peaks > 0.8)


def test_decode_tolerates_noisy_heatmaps():
    rng = np.random.default_rng(8)
    centres = rng.uniform([2, 2], [13, 21], size=(200, 2))
    heatmaps = _gaussians(centres, np.full(200, 2.0)) + rng.normal(0, 0.01, (200, 24, 16))

    coordinates, _ = decode_heatmaps(heatmaps, (16, 24))

    error = np.abs(coordinates - 0.5 - centres)
    assert error.mean() < 0.05
    assert error.max() < 0.3


def test_decode_beats_argmax_on_offset_centres():
    centres = np.array([[5.3, 7.4], [8.49, 12.0], [10.0, 3.7]])
    heatmaps = _gaussians(centres, np.full(3, 2.0))
    coordinates, _ = decode_heatmaps(heatmaps, (16, 24))
    argmax = np.stack(np.unravel_index(heatmaps.reshape(3, -1).argmax(1), (24, 16)))[::-1].T
    assert np.all(
        np.abs(coordinates - 0.5 - centres).max(1) < np.abs(argmax - centres).max(1) + 1e-9
    )


def test_radial_errors_skip_missing():
    truth = np.array([[[0.0, 0.0], [10.0, 0.0], [np.nan, np.nan]]])
    predicted = np.array([[[3.0, 4.0], [10.0, 0.0], [5.0, 5.0]]])
    errors = radial_errors(predicted, truth)
    assert errors[0, 0] == 5.0
    assert errors[0, 1] == 0.0
    assert np.isnan(errors[0, 2])


def _errors(input_px: np.ndarray, height: int = 100, spacing: float = 0.5) -> LandmarkErrors:
    input_px = np.asarray(input_px, dtype=float)
    return LandmarkErrors(
        input_px=input_px,
        original_px=input_px * 10,
        mm=input_px * 10 * spacing,
        input_height=height,
        names=[f"kp{i}" for i in range(input_px.shape[1])],
        image_names=[f"image{i}" for i in range(input_px.shape[0])],
    )


def test_summary_counts_missing_landmarks():
    errors = _errors([[1.0, 2.0, np.nan], [3.0, np.nan, 6.0]])

    summary = summarize(errors, [0.02, 0.05])

    assert summary["landmarks_evaluated"] == 4
    assert summary["landmarks_missing"] == 2
    assert summary["mre_input_px"] == pytest.approx(3.0)
    assert summary["median_input_px"] == pytest.approx(2.5)
    assert summary["mre_original_px"] == pytest.approx(30.0)
    assert summary["mre_mm"] == pytest.approx(15.0)
    assert summary["nme"] == pytest.approx(0.03)
    assert [row["value"] for row in summary["pck"]] == [0.5, 0.75]


def test_pck_thresholds_are_named_by_value():
    assert pck_label(0.02, 384) == "PCK@2% of height (7.7 px)"
    assert pck_label(0.005, 1152) == "PCK@0.5% of height (5.8 px)"
    errors = _errors([[1.0, 2.0, 2.0001, 5.0]])
    summary = summarize(errors, [0.02])
    assert summary["pck"][0]["label"] == "PCK@2% of height (2.0 px)"
    assert summary["pck"][0]["threshold_input_px"] == pytest.approx(2.0)
    # A landmark exactly at the threshold counts as correct.
    assert summary["pck"][0]["value"] == 0.5
    assert [row["label"] for row in summary["pck_mm"]] == ["PCK@2 mm", "PCK@4 mm", "PCK@10 mm"]
    assert summary["pck_mm"][0]["value"] == 0.0
    assert summary["pck_mm"][2]["value"] == 0.5


def test_pck_auc_matches_integral():
    errors = np.array([0.0, 5.0, 10.0, 20.0, np.nan])
    assert pck_auc(errors, 10.0) == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    thresholds = np.linspace(0, 10, 10_001)
    curve = np.array([pck(errors, t) for t in thresholds])
    assert pck_auc(errors, 10.0) == pytest.approx(curve.mean(), abs=1e-3)


def test_compute_errors_maps_to_original_pixels_and_mm():
    input_size = (48, 96)
    boxes = [Letterbox.fit((200, 600), input_size), Letterbox.fit((100, 300), input_size)]
    truth_original = np.array([[[100.0, 300.0], [50.0, 60.0]], [[20.0, 30.0], [np.nan, np.nan]]])
    reductions = [1.0, 2.0]
    truth_input = np.stack(
        [box.to_input(points / r) for box, points, r in zip(boxes, truth_original, reductions)]
    )
    predicted = truth_input + np.array([3.0, 4.0])

    errors = compute_errors(
        predicted, truth_input, truth_original, boxes, reductions, [0.2, None], input_size[1]
    )

    assert np.allclose(errors.input_px[0], 5.0)
    assert errors.input_px[1, 0] == pytest.approx(5.0)
    assert np.isnan(errors.input_px[1, 1])
    # Image 0: 200 x 600 -> scale 0.16; image 1 decoded at half size: 100 x 300 -> 0.32.
    assert np.allclose(errors.original_px[0], 5.0 / 0.16)
    # Image 1 truth is in pixels of the file on disk, twice the decoded size.
    assert errors.original_px[1, 0] == pytest.approx(5.0 / 0.32 * 2)
    assert np.allclose(errors.mm[0], 5.0 / 0.16 * 0.2)
    assert np.isnan(errors.mm[1]).all()
    summary = summarize(errors, [0.05])
    assert summary["landmarks_with_mm"] == 2
    assert summary["pck_mm"] == []


def test_region_rows_follow_anatomical_regions():
    input_px = np.zeros((2, 36))
    for value, (_, first, last) in enumerate(REGIONS, start=1):
        input_px[:, first : last + 1] = value
    input_px[0, 12] = np.nan

    rows = region_rows(_errors(input_px), [0.02])

    assert [row["region"] for row in rows] == [name for name, _, _ in REGIONS] + ["all"]
    assert [row["mre_input_px"] for row in rows[:-1]] == [1.0, 2.0, 3.0, 4.0, 5.0]
    knee = rows[2]
    assert knee["landmarks_evaluated"] == 31
    assert knee["landmarks_missing"] == 1
    assert rows[-1]["landmarks_evaluated"] == 71


def test_landmark_rows_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    input_px = rng.uniform(0, 4, size=(3, 36))
    input_px[:, 7] = np.nan
    errors = _errors(input_px)
    errors.names = list(KEYPOINT_NAMES)
    rows = landmark_rows(errors, [0.01, 0.02])

    write_csv(rows, tmp_path / "per_landmark.csv")

    with open(tmp_path / "per_landmark.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 36
    assert table[4]["landmark"] == "R_FNeck_Cut_Up"
    assert table[4]["region"] == "hip"
    assert float(table[4]["mre_input_px"]) == pytest.approx(input_px[:, 4].mean(), rel=1e-5)
    assert table[7]["mre_input_px"] == ""
    assert table[7]["landmarks_missing"] == "3"
    assert "PCK@1% of height (1.0 px)" in table[0]
    assert "AUC of PCK for 0-2% of height (0-2.0 px)" in table[0]


def test_report_table_and_plot(tmp_path):
    rng = np.random.default_rng(1)
    input_px = rng.gamma(2.0, 1.5, size=(5, 36))
    input_px[2, 3] = np.nan
    errors = _errors(input_px, height=384)
    errors.names = list(KEYPOINT_NAMES)
    report = build_report(errors, [0.005, 0.01, 0.02, 0.05], {"split": "test"})

    text = format_table(report)
    plot_errors_by_landmark(report, errors, tmp_path / "errors.png", "test split")

    lines = text.splitlines()
    assert lines[0].split()[:2] == ["region", "n"]
    assert [line.split()[0] for line in lines[1:7]] == [
        "hip", "femoral", "knee", "tibial", "ankle", "all"
    ]  # fmt: skip
    assert "NME = MRE / letterboxed input height (384 px)" in text
    assert report["overall"]["landmarks_missing"] == 1
    image = cv2.imread(str(tmp_path / "errors.png"))
    assert image.shape[0] > 400
    assert image.shape[1] > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["errors.png"]
    worst = per_image_rows(errors)
    assert worst[0]["worst_landmark"] == KEYPOINT_NAMES[int(np.argmax(input_px[0]))]
    assert math.isclose(worst[2]["mre_input_px"], np.nanmean(input_px[2]))
