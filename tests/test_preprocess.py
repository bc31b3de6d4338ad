"""Letterboxing, normalisation and the round trip of coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from llrformer.preprocess import (
    IMAGENET_MEAN,
    Letterbox,
    denormalize_image,
    letterbox_image,
    normalize_image,
)


@pytest.mark.parametrize(
    "size", [(1041, 2899), (2899, 1041), (383, 1153), (97, 31), (384, 1152), (1, 3)]
)
def test_coordinate_round_trip(size):
    box = Letterbox.fit(size, (384, 1152))
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 1, (50, 2)) * np.array(size)
    assert np.allclose(box.to_original(box.to_input(points)), points, atol=1e-9)


@pytest.mark.parametrize("size", [(1041, 2899), (2899, 1041), (101, 77)])
def test_letterbox_places_image_centred(size):
    width, height = size
    rgb = np.full((height, width, 3), 200, dtype=np.uint8)
    canvas, box = letterbox_image(rgb, (384, 1152))
    assert canvas.shape == (1152, 384, 3)
    assert box.pad_left == (384 - box.new_w) // 2
    assert box.pad_top == (1152 - box.new_h) // 2
    inner = canvas[box.pad_top : box.pad_top + box.new_h, box.pad_left : box.pad_left + box.new_w]
    assert inner.min() == 200
    assert canvas.sum() == inner.sum()


def test_corners_map_to_resized_region():
    box = Letterbox.fit((1041, 2899), (384, 1152))
    corners = box.to_input(np.array([[0.0, 0.0], [1041.0, 2899.0]]))
    assert corners[0].tolist() == [box.pad_left, box.pad_top]
    assert corners[1][0] == pytest.approx(box.pad_left + 1041 * box.scale)


def test_normalisation_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    tensor = normalize_image(rgb)
    assert tensor.shape == (3, 5, 7)
    black = normalize_image(np.zeros((1, 1, 3), dtype=np.uint8))[:, 0, 0]
    assert black[0].item() == pytest.approx(-IMAGENET_MEAN[0] / 0.229)
    assert np.array_equal(denormalize_image(tensor), rgb)
