"""Equivalence with the published implementation on the golden test vectors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import REFERENCE_DIR

from llrformer.checkpoint import load_model
from llrformer.config import load_config
from llrformer.inference import predict
from llrformer.transformer import sine_position_embedding

GOLDEN = REFERENCE_DIR / "golden_small"
TOLERANCE = 1e-5

pytestmark = pytest.mark.skipif(not GOLDEN.is_dir(), reason="reference vectors not present")


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


@pytest.fixture(scope="module")
def golden():
    cfg = load_config(REFERENCE_DIR / "golden_small.yaml")
    model = load_model(cfg, GOLDEN / "model_best.pth")
    rgb = cv2.cvtColor(cv2.imread(str(GOLDEN / "input.png")), cv2.COLOR_BGR2RGB)
    prediction = predict(model, rgb, record=True, keypoint_rows_only=False)
    expected = dict(np.load(GOLDEN / "expected.npz"))
    facts = json.loads((GOLDEN / "expected.json").read_text())
    return model, rgb, prediction, expected, facts


def test_letterbox_matches_exactly(golden):
    _, _, prediction, expected, facts = golden
    assert np.array_equal(prediction.letterboxed_rgb, expected["letterboxed_rgb"])
    box = prediction.letterbox
    assert box.scale == pytest.approx(facts["letterbox"]["scale"])
    assert (box.new_w, box.new_h) == (facts["letterbox"]["new_w"], facts["letterbox"]["new_h"])
    assert (box.pad_left, box.pad_top) == (
        facts["letterbox"]["pad_left"],
        facts["letterbox"]["pad_top"],
    )


def test_input_tensor_is_imagenet_normalised(golden):
    _, _, prediction, expected, _ = golden
    first_rows = prediction.input_tensor[0, :, :4].numpy()
    assert relative_error(first_rows, expected["input_tensor_first_rows"]) < TOLERANCE


@pytest.mark.parametrize(
    "name",
    ["heatmaps", "cross_attention", "self_attention_keypoint_rows", "self_attention_patch_rows"],
)
def test_model_outputs_match(golden, name):
    model, _, prediction, expected, _ = golden
    actual = {
        "heatmaps": prediction.heatmaps,
        "cross_attention": prediction.cross_attention,
        "self_attention_keypoint_rows": prediction.self_attention[:, :, : model.num_keypoints],
        "self_attention_patch_rows": prediction.self_attention[
            :, :, model.num_keypoints + expected["patch_rows"]
        ],
    }[name]
    assert actual.shape == expected[name].shape
    assert relative_error(actual, expected[name]) < TOLERANCE


def test_heatmap_argmax_identical(golden):
    _, _, prediction, _, facts = golden
    argmax = prediction.heatmaps.reshape(len(prediction.heatmaps), -1).argmax(axis=1)
    assert argmax.tolist() == facts["heatmap_argmax"]


def test_patch_order_and_embeddings_match(golden):
    model, _, _, expected, _ = golden
    assert np.array_equal(model.grid.order, expected["patch_order"])
    vis_pos = model.transformer.vis_pos[0].detach().numpy()
    assert relative_error(vis_pos, expected["vis_pos"]) < TOLERANCE
    tokens = model.transformer.initial_keypoint_tokens()[0].detach().numpy()
    assert relative_error(tokens, expected["keypoint_tokens"]) < TOLERANCE


def test_sine_embedding_recomputed_matches(golden):
    model, _, _, expected, _ = golden
    grid = model.grid
    computed = sine_position_embedding(grid.rows, grid.cols, expected["vis_pos"].shape[1])
    assert relative_error(computed[0].numpy(), expected["vis_pos"]) < TOLERANCE


def test_fused_path_matches_recorded_path(golden):
    model, rgb, prediction, expected, _ = golden
    fused = predict(model, rgb, record=False)
    assert relative_error(fused.heatmaps, expected["heatmaps"]) < TOLERANCE
    assert np.allclose(fused.heatmaps, prediction.heatmaps, rtol=0, atol=1e-5)


def test_batch_of_two_matches_single(golden):
    model, _, prediction, _, _ = golden
    batch = prediction.input_tensor.repeat(2, 1, 1, 1)
    with torch.inference_mode():
        heatmaps = model(batch).numpy()
    assert np.allclose(heatmaps[1], prediction.heatmaps, atol=1e-5)


def test_batchnorm_folding_keeps_outputs(golden):
    _, rgb, prediction, expected, _ = golden
    cfg = load_config(REFERENCE_DIR / "golden_small.yaml")
    folded = load_model(cfg, GOLDEN / "model_best.pth", fuse_batchnorm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    result = predict(folded, rgb, record=True)
    assert relative_error(result.heatmaps, expected["heatmaps"]) < TOLERANCE
    assert relative_error(result.cross_attention, expected["cross_attention"]) < TOLERANCE
