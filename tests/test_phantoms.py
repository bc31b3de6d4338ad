"""Tests of the phantom radiograph generator: determinism, landmark geometry, files, tool."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from llrformer.errors import run_cli  # noqa: E402
from llrformer.keypoints import KEYPOINT_NAMES  # noqa: E402
from llrformer.phantoms import (  # noqa: E402
    PhantomCase,
    case_rng,
    generate_case,
    write_dataset,
)

TOOL = REPO_ROOT / "tools" / "make_phantoms.py"
SIDES = {"right": "R_", "left": "L_"}


def _point(case: PhantomCase, name: str) -> np.ndarray:
    return case.keypoints[KEYPOINT_NAMES.index(name)]


def _leg_points(case: PhantomCase, side: str) -> dict:
    prefix = SIDES[side]
    return {name[2:]: _point(case, name) for name in KEYPOINT_NAMES if name.startswith(prefix)}


def _load_tool():
    spec = importlib.util.spec_from_file_location("make_phantoms", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def geometry_cases():
    """Thirty cases without images: landmark geometry only."""
    return [generate_case(case_rng(5, "train", index), render=False) for index in range(30)]


@pytest.fixture(scope="module")
def rendered_case():
    return generate_case(case_rng(11, "val", 0))


def test_generate_case_same_seed_same_output():
    first = generate_case(np.random.default_rng(123))
    second = generate_case(np.random.default_rng(123))
    assert first.image.tobytes() == second.image.tobytes()
    assert np.array_equal(first.keypoints, second.keypoints)
    assert first.truth == second.truth


def test_generate_case_other_seed_differs():
    first = generate_case(np.random.default_rng(123), render=False)
    second = generate_case(np.random.default_rng(124), render=False)
    assert not np.allclose(first.keypoints, second.keypoints)


def test_case_image_format(rendered_case):
    image = rendered_case.image
    assert image.dtype == np.uint8
    assert image.ndim == 2
    assert 2600 <= image.shape[0] <= 3800
    assert 900 <= image.shape[1] <= 1400
    assert rendered_case.keypoints.shape == (36, 2)
    assert rendered_case.keypoints.dtype == np.float64


def test_keypoints_inside_image(geometry_cases):
    for case in geometry_cases:
        margin = 10.0
        assert case.keypoints.min() >= margin
        assert (case.keypoints[:, 0] <= case.view.width - margin).all()
        assert (case.keypoints[:, 1] <= case.view.height - margin).all()


def test_right_leg_on_image_left(geometry_cases):
    for case in geometry_cases:
        assert _point(case, "R_FC")[0] < 0.5 * case.view.width < _point(case, "L_FC")[0]
        for index in range(0, 36, 2):
            right, left = case.keypoints[index, 0], case.keypoints[index + 1, 0]
            assert right + 40.0 < left, KEYPOINT_NAMES[index]


def test_femoral_head_centre_in_head(geometry_cases):
    for case in geometry_cases:
        for side, prefix in SIDES.items():
            head = case.body.legs[side].femoral_head
            centre = case.view.to_image(head.centre)
            radius = head.radius / case.pixel_spacing_mm
            fc = _point(case, prefix + "FC")
            assert np.linalg.norm(fc - centre) < 0.1 * radius
            # The neck edges lie just outside the head sphere, on the neck.
            for name in ("FNeck_Cut_Up", "FNeck_Cut_Down"):
                distance = np.linalg.norm(_point(case, prefix + name) - fc)
                assert 0.5 * radius < distance < 2.0 * radius, name


def test_neck_edges_and_trochanter(geometry_cases):
    for case in geometry_cases:
        midline = 0.5 * (_point(case, "R_FC")[0] + _point(case, "L_FC")[0])
        for side in SIDES:
            leg = _leg_points(case, side)
            assert leg["FNeck_Cut_Up"][1] < leg["FNeck_Cut_Down"][1]
            assert abs(leg["GT"][0] - midline) > abs(leg["FC"][0] - midline) + 20.0
            assert abs(leg["GT"][1] - leg["FC"][1]) < 25.0 / case.pixel_spacing_mm


def _inside_shaft(case: PhantomCase, shaft, point: np.ndarray) -> tuple:
    """Return (distance from the axis, axial fraction) of a pixel point in a world shaft."""
    start, end = case.view.to_image(shaft.proximal), case.view.to_image(shaft.distal)
    axis = end - start
    fraction = float(np.dot(point - start, axis) / np.dot(axis, axis))
    foot = start + fraction * axis
    return float(np.linalg.norm(point - foot)) * case.pixel_spacing_mm, fraction


def test_shaft_axis_points_in_medullary_canal(geometry_cases):
    for case in geometry_cases:
        for side, prefix in SIDES.items():
            leg = case.body.legs[side]
            for shaft, names in ((leg.femoral_shaft, ("Cdy_Up", "Cdy_Down")),
                                 (leg.tibial_shaft, ("Cyd_Up", "Cyd_Down"))):  # fmt: skip
                assert 0.0 < shaft.canal_radius < shaft.outer_radius
                for name in names:
                    distance_mm, fraction = _inside_shaft(case, shaft, _point(case, prefix + name))
                    assert distance_mm < shaft.canal_radius, name
                    assert 0.0 < fraction < 1.0, name


def test_landmarks_in_proximal_to_distal_order(geometry_cases):
    order = ("FC", "Cdy_Up", "Cdy_Down", "IF", "IR", "Cyd_Up", "Cyd_Down")
    for case in geometry_cases:
        for side in SIDES:
            leg = _leg_points(case, side)
            heights = [leg[name][1] for name in order]
            assert heights == sorted(heights), side
            assert leg["Cyd_Down"][1] < min(leg["DLP"][1], leg["DMP"][1])


def test_knee_and_ankle_landmarks_ordered(geometry_cases):
    for case in geometry_cases:
        for side in SIDES:
            leg = _leg_points(case, side)
            lateral = -1.0 if side == "right" else 1.0  # image x direction away from the midline

            def lateral_of(a: str, b: str) -> bool:
                return (leg[a][0] - leg[b][0]) * lateral > 0  # noqa: B023

            for outer, inner in (("LLP", "IF"), ("IF", "MLP"), ("LPC", "IR"), ("IR", "MPC"),
                                 ("LE", "ME"), ("DLP", "DMP")):  # fmt: skip
                assert lateral_of(outer, inner), (outer, inner)
            # The notch top lies above the condyles, the condyles above the plateau corners,
            # and the tibial edges below the corners.
            assert leg["IF"][1] < min(leg["LLP"][1], leg["MLP"][1])
            assert leg["LLP"][1] < leg["LPC"][1]
            assert leg["MLP"][1] < leg["MPC"][1]
            assert leg["LE"][1] > leg["LPC"][1]
            assert leg["ME"][1] > leg["MPC"][1]
            assert leg["IR"][1] < max(leg["LPC"][1], leg["MPC"][1])


def _hka_from_points(leg: dict, side: str) -> float:
    """HKA from image points, computed independently of the generator's code."""
    mirror = -1.0 if side == "right" else 1.0  # makes +x lateral for both legs
    femoral = (leg["IF"] - leg["FC"]) * np.array([mirror, 1.0])
    tibial = (0.5 * (leg["DLP"] + leg["DMP"]) - leg["IR"]) * np.array([mirror, 1.0])
    # Lean from vertical towards lateral, in degrees; varus turns the tibia medially.
    femoral_lean = np.degrees(np.arctan2(femoral[0], femoral[1]))
    tibial_lean = np.degrees(np.arctan2(tibial[0], tibial[1]))
    return 180.0 + (tibial_lean - femoral_lean)


def test_stored_hka_matches_landmarks(geometry_cases):
    for case in geometry_cases:
        for side in SIDES:
            leg = _leg_points(case, side)
            stored = case.truth["hka_deg"][side]
            assert abs(_hka_from_points(leg, side) - stored) < 0.05
            assert 160.0 < stored < 200.0


def test_hka_sign_follows_knee_position(geometry_cases):
    """Varus (HKA below 180) puts the knee lateral of the hip-ankle line."""
    checked = 0
    for case in geometry_cases:
        for side in SIDES:
            leg = _leg_points(case, side)
            hka = case.truth["hka_deg"][side]
            if abs(hka - 180.0) < 1.0:
                continue
            ankle = 0.5 * (leg["DLP"] + leg["DMP"])
            fraction = (leg["IF"][1] - leg["FC"][1]) / (ankle[1] - leg["FC"][1])
            line_x = leg["FC"][0] + fraction * (ankle[0] - leg["FC"][0])
            lateral = -1.0 if side == "right" else 1.0
            knee_lateral = (leg["IF"][0] - line_x) * lateral > 0
            assert knee_lateral == (hka < 180.0)
            checked += 1
    assert checked > 10


def test_truth_angles_in_normal_ranges(geometry_cases):
    ranges = {"mldfa_deg": (78, 93), "mpta_deg": (76, 93), "ldta_deg": (84, 94),
              "neck_shaft_deg": (115, 145), "anatomic_mechanical_deg": (3, 9),
              "femur_length_mm": (390, 520), "tibia_length_mm": (300, 450)}  # fmt: skip
    for case in geometry_cases:
        for name, (low, high) in ranges.items():
            for side in SIDES:
                assert low < case.truth[name][side] < high, (name, side)
        assert 160 < case.truth["hip_distance_mm"] < 215


def test_radiograph_contrast(rendered_case):
    """Bone cortex is brighter than the soft tissue beside it, air darker than both."""
    case, image = rendered_case, rendered_case.image.astype(np.float64)
    shaft = case.body.legs["left"].femoral_shaft
    start, end = case.view.to_image(shaft.proximal), case.view.to_image(shaft.distal)
    middle = 0.5 * (start + end)
    axis = (end - start) / np.linalg.norm(end - start)
    normal = np.array([-axis[1], axis[0]])
    px = 1.0 / case.pixel_spacing_mm
    edge = shaft.outer_radius - 0.5 * (shaft.outer_radius - shaft.canal_radius)

    def mean_at(offset_mm: float) -> float:
        x, y = np.round(middle + offset_mm * px * normal).astype(int)
        return float(image[y - 8 : y + 9, x - 3 : x + 4].mean())

    cortex = 0.5 * (mean_at(edge) + mean_at(-edge))
    canal = mean_at(0.0)
    soft = 0.5 * (mean_at(shaft.outer_radius + 15.0) + mean_at(-shaft.outer_radius - 15.0))
    assert cortex > canal + 5.0
    assert canal > soft + 5.0
    ankles = 0.5 * (_point(case, "R_DMP") + _point(case, "L_DMP"))
    x, y = np.round(ankles).astype(int)
    air = float(image[y - 10 : y + 10, x - 3 : x + 4].mean())
    assert air < soft - 30.0


def test_metal_implant_saturates():
    for index in range(200):
        case = generate_case(case_rng(7, "train", index), render=False)
        if case.body.metal:
            break
    else:
        pytest.fail("no case with an implant among 200")
    case = generate_case(case_rng(7, "train", index))
    part = case.body.metal[0]
    mask = np.zeros(case.image.shape, np.uint8)
    for polygon in part.polygons:
        cv2.fillPoly(mask, [np.round(case.view.to_image(polygon)).astype(np.int32)], 1)
    inner = cv2.erode(mask, np.ones((5, 5), np.uint8))
    assert inner.sum() > 50
    assert np.median(case.image[inner > 0]) >= 245
    assert case.truth["implants"][0]["type"] == part.kind


def test_write_dataset_files_and_schema(tmp_path):
    summary = write_dataset(tmp_path / "data", {"train": 2, "val": 1}, seed=3, workers=1)
    assert summary["images"] == 3
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "phantoms.json",
        "train",
        "val",
    ]
    annotation_path = tmp_path / "data" / "train" / "annotations" / "phantom_train_0001.json"
    document = json.loads(annotation_path.read_text())
    image = cv2.imread(str(annotation_path.parent / document["imagePath"]), cv2.IMREAD_UNCHANGED)
    assert image is not None
    assert document["version"] == "5.2.1"
    assert document["imageData"] is None
    assert document["imagePath"] == "../images/phantom_train_0001.jpg"
    assert (document["imageHeight"], document["imageWidth"]) == image.shape[:2]
    assert [shape["label"] for shape in document["shapes"]] == list(KEYPOINT_NAMES)
    for shape in document["shapes"]:
        is_head = shape["label"].endswith("_FC")
        assert shape["shape_type"] == ("circle" if is_head else "point")
        assert len(shape["points"]) == (2 if is_head else 1)
        assert shape["group_id"] is None
    circle = document["shapes"][0]["points"]
    assert 15.0 < circle[1][0] - circle[0][0] < 120.0  # head radius in pixels
    assert 0.2 < document["pixel_spacing_mm"] < 0.45
    phantom = document["phantom"]
    assert (phantom["seed"], phantom["split"], phantom["index"]) == (3, "train", 1)
    assert set(phantom["hka_deg"]) == {"right", "left"}
    assert "varus" in phantom["hka_convention"]
    assert isinstance(phantom["implants"], list)


def test_write_dataset_identical_across_workers(tmp_path):
    counts = {"train": 2, "test": 1}
    write_dataset(tmp_path / "a", counts, seed=9, workers=1)
    write_dataset(tmp_path / "b", counts, seed=9, workers=2)
    write_dataset(tmp_path / "c", counts, seed=10, workers=1)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert len(files) == 7
    for relative in files:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()
    image = Path("train/images/phantom_train_0000.jpg")
    assert (tmp_path / "a" / image).read_bytes() != (tmp_path / "c" / image).read_bytes()


def test_rerun_removes_stale_phantoms_only(tmp_path):
    out = tmp_path / "data"
    write_dataset(out, {"train": 3}, seed=0, workers=1)
    user_file = out / "train" / "images" / "my_xray.jpg"
    user_file.write_bytes(b"user data")
    tool = _load_tool()
    assert run_cli(tool.main, ["--out", str(out), "--train", "1", "--val", "0", "--test", "0",
                               "--quiet"], program="make_phantoms.py") == 2  # fmt: skip
    assert run_cli(tool.main, ["--out", str(out), "--train", "1", "--val", "0", "--test", "0",
                               "--quiet", "--force"], program="make_phantoms.py") == 0  # fmt: skip
    names = sorted(p.name for p in (out / "train" / "images").iterdir())
    assert names == ["my_xray.jpg", "phantom_train_0000.jpg"]
    assert user_file.read_bytes() == b"user data"


@pytest.mark.parametrize(
    "arguments",
    [
        ["--train", "0", "--val", "0", "--test", "0"],
        ["--train", "-2"],
        ["--train", "many"],
        ["--seed", "-1"],
        ["--unknown-option"],
    ],
)
def test_tool_bad_arguments_exit_2(tmp_path, capsys, arguments):
    tool = _load_tool()
    status = run_cli(tool.main, ["--out", str(tmp_path / "out"), *arguments],
                     program="make_phantoms.py")  # fmt: skip
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("make_phantoms.py: error: ")
    assert not (tmp_path / "out").exists()


def test_tool_rejects_foreign_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    tool = _load_tool()
    status = run_cli(tool.main, ["--out", str(tmp_path), "--train", "1", "--quiet"],
                     program="make_phantoms.py")  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1
    assert "notes.txt" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_tool_unwritable_output_exit_2(tmp_path, capsys):
    (tmp_path / "plain_file").write_text("not a folder")
    tool = _load_tool()
    status = run_cli(tool.main, ["--out", str(tmp_path / "plain_file" / "data"), "--train", "1",
                                 "--quiet"], program="make_phantoms.py")  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1
    assert "cannot prepare output folder" in lines[0]


def test_tool_script_runs_from_repository_root(tmp_path):
    result = subprocess.run(
        [sys.executable, str(TOOL), "--out", str(tmp_path / "d"), "--train", "1", "--val", "0",
         "--test", "0", "--workers", "1", "--quiet"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote 1 train" in result.stdout
    assert (tmp_path / "d" / "train" / "images" / "phantom_train_0000.jpg").is_file()
