"""Training on tiny data sets: run folder, resume, evaluation, pretrained backbone, targets,
augmentation, loss weights, and one-line errors for bad data."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, TINY_CONFIG

from llrformer.checkpoint import load_model, read_checkpoint
from llrformer.config import load_config
from llrformer.data import AugmentationSettings, augment, make_targets, uses_subpixel_targets
from llrformer.decode import decode_heatmaps
from llrformer.errors import UserError, run_cli
from llrformer.keypoints import KEYPOINT_NAMES, LOSS_GROUPS
from llrformer.model import build_model
from llrformer.training import WeightedHeatmapLoss, joint_weights, load_pretrained_backbone

TRAIN_TOOL = REPO_ROOT / "tools" / "train.py"
EVALUATE_TOOL = REPO_ROOT / "tools" / "evaluate.py"


def _load_tool(path: Path):
    spec = importlib.util.spec_from_file_location(f"tool_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_tool = _load_tool(TRAIN_TOOL)
evaluate_tool = _load_tool(EVALUATE_TOOL)


def _leg_points(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """36 landmarks from hip to ankle, right leg on the viewer's left, jittered."""
    right = np.stack([np.full(18, 0.3 * width), np.linspace(0.05, 0.95, 18) * height], axis=1)
    points = np.repeat(right, 2, axis=0)
    points[1::2, 0] = width - points[1::2, 0]
    return points + rng.normal(0, 2, points.shape)


def write_phantom(folder: Path, name: str, rng: np.random.Generator, labels=None) -> None:
    """Write a 60 x 170 grey image with a bright dot per landmark and its LabelMe file."""
    width, height = 60, 170
    image = np.full((height, width), 30, np.uint8)
    points = _leg_points(rng, width, height)
    for x, y in points:
        cv2.circle(image, (int(x), int(y)), 2, 220, -1)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "images" / f"{name}.png"), image)
    shapes = [
        {"label": label, "points": [[float(x), float(y)]], "shape_type": "point"}
        for label, (x, y) in zip(labels or KEYPOINT_NAMES, points)
    ]
    document = {
        "shapes": shapes,
        "imageWidth": width,
        "imageHeight": height,
        "imagePath": f"{name}.png",
        "pixel_spacing_mm": 0.5,
    }
    (folder / "annotations" / f"{name}.json").write_text(json.dumps(document))


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for split, count in (("train", 4), ("val", 2), ("test", 2)):
        for index in range(count):
            write_phantom(root / split, f"{split}{index}", rng)
    return root


def write_config(tmp_path: Path, data: Path, extra: str = "", name: str = "tiny_run") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        TINY_CONFIG
        + f"OUTPUT_DIR: {tmp_path / 'output'}\nWORKERS: 0\n"
        + f"DATASET: {{ROOT: {data}, TRAIN_SET: train, TEST_SET: val, FLIP: true}}\n"
        + "TRAIN: {BATCH_SIZE_PER_GPU: 2, END_EPOCH: 3, OPTIMIZER: adamw, LR: 0.001}\n"
        + "TEST: {BATCH_SIZE_PER_GPU: 2}\n"
        + extra
    )
    return path


def run_dir_of(tmp_path: Path, name: str = "tiny_run") -> Path:
    return tmp_path / "output" / "MyKeypointDataset" / "llrformer" / name


def run_tool(tool, argv, capsys):
    status = run_cli(tool.main, [str(item) for item in argv], program=Path(tool.__file__).name)
    return status, capsys.readouterr()


# --- training runs ------------------------------------------------------------------------------


def test_two_steps_write_run_folder(tmp_path, data_root):
    config = write_config(tmp_path, data_root)
    result = subprocess.run(
        [sys.executable, str(TRAIN_TOOL), "--cfg", str(config), "--max-steps", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr

    run_dir = run_dir_of(tmp_path)
    cfg = load_config(run_dir / "config.yaml")
    assert cfg.MODEL.IMAGE_SIZE == [48, 96]
    for name in ("model_best.pth", "final_state.pth"):
        model = load_model(cfg, run_dir / name)
        assert model.num_keypoints == 36
        assert all(isinstance(v, torch.Tensor) for v in torch.load(run_dir / name).values())
    checkpoint = read_checkpoint(run_dir / "checkpoint.pth")
    for key in ("epoch", "state_dict", "best_state_dict", "optimizer", "scheduler", "perf"):
        assert key in checkpoint
    assert checkpoint["epoch"] == 1
    assert checkpoint["step"] == 2
    assert checkpoint["model"] == "llrformer"
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    assert [record["step"] for record in history] == [2]
    assert np.isfinite(history[0]["train_loss"])
    assert "val_mre_px" in history[0]
    log = (run_dir / "train.log").read_text()
    assert "epoch 1/3" in log
    assert "stopped after 2 steps" in log


def test_resume_continues_run(tmp_path, data_root, capsys):
    config = write_config(tmp_path, data_root)
    status, _ = run_tool(train_tool, ["--cfg", config, "--max-steps", "2"], capsys)
    assert status == 0
    run_dir = run_dir_of(tmp_path)
    first = read_checkpoint(run_dir / "checkpoint.pth")

    status, _ = run_tool(train_tool, ["--cfg", config, "--resume", "--max-steps", "1"], capsys)

    assert status == 0
    second = read_checkpoint(run_dir / "checkpoint.pth")
    assert second["epoch"] == 2
    assert second["step"] == 3
    assert not torch.equal(
        first["state_dict"]["transformer.kp_init"], second["state_dict"]["transformer.kp_init"]
    )
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    assert [record["epoch"] for record in history] == [1, 2]
    assert (run_dir / "train.log").read_text().count(" on cpu: ") == 2


def test_resume_with_other_optimizer_settings(tmp_path, data_root, capsys):
    config = write_config(tmp_path, data_root)
    assert run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)[0] == 0
    text = config.read_text().replace(
        "TRAIN: {", "TRAIN: {LR_SCHEDULER: ReduceLROnPlateau, PATIENCE: 1, "
    )
    config.write_text(text)

    status, _ = run_tool(train_tool, ["--cfg", config, "--resume", "--max-steps", "1"], capsys)

    assert status == 0
    run_dir = run_dir_of(tmp_path)
    checkpoint = read_checkpoint(run_dir / "checkpoint.pth")
    assert checkpoint["scheduler_name"] == "ReduceLROnPlateau"
    assert checkpoint["epoch"] == 2
    assert "schedule starts again" in (run_dir / "train.log").read_text()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_other_optimizers_train(tmp_path, data_root, capsys, optimizer):
    config = write_config(tmp_path, data_root)
    config.write_text(config.read_text().replace("OPTIMIZER: adamw", f"OPTIMIZER: {optimizer}"))

    status, _ = run_tool(train_tool, ["--cfg", config, "--max-steps", "2"], capsys)

    assert status == 0
    history = json.loads((run_dir_of(tmp_path) / "metrics.json").read_text())["history"]
    assert np.isfinite(history[0]["train_loss"])


def test_fresh_run_keeps_earlier_run(tmp_path, data_root, capsys):
    config = write_config(tmp_path, data_root)
    assert run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)[0] == 0
    best = run_dir_of(tmp_path) / "model_best.pth"
    before = best.read_bytes()

    status, output = run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)

    assert status == 2
    assert "--resume" in output.err
    assert best.read_bytes() == before


def test_run_without_weights_restarts(tmp_path, data_root, capsys):
    config = write_config(tmp_path, data_root)
    assert run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)[0] == 0
    run_dir = run_dir_of(tmp_path)
    # What a run stopped during its first epoch leaves: a config and a log, no weights.
    for name in ("model_best.pth", "final_state.pth", "checkpoint.pth", "metrics.json"):
        (run_dir / name).unlink()

    status, output = run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)

    assert status == 0, output.err
    assert (run_dir / "model_best.pth").is_file()
    assert (run_dir / "train.log").read_text().count(" on cpu: ") == 2


def test_interrupt_is_logged(tmp_path, data_root, capsys, monkeypatch):
    import llrformer.training as training

    config = write_config(tmp_path, data_root)
    assert run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)[0] == 0

    def press_ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_one_epoch", press_ctrl_c)
    status, _ = run_tool(train_tool, ["--cfg", config, "--resume"], capsys)

    assert status == 130
    last_line = (run_dir_of(tmp_path) / "train.log").read_text().splitlines()[-1]
    assert last_line.endswith("interrupted; train.py --resume continues from the last saved epoch")


def test_evaluate_out_dir_file_fails_early(tmp_path, data_root, capsys):
    config = write_config(tmp_path, data_root)
    assert run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)[0] == 0
    not_a_folder = tmp_path / "results.txt"
    not_a_folder.write_text("notes\n")

    status, output = run_tool(
        evaluate_tool, ["--cfg", config, "--out-dir", not_a_folder, "--device", "cpu"], capsys
    )

    assert status == 2
    assert f"--out-dir {not_a_folder} is a file; pass a folder" in output.err
    # The error comes before the split is read, which logs a line about its images.
    assert "images," not in output.err
    assert not_a_folder.read_text() == "notes\n"


def test_evaluate_writes_reports(tmp_path, data_root, capsys):
    config = write_config(tmp_path, data_root)
    assert run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)[0] == 0
    # A newer run of another config must not be picked up for this config.
    newer = write_config(tmp_path, data_root, name="newer_run")
    assert run_tool(train_tool, ["--cfg", newer, "--max-steps", "1"], capsys)[0] == 0

    status, output = run_tool(
        evaluate_tool, ["--cfg", config, "--split", "test", "--device", "cpu"], capsys
    )

    assert status == 0, output.err
    out_dir = run_dir_of(tmp_path) / "eval_test"
    landmark_lines = (out_dir / "per_landmark.csv").read_text().splitlines()
    assert len(landmark_lines) == 1 + 36
    assert "PCK@2% of height (1.9 px)" in landmark_lines[0]
    regions = (out_dir / "per_region.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in regions[1:]] == [
        "hip", "femoral shaft", "knee", "tibial shaft", "ankle", "all"
    ]  # fmt: skip
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["checkpoint"] == str(run_dir_of(tmp_path) / "model_best.pth")
    assert summary["images"] == 2
    assert summary["overall"]["landmarks_evaluated"] == 72
    assert summary["overall"]["mre_mm"] == pytest.approx(
        summary["overall"]["mre_original_px"] * 0.5
    )
    assert summary["nme_normalised_by"].startswith("letterboxed input height (96 px)")
    image = cv2.imread(str(out_dir / "errors_by_landmark.png"))
    assert image is not None
    assert image.shape[1] > 1000
    assert "all" in output.out


# --- bad input ----------------------------------------------------------------------------------


def _expect_one_line_error(tmp_path, config, capsys, fragment):
    status, output = run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)
    errors = [line for line in output.err.splitlines() if line.startswith("train.py: error:")]
    assert status == 2
    assert len(errors) == 1, output.err
    assert fragment in errors[0]
    assert "Traceback" not in output.err
    assert not run_dir_of(tmp_path).exists()


def test_unknown_label_names_file(tmp_path, data_root, capsys):
    labels = list(KEYPOINT_NAMES)
    labels[5] = "knee_thing"
    write_phantom(data_root / "train", "odd", np.random.default_rng(1), labels)
    config = write_config(tmp_path, data_root)
    _expect_one_line_error(tmp_path, config, capsys, "odd.json")


def test_image_without_annotation_names_file(tmp_path, data_root, capsys):
    (data_root / "train" / "annotations" / "train1.json").unlink()
    config = write_config(tmp_path, data_root)
    _expect_one_line_error(tmp_path, config, capsys, "train1.png has no annotation")


def test_empty_split_names_folder(tmp_path, data_root, capsys):
    for image in (data_root / "val" / "images").iterdir():
        image.unlink()
    config = write_config(tmp_path, data_root)
    _expect_one_line_error(tmp_path, config, capsys, f"{data_root / 'val'} is empty")


def test_num_joints_mismatch_names_config(tmp_path, data_root, capsys):
    config = write_config(tmp_path, data_root)
    config.write_text(config.read_text().replace("NUM_JOINTS: 36", "NUM_JOINTS: 17"))
    _expect_one_line_error(tmp_path, config, capsys, f"{config}: MODEL.NUM_JOINTS is 17")


def test_missing_pretrained_file_names_it(tmp_path, data_root, capsys):
    missing = tmp_path / "hrnet_w32.pth"
    config = write_config(tmp_path, data_root)
    text = config.read_text().replace(
        "  NUM_JOINTS: 36", f"  NUM_JOINTS: 36\n  PRETRAINED: {missing}"
    )
    config.write_text(text)
    _expect_one_line_error(tmp_path, config, capsys, f"{missing} not found")


# --- pretrained backbone ------------------------------------------------------------------------


def _imagenet_style_file(model, path: Path) -> dict:
    """Write the backbone in the public HRNet key format, plus head and foreign tensors."""
    state = {
        key: torch.full_like(value, 0.25) if value.is_floating_point() else value
        for key, value in model.pre_feature.state_dict().items()
    }
    state["incre_modules.0.0.conv1.weight"] = torch.ones(32, 32, 1, 1)
    state["classifier.weight"] = torch.ones(1000, 2048)
    state["stage4.0.branches.0.0.conv1.weight"] = torch.ones(32, 32, 3, 3)
    state["layer1.0.conv1.weight"] = torch.ones(7, 7, 1, 1)  # another network's shape
    torch.save(state, path)
    return state


def test_pretrained_takes_listed_layers(tmp_path):
    cfg = load_config(write_config(tmp_path, tmp_path))
    torch.manual_seed(0)
    model = build_model(cfg)
    path = tmp_path / "hrnet_w32_imagenet.pth"
    _imagenet_style_file(model, path)
    stage3_before = model.pre_feature.stage3.state_dict()["0.branches.0.0.conv1.weight"].clone()
    layers = ["conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2"]

    counts = load_pretrained_backbone(model, path, layers)

    backbone = model.pre_feature.state_dict()
    assert torch.all(backbone["conv1.weight"] == 0.25)
    assert torch.all(backbone["stage2.0.fuse_layers.0.1.0.weight"] == 0.25)
    assert torch.all(backbone["layer1.1.conv2.weight"] == 0.25)
    assert not torch.all(backbone["layer1.0.conv1.weight"] == 0.25)
    assert torch.equal(backbone["stage3.0.branches.0.0.conv1.weight"], stage3_before)
    assert counts["wrong_shape"] == 1
    assert counts["not_in_layers"] > 3
    assert counts["loaded"] > 20


def test_pretrained_without_fitting_tensor_fails(tmp_path):
    cfg = load_config(write_config(tmp_path, tmp_path))
    model = build_model(cfg)
    path = tmp_path / "other.pth"
    torch.save({"classifier.weight": torch.ones(3, 3)}, path)
    with pytest.raises(UserError, match="no tensor that fits the backbone"):
        load_pretrained_backbone(model, path, ["*"])


def test_training_logs_pretrained_counts(tmp_path, data_root, capsys):
    cfg = load_config(write_config(tmp_path, data_root))
    path = tmp_path / "hrnet_w32_imagenet.pth"
    _imagenet_style_file(build_model(cfg), path)
    config = write_config(tmp_path, data_root, name="pretrained_run")
    text = config.read_text().replace("  NUM_JOINTS: 36", f"  NUM_JOINTS: 36\n  PRETRAINED: {path}")
    config.write_text(text)

    status, _ = run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)

    assert status == 0
    log = (run_dir_of(tmp_path, "pretrained_run") / "train.log").read_text()
    assert "pretrained backbone" in log
    assert "outside MODEL.EXTRA.PRETRAINED_LAYERS" in log


# --- targets, augmentation and loss -------------------------------------------------------------


def test_targets_peak_at_truncated_cell():
    keypoints = np.array([[13.9, 30.2], [0.5, 95.9], [20.0, 50.0], [48.0, 10.0]])
    visible = np.array([True, True, False, True])

    target, weight = make_targets(keypoints, visible, (48, 96), (12, 24), sigma=2)

    assert target.shape == (4, 24, 12)
    row, col = np.unravel_index(target[0].argmax(), target[0].shape)
    assert (col, row) == (int(13.9 * 12 / 48), int(30.2 * 24 / 96))
    assert target[0, row, col] == pytest.approx(1.0)
    assert target[0, row, col + 1] == pytest.approx(np.exp(-1 / 8))
    row, col = np.unravel_index(target[1].argmax(), target[1].shape)
    assert (col, row) == (0, 23)
    assert weight.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert not target[2].any()
    assert not target[3].any()


def test_subpixel_targets_decode_to_keypoints():
    rng = np.random.default_rng(3)
    keypoints = rng.uniform([8, 8], [40, 88], size=(36, 2))
    visible = np.ones(36, bool)

    target, weight = make_targets(keypoints, visible, (48, 96), (12, 24), 2, subpixel=True)
    published, _ = make_targets(keypoints, visible, (48, 96), (12, 24), 2)
    decoded, peaks = decode_heatmaps(target, (48, 96))
    decoded_published, _ = decode_heatmaps(published, (48, 96))

    assert weight.tolist() == [1.0] * 36
    # A heatmap cell is 4 input pixels wide, so 0.15 px is about 0.04 cell. The worst case is
    # a keypoint 1.5 cells from the border, whose Gaussian the border cuts.
    assert np.abs(decoded - keypoints).max() < 0.15
    assert np.all(peaks > 0.8)
    # The published targets move each peak by up to one cell, and the decoder cannot undo it.
    assert np.abs(decoded_published - keypoints).max() > 1.0


def test_subpixel_target_centres_on_keypoint():
    # Heatmap cells are 4 input pixels wide. x = 10 is the centre of cell 2 and x = 11 a
    # quarter cell to its right. y = 14 is the centre of row 3.
    keypoints = np.array([[10.0, 14.0], [11.0, 14.0]])
    target, _ = make_targets(keypoints, np.ones(2, bool), (48, 96), (12, 24), 2, subpixel=True)

    centred, shifted = target[0, 3], target[1, 3]
    assert centred[2] == pytest.approx(1.0)
    assert centred[1] == pytest.approx(centred[3], rel=1e-6)
    assert centred[0] == pytest.approx(centred[4], rel=1e-6)
    assert shifted[2] == pytest.approx(np.exp(-(0.25**2) / 8), rel=1e-6)
    assert shifted[3] == pytest.approx(np.exp(-(0.75**2) / 8), rel=1e-6)
    assert target[1, :, 2].argmax() == 3


def test_target_type_names_are_checked(tmp_path):
    config = tmp_path / "targets.yaml"
    config.write_text(
        TINY_CONFIG.replace("  SIGMA: 2", "  SIGMA: 2\n  TARGET_TYPE: gaussian_subpixel")
    )
    assert uses_subpixel_targets(load_config(config))
    config.write_text(TINY_CONFIG.replace("  SIGMA: 2", "  SIGMA: 2\n  TARGET_TYPE: gaussian"))
    assert not uses_subpixel_targets(load_config(config))

    config.write_text(TINY_CONFIG.replace("  SIGMA: 2", "  SIGMA: 2\n  TARGET_TYPE: offset"))
    with pytest.raises(UserError, match="MODEL.TARGET_TYPE 'offset' is not supported"):
        uses_subpixel_targets(load_config(config))


def test_unknown_target_type_stops_training(tmp_path, data_root, capsys):
    config = write_config(tmp_path, data_root)
    config.write_text(config.read_text().replace("  SIGMA: 2", "  SIGMA: 2\n  TARGET_TYPE: offset"))

    status, output = run_tool(train_tool, ["--cfg", config, "--max-steps", "1"], capsys)

    assert status == 2
    assert "MODEL.TARGET_TYPE 'offset' is not supported" in output.err
    assert not run_dir_of(tmp_path).exists()


def _dots(points: np.ndarray, size=(48, 96), values=None) -> np.ndarray:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    for index, (x, y) in enumerate(points):
        value = 255 if values is None else values[index]
        image[int(y), int(x)] = value
    return cv2.GaussianBlur(image, (0, 0), 1.0)


def test_flip_swaps_left_and_right():
    rows = np.repeat(5.5 + 5 * np.arange(18), 2)
    points = np.stack([np.tile([10.5, 37.5], 18), rows], axis=1)
    values = [255 if index == 0 else 0 for index in range(36)]
    image = _dots(points, values=values)
    settings = AugmentationSettings(flip=True)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        flipped, moved, visible = augment(image, points, np.ones(36, bool), rng, settings)
        if not np.array_equal(flipped, image):
            break

    # The dot drawn at R_FC (viewer's left) is now on the viewer's right, where L_FC belongs.
    assert np.allclose(moved[1], [48 - 10.5, 5.5])
    assert np.allclose(moved[0], [48 - 37.5, 5.5])
    x, y = moved[1].astype(int)
    assert flipped[y, x, 0] == image.max()
    assert visible.all()


def test_rotation_and_scale_keep_landmarks_on_dots():
    grid_x, grid_y = np.meshgrid([9.5, 19.5, 29.5, 39.5], 8.5 + 10 * np.arange(9))
    points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    image = _dots(points)
    settings = AugmentationSettings(scale_factor=0.2, rotation_degrees=10)
    checked = 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        warped, moved, _ = augment(image, points, np.ones(36, bool), rng, settings)
        assert not np.allclose(moved, points)
        for x, y in moved:
            column, row = int(x), int(y)
            if not (4 <= column < 44 and 4 <= row < 92):
                continue
            window = warped[row - 3 : row + 4, column - 3 : column + 4, 0].astype(float)
            offsets = np.arange(-3, 4) + 0.5
            # Intensity centroid of the dot, in the same pixel convention as the keypoints.
            centre_x = column + (window.sum(axis=0) * offsets).sum() / window.sum()
            centre_y = row + (window.sum(axis=1) * offsets).sum() / window.sum()
            assert abs(centre_x - x) < 0.25
            assert abs(centre_y - y) < 0.25
            checked += 1
    assert checked > 100


def test_joint_weights_use_published_groups(tmp_path, caplog):
    cfg = load_config(write_config(tmp_path, tmp_path))
    assert joint_weights(cfg) is None
    cfg.TRAIN.JOINT_WEIGHTS = True
    cfg.TRAIN.FEMUR_TIBIA_WEIGHT = 3.0

    with caplog.at_level("INFO", logger="llrformer.training"):
        weights = joint_weights(cfg)

    assert "0-9 x 1.5, 10-17 x 3, 18-25 x 1, 26-33 x 3, 34-35 x 1.3" in caplog.text
    assert "differ from the anatomical regions" in caplog.text

    expected = {"HIP_WEIGHT": 1.5, "FEMUR_WEIGHT": 3.0, "KNEE_WEIGHT": 1.0,
                "TIBIA_WEIGHT": 3.0, "ANKLE_WEIGHT": 1.3}  # fmt: skip
    for key, first, last in LOSS_GROUPS:
        assert torch.allclose(weights[first : last + 1], torch.tensor(expected[key]))


def test_loss_ignores_zero_weight_landmarks():
    target = torch.zeros(1, 3, 4, 4)
    predicted = torch.zeros(1, 3, 4, 4)
    predicted[0, 2] = 5.0
    weight = torch.tensor([[1.0, 1.0, 0.0]])
    loss = WeightedHeatmapLoss()
    assert loss(predicted, target, weight).item() == 0.0

    predicted[0, 0, 0, 0] = 2.0
    assert loss(predicted, target, weight).item() == pytest.approx(0.5 * 4 / 16 / 3)
    weighted = WeightedHeatmapLoss(torch.tensor([2.0, 1.0, 1.0]))
    assert weighted(predicted, target, weight).item() == pytest.approx(2 * 0.5 * 4 / 16 / 3)


# Runs a tool with an import hook that raises KeyboardInterrupt when torch is imported, as
# Ctrl-C during the seconds of that import would.
_INTERRUPT_TORCH_IMPORT = """
import runpy, sys

class InterruptTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            raise KeyboardInterrupt

sys.meta_path.insert(0, InterruptTorch())
sys.argv = [sys.argv[1], "--help"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("tool", ["train.py", "evaluate.py", "export_attention.py"])
def test_ctrl_c_during_torch_import(tool):
    path = REPO_ROOT / "tools" / tool
    result = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_TORCH_IMPORT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 130
    assert result.stderr == f"{tool}: interrupted\n"
