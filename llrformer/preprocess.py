"""Letterboxing, ImageNet normalisation and the coordinate mappings between them.

Coordinates are (x, y) pixels. "Input" pixels are those of the letterboxed model input of
MODEL.IMAGE_SIZE; "original" pixels are those of the image as read from disk. torch is
imported only by the functions that make tensors, so that figure workers, which receive
Letterbox objects, never import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Tuple

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Letterbox:
    """How an original image was scaled and padded into the model input."""

    scale: float
    pad_left: int
    pad_top: int
    new_w: int
    new_h: int
    input_w: int
    input_h: int
    original_w: int
    original_h: int

    @classmethod
    def fit(cls, original_size: Tuple[int, int], input_size: Tuple[int, int]) -> Letterbox:
        """Compute the letterbox of an original (width, height) into an input (width, height)."""
        original_w, original_h = original_size
        input_w, input_h = input_size
        scale = min(input_w / original_w, input_h / original_h)
        new_w, new_h = int(original_w * scale), int(original_h * scale)
        return cls(
            scale=scale,
            pad_left=(input_w - new_w) // 2,
            pad_top=(input_h - new_h) // 2,
            new_w=new_w,
            new_h=new_h,
            input_w=input_w,
            input_h=input_h,
            original_w=original_w,
            original_h=original_h,
        )

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """Map original-image points [..., 2] (x, y) to letterboxed input pixels."""
        points = np.asarray(points, dtype=np.float64)
        return points * self.scale + np.array([self.pad_left, self.pad_top], dtype=np.float64)

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Map letterboxed input points [..., 2] (x, y) back to original-image pixels."""
        points = np.asarray(points, dtype=np.float64)
        return (points - np.array([self.pad_left, self.pad_top], dtype=np.float64)) / self.scale


def letterbox_image(rgb: np.ndarray, input_size: Tuple[int, int]) -> Tuple[np.ndarray, Letterbox]:
    """Resize `rgb` [H, W, 3] uint8 to fit `input_size` (width, height) and pad with black."""
    height, width = rgb.shape[:2]
    box = Letterbox.fit((width, height), input_size)
    resized = cv2.resize(rgb, (box.new_w, box.new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((box.input_h, box.input_w, 3), dtype=np.uint8)
    canvas[box.pad_top : box.pad_top + box.new_h, box.pad_left : box.pad_left + box.new_w] = resized
    return canvas, box


def normalize_image(rgb: np.ndarray) -> torch.Tensor:
    """Turn a uint8 RGB image [H, W, 3] into an ImageNet-normalised float tensor [3, H, W]."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return tensor.sub_(mean).div_(std)


def denormalize_image(tensor: torch.Tensor) -> np.ndarray:
    """Invert `normalize_image`: [3, H, W] float tensor to uint8 RGB [H, W, 3]."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (tensor.detach().cpu() * std + mean).clamp(0, 1).mul(255).round()
    return rgb.permute(1, 2, 0).to(torch.uint8).numpy()


def prepare_input(
    rgb: np.ndarray, input_size: Tuple[int, int]
) -> Tuple[torch.Tensor, np.ndarray, Letterbox]:
    """Letterbox and normalise an RGB image for the model.

    Returns the batch tensor [1, 3, H, W], the letterboxed uint8 RGB image and the letterbox.
    """
    letterboxed, box = letterbox_image(rgb, input_size)
    return normalize_image(letterboxed).unsqueeze(0), letterboxed, box
