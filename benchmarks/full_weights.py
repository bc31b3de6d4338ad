"""A checkpoint of the full published configuration with deterministic weights, for benchmarks.

The weights come from `make_weights.py` of the reference vectors (looked for in
../shared/reference beside the repository, or in LLRFORMER_REFERENCE_DIR), so timings are
measured on the same numbers the published implementation was compared on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from llrformer.config import load_config  # noqa: E402
from llrformer.errors import UserError  # noqa: E402
from llrformer.model import build_model  # noqa: E402

FULL_CONFIG = REPO_ROOT / "configs" / "llrformer.yaml"
CACHE_DIR = REPO_ROOT / "output" / "benchmark"


def reference_dir() -> Path:
    return Path(
        os.environ.get("LLRFORMER_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference")
    )


def full_weights_path() -> Path:
    """Return the path of the full-model checkpoint, writing it on first use (about 1 GB RAM)."""
    path = CACHE_DIR / "llrformer_make_weights.pth"
    if path.is_file():
        return path
    make_weights = reference_dir() / "make_weights.py"
    if not make_weights.is_file():
        raise UserError(
            f"make_weights.py not found in {reference_dir()}; set "
            "LLRFORMER_REFERENCE_DIR to the folder of the reference vectors"
        )
    sys.path.insert(0, str(make_weights.parent))
    from make_weights import deterministic_state_dict

    model = build_model(load_config(FULL_CONFIG))
    state = deterministic_state_dict(model.state_dict(), seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    temporary.replace(path)
    return path


def phantom_sized_image(path: Path) -> Path:
    """Write a 1,040 x 2,900 grey radiograph-like test image (the size of the golden input)."""
    import cv2
    import numpy as np

    if not path.is_file():
        rng = np.random.default_rng(0)
        image = np.full((2900, 1040), 70, np.uint8)
        image[100:2800, 250:420] = 180
        image[100:2800, 620:790] = 180
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)
    return path


if __name__ == "__main__":
    print(full_weights_path())
