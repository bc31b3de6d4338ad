"""Annotation reader on LabelMe / X-AnyLabeling files, clean and hostile."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from llrformer.annotations import (
    find_annotation,
    image_size_mismatch,
    landmark_index,
    read_annotation,
)
from llrformer.errors import run_cli
from llrformer.keypoints import KEYPOINT_NAMES

WIDTH, HEIGHT = 2800, 7600


def landmark_positions() -> np.ndarray:
    """Return [36, 2] distinct (x, y) positions inside a 2800 x 7600 image."""
    index = np.arange(36)
    x = np.where(index % 2 == 0, 900.0, 1900.0) + index * 3.25
    y = 400.0 + index * 190.5
    return np.stack([x, y], axis=1)


def labelme_document(**top_level) -> dict:
    """Return a complete LabelMe 5 document with the 36 landmarks as point shapes."""
    shapes = [
        {
            "label": name,
            "points": [[float(x), float(y)]],
            "group_id": None,
            "description": "",
            "shape_type": "point",
            "flags": {},
            "mask": None,
        }
        for name, (x, y) in zip(KEYPOINT_NAMES, landmark_positions())
    ]
    document = {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": "..\\images\\case 01.png",
        "imageData": None,
        "imageHeight": HEIGHT,
        "imageWidth": WIDTH,
    }
    document.update(top_level)
    return document


def write_json(path: Path, document) -> Path:
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def shape_of(document: dict, name: str) -> dict:
    return next(shape for shape in document["shapes"] if shape["label"] == name)


@pytest.fixture
def annotation_path(tmp_path) -> Path:
    return tmp_path / "case 01.json"


# ---------------------------------------------------------------- clean inputs


def test_complete_labelme_file(annotation_path):
    annotation = read_annotation(write_json(annotation_path, labelme_document()))
    np.testing.assert_array_equal(annotation.keypoints, landmark_positions())
    assert annotation.keypoints.shape == (36, 2)
    assert annotation.keypoints.dtype == np.float64
    assert annotation.visible.all()
    assert annotation.image_size == (WIDTH, HEIGHT)
    assert annotation.problems == []
    assert annotation.unknown_labels == []
    assert annotation.pixel_spacing_mm is None
    assert annotation.path == annotation_path


def test_shuffled_labels_same_keypoints(annotation_path):
    document = labelme_document()
    np.random.default_rng(3).shuffle(document["shapes"])
    annotation = read_annotation(write_json(annotation_path, document))
    np.testing.assert_array_equal(annotation.keypoints, landmark_positions())
    assert annotation.problems == []


def test_x_anylabeling_file_with_circles(annotation_path):
    document = labelme_document(version="2.4.4", text="", description="")
    for shape in document["shapes"]:
        shape.update(score=0.93, difficult=False, attributes={}, kie_linking=[])
    x, y = shape_of(document, "R_FC")["points"][0]
    shape_of(document, "R_FC").update(shape_type="circle", points=[[x, y], [x + 230.0, y]])
    annotation = read_annotation(write_json(annotation_path, document))
    np.testing.assert_array_equal(annotation.keypoints[0], [x, y])
    assert annotation.visible.all()
    assert annotation.problems == []


def test_extra_keys_and_embedded_image(annotation_path):
    ok, png = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    document = labelme_document(
        imageData=base64.b64encode(png.tobytes()).decode("ascii"),
        pixel_spacing_mm=0.1237,
        phantom={"seed": 7, "varus_deg": 2.5},
        custom_key=[1, 2, 3],
    )
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.visible.all()
    assert annotation.pixel_spacing_mm == pytest.approx(0.1237)
    assert annotation.problems == []


def test_other_shape_types_ignored(annotation_path):
    document = labelme_document()
    document["shapes"][3:3] = [
        {"label": "HKA axis", "points": [[1, 2], [3, 4]], "shape_type": "line"},
        {"label": "implant", "points": [[1, 2], [3, 4], [5, 1]], "shape_type": "polygon"},
        {"label": "ruler", "points": [[1, 2], [30, 40]], "shape_type": "rectangle"},
    ]
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.visible.all()
    assert annotation.ignored_shapes == [
        "line 'HKA axis'",
        "polygon 'implant'",
        "rectangle 'ruler'",
    ]
    assert annotation.unknown_labels == []
    assert annotation.problems == []


def test_untyped_single_point_read_as_point(annotation_path):
    document = labelme_document()
    del shape_of(document, "L_GT")["shape_type"]
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.visible[3]


def test_utf8_bom_accepted(annotation_path):
    text = json.dumps(labelme_document())
    annotation_path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_annotation(annotation_path).visible.all()


def test_landmark_index_of_shapes():
    assert landmark_index({"label": " l_fc", "shape_type": "point"}) == 1
    assert landmark_index({"label": "R_FC", "shape_type": "circle"}) == 0
    assert landmark_index({"label": "R_FC", "shape_type": "line"}) is None
    assert landmark_index({"label": "R_FCC", "shape_type": "point"}) is None
    assert landmark_index(["R_FC"]) is None


# ---------------------------------------------------------------- defects that mark landmarks


def drop(name):
    def mutate(document):
        document["shapes"].remove(shape_of(document, name))

    return mutate


def set_points(name, points):
    def mutate(document):
        shape_of(document, name)["points"] = points

    return mutate


def add_shape(shape):
    def mutate(document):
        document["shapes"].append(shape)

    return mutate


def set_shape_type(name, shape_type):
    def mutate(document):
        shape_of(document, name)["shape_type"] = shape_type

    return mutate


# (case, change to the clean document, landmarks marked missing, expected note)
MARKED_MISSING = [
    ("absent", drop("R_LLP"), ["R_LLP"], "landmarks marked missing (1): R_LLP"),
    (
        "duplicate elsewhere",
        add_shape({"label": "L_IF", "points": [[10.0, 20.0]], "shape_type": "point"}),
        ["L_IF"],
        "L_IF is labelled 2 times at different positions (",
    ),
    (
        "far outside",
        set_points("R_DMP", [[3100.0, 7000.0]]),
        ["R_DMP"],
        "R_DMP at (3100.0, 7000.0) is outside the 2800 x 7600 image; marked missing",
    ),
    (
        "negative",
        set_points("R_GT", [[-40.0, 500.0]]),
        ["R_GT"],
        "R_GT at (-40.0, 500.0) is outside",
    ),
    (
        "string coordinate",
        set_points("L_MPC", [["1200.5", 3000.0]]),
        ["L_MPC"],
        "L_MPC has invalid coordinates ['1200.5', 3000.0]; marked missing",
    ),
    ("null coordinate", set_points("L_ME", [[None, 3.0]]), ["L_ME"], "L_ME has invalid"),
    ("boolean coordinate", set_points("L_ME", [[True, 3.0]]), ["L_ME"], "L_ME has invalid"),
    ("one number", set_points("L_ME", [[12.0]]), ["L_ME"], "L_ME has invalid coordinates"),
    ("no points", set_points("R_IR", []), ["R_IR"], "R_IR has no points; marked missing"),
    ("points not a list", set_points("R_IR", "12,14"), ["R_IR"], "R_IR has no points"),
    (
        "polygon with landmark label",
        set_shape_type("R_FC", "polygon"),
        ["R_FC"],
        "R_FC is a polygon shape, not a point or circle; ignored",
    ),
    (
        "typo label",
        lambda document: shape_of(document, "R_FC").update(label="R_FCC"),
        ["R_FC"],
        "labels that are not landmark names (1): 'R_FCC' (did you mean R_FC?)",
    ),
]


@pytest.mark.parametrize(
    "case, mutate, missing, note", MARKED_MISSING, ids=[row[0] for row in MARKED_MISSING]
)
def test_defect_marks_landmark_missing(annotation_path, case, mutate, missing, note):
    document = labelme_document()
    mutate(document)
    annotation = read_annotation(write_json(annotation_path, document))

    assert annotation.missing_names == missing
    for name in missing:
        index = KEYPOINT_NAMES.index(name)
        assert not annotation.visible[index]
        assert np.isnan(annotation.keypoints[index]).all()
    assert annotation.visible.sum() == 36 - len(missing)
    assert any(note in problem for problem in annotation.problems), annotation.problems
    assert f"{annotation_path}: " in annotation.report_lines()[0]


def test_nan_literal_marks_missing(annotation_path):
    text = json.dumps(labelme_document()).replace("[[900.0, 400.0]]", "[[NaN, 400.0]]", 1)
    annotation_path.write_text(text, encoding="utf-8")
    annotation = read_annotation(annotation_path)
    assert annotation.missing_names == ["R_FC"]
    assert "R_FC has invalid coordinates [nan, 400.0]; marked missing" in annotation.problems


def test_unknown_labels_listed_once(annotation_path):
    document = labelme_document()
    document["shapes"] += [
        {"label": "R_FCC", "points": [[5.0, 5.0]], "shape_type": "point"},
        {"label": "R_FCC", "points": [[6.0, 5.0]], "shape_type": "point"},
        {"label": "patella", "points": [[7.0, 5.0]], "shape_type": "circle"},
    ]
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.unknown_labels == ["R_FCC", "patella"]
    assert annotation.visible.all()
    assert annotation.problems == [
        "labels that are not landmark names (2): 'R_FCC' (did you mean R_FC?), 'patella'; "
        "they are not read as landmarks"
    ]


# ---------------------------------------------------------------- defects that keep landmarks


def test_duplicate_at_same_position_kept(annotation_path):
    document = labelme_document()
    duplicate = copy.deepcopy(shape_of(document, "L_DLP"))
    duplicate["points"][0][0] += 0.4
    document["shapes"].append(duplicate)
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.visible.all()
    np.testing.assert_array_equal(annotation.keypoints, landmark_positions())
    assert annotation.problems == [
        "L_DLP is labelled 2 times at the same position; the first is used"
    ]


def test_point_just_outside_moved_to_border(annotation_path):
    document = labelme_document()
    shape_of(document, "R_DMP")["points"] = [[2800.6, 7600.2]]
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.visible.all()
    np.testing.assert_array_equal(annotation.keypoints[34], [2800.0, 7600.0])
    assert "moved onto the border" in annotation.problems[0]


def test_label_case_and_spaces_accepted(annotation_path):
    document = labelme_document()
    shape_of(document, "L_LPC")["label"] = " l_lpc"
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.visible.all()
    assert annotation.problems == ["label ' l_lpc' read as L_LPC"]


def test_stale_image_path_noted(annotation_path):
    document = labelme_document(imagePath="C:\\scans\\old_export_0001.jpg")
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.visible.all()
    assert annotation.image_path == "C:\\scans\\old_export_0001.jpg"
    assert annotation.problems == [
        "imagePath 'C:\\\\scans\\\\old_export_0001.jpg' does not match the file name; ignored, "
        "the image is the one named case 01.*"
    ]


def test_missing_image_size_still_checks_negatives(annotation_path):
    document = labelme_document(imageWidth="2800")
    del document["imageHeight"]
    shape_of(document, "R_FC")["points"] = [[-5.0, 10.0]]
    shape_of(document, "L_FC")["points"] = [[99999.0, 10.0]]
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.image_size is None
    assert annotation.missing_names == ["R_FC"]
    assert annotation.problems[0].startswith("imageWidth/imageHeight missing or invalid")


def test_invalid_pixel_spacing_ignored(annotation_path):
    document = labelme_document(pixel_spacing_mm="0.12 mm")
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.pixel_spacing_mm is None
    assert annotation.problems == ["pixel_spacing_mm '0.12 mm' is not a positive number; ignored"]


def test_non_object_shape_ignored(annotation_path):
    document = labelme_document()
    document["shapes"].insert(0, "R_FC")
    annotation = read_annotation(write_json(annotation_path, document))
    assert annotation.visible.all()
    assert annotation.problems == ["shape 1 is not a JSON object; ignored"]


# ---------------------------------------------------------------- unreadable files

UNREADABLE = [
    ("missing.json", None, "not found; check the path"),
    ("empty.json", b"", "is not valid JSON (Expecting value at line 1 column 1)"),
    ("comma.json", b'{"shapes": [],\n}', "is not valid JSON (Expecting property name"),
    (
        "latin1.json",
        '{"label": "Mädchen"}'.encode("latin-1"),
        "is not UTF-8 text (invalid byte at offset 12)",
    ),
    ("list.json", b"[1, 2]", "contains a JSON list, not an object"),
    ("no shapes.json", b'{"imagePath": "a.png"}', "has no 'shapes' key"),
    ("bad shapes.json", b'{"shapes": {"R_FC": [1, 2]}}', "a 'shapes' value that is not a list"),
]


@pytest.mark.parametrize("name, content, expected", UNREADABLE, ids=[row[0] for row in UNREADABLE])
def test_unreadable_annotation_one_line(tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)

    status = run_cli(lambda argv: read_annotation(path) and 0, program="read_annotation")

    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"read_annotation: error: annotation {path} ")
    assert expected in lines[0]


# ---------------------------------------------------------------- finding and size checks


def test_find_annotation_data_layout(tmp_path):
    images = tmp_path / "data" / "train" / "images"
    annotations = tmp_path / "data" / "train" / "annotations"
    images.mkdir(parents=True)
    annotations.mkdir()
    image = images / "Bein 07.final.png"
    assert find_annotation(image) is None

    beside = write_json(images / "Bein 07.final.json", {})
    assert find_annotation(image) == beside

    layout = write_json(annotations / "Bein 07.final.json", {})
    assert find_annotation(image) == layout


def test_size_mismatch_messages(annotation_path):
    annotation = read_annotation(write_json(annotation_path, labelme_document()))
    assert image_size_mismatch(annotation, (WIDTH, HEIGHT)) is None

    swapped = image_size_mismatch(annotation, (HEIGHT, WIDTH), orientation=6)
    assert str(annotation_path) in swapped
    assert "after its EXIF orientation 6: width and height are swapped" in swapped

    resized = image_size_mismatch(annotation, (1400, 3800))
    assert "the image was resized by 0.5 after annotation" in resized

    # A resize rounds each side to whole pixels, so one side may be a pixel off. A side that
    # is 11 pixels (1 %) off belongs to another image of similar size.
    assert "resized by 0.4 after" in image_size_mismatch(annotation, (1120, 3040))
    assert "resized by" in image_size_mismatch(annotation, (1121, 3040))
    assert "may belong to another image" in image_size_mismatch(annotation, (1131, 3040))

    other = image_size_mismatch(annotation, (3000, 3000))
    assert "imageWidth x imageHeight is 2800 x 7600, but the image is 3000 x 3000" in other
    assert "may belong to another image" in other

    annotation.image_size = None
    assert image_size_mismatch(annotation, (1, 1)) is None
