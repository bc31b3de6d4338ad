"""Shared fixtures: a tiny LLRFormer config and checkpoint, and small test images."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# The golden vectors of the published implementation; tests that need them skip without them.
REFERENCE_DIR = Path(
    os.environ.get("LLRFORMER_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference")
)
sys.path.insert(0, str(REPO_ROOT))

from llrformer.config import load_config  # noqa: E402
from llrformer.model import build_model  # noqa: E402

# 48 x 96 input -> 12 x 24 feature map -> a non-square 4 x 3 grid of 6 x 4 patches.
TINY_CONFIG = """\
MODEL:
  NAME: llrformer
  NUM_JOINTS: 36
  IMAGE_SIZE: [48, 96]
  HEATMAP_SIZE: [12, 24]
  PATCH_SIZE: [6, 4]
  SIGMA: 2
  DIM: 16
  TRANSFORMER_HEADS: 2
  TRANSFORMER_MLP_RATIO: 2
  CROSS_SELF_ATTENTION_LAYERS: 2
  EXTRA:
    STAGE2: {NUM_MODULES: 1, NUM_BRANCHES: 2, BLOCK: BASIC, NUM_BLOCKS: [1, 1],
             NUM_CHANNELS: [8, 8], FUSE_METHOD: SUM}
    STAGE3: {NUM_MODULES: 1, NUM_BRANCHES: 3, BLOCK: BASIC, NUM_BLOCKS: [1, 1, 1],
             NUM_CHANNELS: [8, 8, 8], FUSE_METHOD: SUM}
"""


@pytest.fixture
def tiny_config_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture
def tiny_checkpoint(tiny_config_path: Path, tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model(load_config(tiny_config_path))
    path = tmp_path / "tiny_model_best.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def tall_image(tmp_path: Path) -> Path:
    """A 61 x 170 grey gradient with a bright bar, saved as PNG."""
    rng = np.random.default_rng(0)
    image = np.tile(np.linspace(20, 200, 61, dtype=np.uint8), (170, 1))
    image[40:60, 10:50] = 250
    image = np.clip(image + rng.integers(0, 10, image.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "tall image.png"
    cv2.imwrite(str(path), image)
    return path


def python_output(code: str) -> str:
    """Run `code` in a fresh Python process at the repository root and return its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout
