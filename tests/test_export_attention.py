"""tools/export_attention.py end to end, and its errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT

TOOL = REPO_ROOT / "tools" / "export_attention.py"
EXPECTED_KEYS = {
    "letterboxed_rgb", "heatmaps", "cross_attention", "self_attention_keypoint_rows",
    "patch_order", "vis_pos", "keypoint_tokens", "keypoints_input", "keypoints_image",
}  # fmt: skip


def run_tool(*args, cwd=REPO_ROOT):
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )  # fmt: skip


def test_single_image(tiny_config_path, tiny_checkpoint, tall_image, tmp_path):
    out = tmp_path / "result.npz"
    result = run_tool(
        "--config",
        tiny_config_path,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        tall_image,
        "--out",
        out,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr

    arrays = np.load(out)
    assert set(arrays.files) == EXPECTED_KEYS
    assert arrays["letterboxed_rgb"].shape == (96, 48, 3)
    assert arrays["heatmaps"].shape == (36, 24, 12)
    assert arrays["cross_attention"].shape == (2, 2, 36, 12)
    assert arrays["self_attention_keypoint_rows"].shape == (2, 2, 36, 48)
    assert arrays["patch_order"].shape == (12, 2)
    assert arrays["vis_pos"].shape == (12, 16)
    assert arrays["keypoint_tokens"].shape == (36, 16)
    assert np.allclose(arrays["cross_attention"].sum(-1), 1, atol=1e-5)

    # 61 x 170 image in a 48 x 96 input: scale 96 / 170, no vertical padding.
    scale = 96 / 170
    pad_left = (48 - int(61 * scale)) // 2
    expected = (arrays["keypoints_input"] - [pad_left, 0]) / scale
    assert np.allclose(arrays["keypoints_image"], expected)


def test_folder_gives_one_file_per_image(tiny_config_path, tiny_checkpoint, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(3):
        cv2.imwrite(str(images / f"case_{index}.png"), np.full((90, 40), 60 * index, np.uint8))
    out = tmp_path / "exports"
    result = run_tool(
        "--config",
        tiny_config_path,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        images,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["case_0.npz", "case_1.npz", "case_2.npz"]


def test_folder_skips_unreadable_image(tiny_config_path, tiny_checkpoint, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "good_0.png"), np.full((90, 40), 80, np.uint8))
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cv2.imwrite(str(images / "good_1.png"), np.full((90, 40), 160, np.uint8))
    out = tmp_path / "exports"

    result = run_tool(
        "--config", tiny_config_path, "--checkpoint", tiny_checkpoint,
        "--image", images, "--out", out,
    )  # fmt: skip

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["good_0.npz", "good_1.npz"]
    assert "skipped" in result.stderr
    assert "broken.png" in result.stderr
    assert "1 of 3 images could not be exported" in result.stderr


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing image", "image not found"),
        ("undecodable image", "tall image.png"),
        ("empty checkpoint", "is empty"),
        ("unknown key", "unknown config key MODEL.DIMS"),
        ("several images into one npz", "pass a folder as --out"),
        ("output folder is a file", "cannot access"),
    ],
)
def test_bad_input_one_line(case, message, tiny_config_path, tiny_checkpoint, tall_image, tmp_path):
    config, checkpoint, images, out = tiny_config_path, tiny_checkpoint, [tall_image], "x.npz"
    if case == "missing image":
        images = [tmp_path / "absent.png"]
    elif case == "undecodable image":
        tall_image.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    elif case == "empty checkpoint":
        checkpoint = tmp_path / "empty.pth"
        checkpoint.write_bytes(b"")
    elif case == "unknown key":
        config = tmp_path / "bad.yaml"
        config.write_text(tiny_config_path.read_text().replace("  DIM: 16", "  DIMS: 16"))
    elif case == "several images into one npz":
        images = [tall_image, tall_image.with_name("second.png")]
        cv2.imwrite(str(images[1]), np.zeros((20, 10), np.uint8))
    elif case == "output folder is a file":
        (tmp_path / "taken").write_text("a file of the user's")
        out = "taken/x.npz"

    result = run_tool(
        "--config", config, "--checkpoint", checkpoint, "--image", *images, "--out", tmp_path / out
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1
    assert message in error_lines[0]
    assert not (tmp_path / out).exists()
    if case == "output folder is a file":
        assert (tmp_path / "taken").read_text() == "a file of the user's"
