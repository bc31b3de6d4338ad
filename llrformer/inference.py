"""One forward pass on one image: letterbox, run, decode, and optionally record attention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from .decode import decode_heatmaps
from .model import LLRFormer
from .preprocess import Letterbox, prepare_input
from .recorder import AttentionRecorder


@dataclass
class Prediction:
    """What the model computed for one image.

    Coordinates are (x, y); `keypoints_input` in letterboxed input pixels, `keypoints_image`
    in original-image pixels. Attention arrays have the batch axis removed:
    `cross_attention` [layers, heads, K, P] and `self_attention` [layers, heads, K, K + P]
    (keypoint query rows) or [layers, heads, K + P, K + P] (all rows), in model token order.
    """

    letterboxed_rgb: np.ndarray
    letterbox: Letterbox
    input_tensor: torch.Tensor
    heatmaps: np.ndarray
    keypoints_input: np.ndarray
    keypoints_image: np.ndarray
    peak_values: np.ndarray
    cross_attention: Optional[np.ndarray] = None
    self_attention: Optional[np.ndarray] = None


@torch.inference_mode()
def predict(
    model: LLRFormer,
    rgb: np.ndarray,
    *,
    record: bool = False,
    keypoint_rows_only: bool = True,
    device: Union[str, torch.device] = "cpu",
) -> Prediction:
    """Run the model on an RGB uint8 image [H, W, 3] of any size."""
    batch, letterboxed, box = prepare_input(rgb, model.image_size)
    inputs = batch.to(device)
    cross = self_attention = None
    if record:
        with AttentionRecorder(model, keypoint_rows_only=keypoint_rows_only) as recorder:
            heatmaps = model(inputs)
        cross = recorder.stacked("cross", batch_index=0).numpy()
        self_attention = recorder.stacked("self", batch_index=0).numpy()
    else:
        heatmaps = model(inputs)
    heatmaps = heatmaps[0].float().cpu().numpy()
    keypoints_input, peaks = decode_heatmaps(heatmaps, model.image_size)
    return Prediction(
        letterboxed_rgb=letterboxed,
        letterbox=box,
        input_tensor=batch,
        heatmaps=heatmaps,
        keypoints_input=keypoints_input,
        keypoints_image=box.to_original(keypoints_input),
        peak_values=peaks,
        cross_attention=cross,
        self_attention=self_attention,
    )
