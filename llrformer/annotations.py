"""Read LabelMe and X-AnyLabeling landmark annotations into the canonical 36-landmark order.

A landmark is a `point` shape, or a `circle` shape whose first point is the centre, with a
landmark name as label. Other shapes (lines, polygons, rectangles, ...) and other keys are
kept out of the landmarks and never rejected. Every landmark that cannot be trusted
(absent, duplicated at different positions, outside the image, non-numeric) is marked
missing: NaN coordinates and `visible` False, with a note in `Annotation.problems`.
docs/inputs.md lists the behaviour for each case.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import UserError
from .keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

PathLike = Union[str, os.PathLike]

LANDMARK_SHAPE_TYPES = ("point", "circle")
# Points at most this many pixels outside the image are moved onto its border.
BORDER_TOLERANCE_PX = 1.0
# Two labels of one landmark closer than this many pixels count as the same point.
DUPLICATE_TOLERANCE_PX = 1.0

_NAME_BY_LOWER = {name.lower(): name for name in KEYPOINT_NAMES}
_INDEX_BY_NAME = {name: index for index, name in enumerate(KEYPOINT_NAMES)}


@dataclass
class Annotation:
    """The landmarks of one annotation file, in canonical order.

    `keypoints` is [36, 2] float64 (x, y) in pixels of the original image, NaN where
    `visible` ([36] bool) is False. `problems` are notes without the file name, and they
    include the unknown labels as well.
    """

    path: Path
    keypoints: np.ndarray
    visible: np.ndarray
    image_size: Optional[Tuple[int, int]]
    pixel_spacing_mm: Optional[float]
    unknown_labels: List[str]
    problems: List[str]
    image_path: Optional[str] = None
    ignored_shapes: List[str] = field(default_factory=list)

    @property
    def missing_names(self) -> List[str]:
        """Names of the landmarks that are missing or invalid, in canonical order."""
        return [name for name, seen in zip(KEYPOINT_NAMES, self.visible) if not seen]

    def report_lines(self) -> List[str]:
        """Return one "file: problem" line per problem, for logs and reports."""
        return [f"{self.path}: {problem}" for problem in self.problems]


def canonical_name(label: Any) -> Optional[str]:
    """Return the landmark name a label stands for, or None.

    Surrounding spaces and letter case are ignored, so " r_fc" is R_FC.
    """
    if not isinstance(label, str):
        return None
    return _NAME_BY_LOWER.get(label.strip().lower())


def landmark_index(shape: Any) -> Optional[int]:
    """Return the canonical index of a point or circle shape with a landmark label, or None."""
    if not isinstance(shape, dict) or _shape_type(shape) not in LANDMARK_SHAPE_TYPES:
        return None
    name = canonical_name(shape.get("label"))
    return None if name is None else _INDEX_BY_NAME[name]


def find_annotation(image_path: PathLike) -> Optional[Path]:
    """Return the annotation of an image, or None when it has none.

    Looks for ../annotations/<stem>.json (the data/<split>/images layout) first, then for
    <stem>.json beside the image.
    """
    image = Path(image_path)
    candidates = (
        image.parent.parent / "annotations" / f"{image.stem}.json",
        image.with_suffix(".json"),
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def read_annotation(path: PathLike, image_path: Optional[PathLike] = None) -> Annotation:
    """Read one LabelMe / X-AnyLabeling JSON file.

    `image_path` is the image the annotation is used with. Its name is compared with the
    stored `imagePath`. Without it, the annotation file's own name is used instead, as in
    the data/<split>/{images,annotations} layout.

    Raises UserError when the file is missing, not JSON, or has no `shapes` list. Every
    other defect becomes a note in `problems` and, where it affects a landmark, marks
    that landmark missing.
    """
    source = Path(path)
    document = _load_document(source)
    problems: List[str] = []
    image_size = _image_size(document, problems)
    annotation = Annotation(
        path=source,
        keypoints=np.full((NUM_KEYPOINTS, 2), np.nan),
        visible=np.zeros(NUM_KEYPOINTS, dtype=bool),
        image_size=image_size,
        pixel_spacing_mm=_pixel_spacing(document, problems),
        unknown_labels=[],
        problems=problems,
        image_path=_image_path(document, source, image_path, problems),
    )
    candidates = _collect_landmarks(document["shapes"], annotation)
    for index, points in sorted(candidates.items()):
        _place_landmark(annotation, index, points)

    if annotation.unknown_labels:
        problems.append(_unknown_labels_note(annotation.unknown_labels))
    missing = annotation.missing_names
    if missing:
        problems.append(f"landmarks marked missing ({len(missing)}): {', '.join(missing)}")
    return annotation


def image_size_mismatch(
    annotation: Annotation, size: Tuple[int, int], orientation: int = 1
) -> Optional[str]:
    """Compare imageWidth/imageHeight with a decoded image size (width, height).

    Returns None when they agree or the annotation has no size, else a message that names
    the annotation file and explains what the difference suggests. `orientation` is the
    EXIF orientation applied to the image (`LoadedImage.exif_orientation`).
    """
    if annotation.image_size is None or tuple(annotation.image_size) == tuple(size):
        return None
    (width, height), (image_width, image_height) = annotation.image_size, size
    prefix = (
        f"{annotation.path}: imageWidth x imageHeight is {width} x {height}, but the image "
        f"is {image_width} x {image_height}"
    )
    if (width, height) == (image_height, image_width):
        turned = f" after its EXIF orientation {orientation}" if orientation != 1 else ""
        return (
            f"{prefix}{turned}: width and height are swapped, so the annotation was made on "
            "the image turned by 90 degrees; annotate the image as a viewer shows it"
        )
    # A resize rounds each side to whole pixels. The factor taken from the longer side is
    # then exact to 0.5 pixel there, so the shorter side must match it to within 1 pixel.
    if height >= width:
        factor = image_height / height
        off_by = abs(image_width - width * factor)
    else:
        factor = image_width / width
        off_by = abs(image_height - height * factor)
    if off_by <= 1.0:
        return (
            f"{prefix}: the image was resized by {factor:.4g} after annotation; scale the "
            "coordinates by that factor or annotate the resized image"
        )
    return f"{prefix}: the annotation may belong to another image; check the file names"


def _load_document(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise UserError(f"annotation {path} not found; check the path")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise UserError(
            f"annotation {path} cannot be read ({error.strerror}); check that it is readable"
        ) from None
    except UnicodeDecodeError as error:
        raise UserError(
            f"annotation {path} is not UTF-8 text (invalid byte at offset {error.start}); "
            "save it as UTF-8 JSON"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(
            f"annotation {path} is not valid JSON ({error.msg} at line {error.lineno} column "
            f"{error.colno}); fix the file or annotate the image again"
        ) from None
    if not isinstance(document, dict):
        raise UserError(
            f"annotation {path} contains a JSON {type(document).__name__}, not an object; expected "
            "a LabelMe or X-AnyLabeling file with a 'shapes' list"
        )
    if not isinstance(document.get("shapes"), list):
        found = (
            "no 'shapes' key" if "shapes" not in document else "a 'shapes' value that is not a list"
        )
        raise UserError(
            f"annotation {path} has {found}; expected a LabelMe or X-AnyLabeling file with a "
            "'shapes' list"
        )
    return document


def _image_size(document: Dict[str, Any], problems: List[str]) -> Optional[Tuple[int, int]]:
    width, height = document.get("imageWidth"), document.get("imageHeight")
    if _is_positive_integer(width) and _is_positive_integer(height):
        return int(width), int(height)
    problems.append(
        f"imageWidth/imageHeight missing or invalid ({width!r} x {height!r}); coordinates are "
        "checked only for negative values"
    )
    return None


def _is_positive_integer(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value > 0 and float(value).is_integer()


def _pixel_spacing(document: Dict[str, Any], problems: List[str]) -> Optional[float]:
    if "pixel_spacing_mm" not in document or document["pixel_spacing_mm"] is None:
        return None
    value = document["pixel_spacing_mm"]
    if _is_number(value) and value > 0:
        return float(value)
    problems.append(f"pixel_spacing_mm {value!r} is not a positive number; ignored")
    return None


def _image_path(
    document: Dict[str, Any],
    source: Path,
    image_path: Optional[PathLike],
    problems: List[str],
) -> Optional[str]:
    stored = document.get("imagePath")
    if not isinstance(stored, str) or not stored:
        return None
    # LabelMe on Windows stores backslashes.
    stored_stem = Path(stored.replace("\\", "/")).stem
    if image_path is not None:
        image = Path(image_path)
        if stored_stem != image.stem:
            problems.append(
                f"imagePath {stored!r} does not match the image {image.name}; ignored, the "
                f"annotation is used with {image.name}"
            )
    elif stored_stem != source.stem:
        problems.append(
            f"imagePath {stored!r} does not match the file name; ignored, the image is the "
            f"one named {source.stem}.*"
        )
    return stored


def _shape_type(shape: Dict[str, Any]) -> Optional[str]:
    shape_type = shape.get("shape_type")
    if shape_type is None and isinstance(shape.get("points"), list):
        return "point" if len(shape["points"]) == 1 else None
    return shape_type.strip().lower() if isinstance(shape_type, str) else None


def _collect_landmarks(
    shapes: Sequence[Any], annotation: Annotation
) -> Dict[int, List[Tuple[float, float]]]:
    """Return the valid (x, y) of every landmark shape by canonical index.

    Invalid shapes, unknown labels and other shape types are recorded in `annotation`.
    """
    candidates: Dict[int, List[Tuple[float, float]]] = {}
    for number, shape in enumerate(shapes, start=1):
        if not isinstance(shape, dict):
            annotation.problems.append(f"shape {number} is not a JSON object; ignored")
            continue
        label = shape.get("label")
        shape_type = _shape_type(shape)
        name = canonical_name(label)
        if shape_type not in LANDMARK_SHAPE_TYPES:
            annotation.ignored_shapes.append(f"{shape_type or 'untyped'} {label!r}")
            if name is not None:
                annotation.problems.append(
                    f"{name} is a {shape_type or 'untyped'} shape, not a point or circle; ignored"
                )
            continue
        if name is None:
            text = label if isinstance(label, str) else repr(label)
            if text not in annotation.unknown_labels:
                annotation.unknown_labels.append(text)
            continue
        if label != name:
            annotation.problems.append(f"label {label!r} read as {name}")
        point = _shape_point(shape, name, annotation.problems)
        if point is not None:
            candidates.setdefault(_INDEX_BY_NAME[name], []).append(point)
    return candidates


def _shape_point(
    shape: Dict[str, Any], name: str, problems: List[str]
) -> Optional[Tuple[float, float]]:
    """Return the point (or circle centre) of a shape, or None with a note if invalid."""
    points = shape.get("points")
    if not isinstance(points, list) or not points:
        problems.append(f"{name} has no points; marked missing")
        return None
    first = points[0]
    valid = isinstance(first, (list, tuple)) and len(first) == 2 and all(map(_is_number, first))
    if not valid:
        problems.append(f"{name} has invalid coordinates {first!r}; marked missing")
        return None
    if _shape_type(shape) == "point" and len(points) > 1:
        problems.append(f"{name} point shape has {len(points)} points; the first is used")
    return float(first[0]), float(first[1])


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def _place_landmark(annotation: Annotation, index: int, points: List[Tuple[float, float]]) -> None:
    """Store the landmark at `index` unless its points disagree or lie outside the image."""
    name = KEYPOINT_NAMES[index]
    x, y = points[0]
    if len(points) > 1:
        spread = max(math.dist(points[0], other) for other in points[1:])
        listed = ", ".join(f"({px:.1f}, {py:.1f})" for px, py in points)
        if spread > DUPLICATE_TOLERANCE_PX:
            annotation.problems.append(
                f"{name} is labelled {len(points)} times at different positions ({listed}); "
                "marked missing"
            )
            return
        annotation.problems.append(
            f"{name} is labelled {len(points)} times at the same position; the first is used"
        )

    position = _inside_image(x, y, annotation.image_size)
    if position is None:
        size = annotation.image_size
        extent = f"the {size[0]} x {size[1]} image" if size else "the image"
        annotation.problems.append(
            f"{name} at ({x:.1f}, {y:.1f}) is outside {extent}; marked missing"
        )
        return
    if position != (x, y):
        annotation.problems.append(
            f"{name} at ({x:.2f}, {y:.2f}) is just outside the image; moved onto the border"
        )
    annotation.keypoints[index] = position
    annotation.visible[index] = True


def _inside_image(
    x: float, y: float, size: Optional[Tuple[int, int]]
) -> Optional[Tuple[float, float]]:
    """Return (x, y) clipped to the image when within the border tolerance, else None."""
    width, height = size if size is not None else (math.inf, math.inf)
    tolerance = BORDER_TOLERANCE_PX
    if not (-tolerance <= x <= width + tolerance and -tolerance <= y <= height + tolerance):
        return None
    return min(max(x, 0.0), width), min(max(y, 0.0), height)


def _unknown_labels_note(labels: Sequence[str]) -> str:
    described = []
    for label in labels:
        guesses = difflib.get_close_matches(label.strip(), KEYPOINT_NAMES, n=1, cutoff=0.75)
        described.append(f"{label!r} (did you mean {guesses[0]}?)" if guesses else repr(label))
    return (
        f"labels that are not landmark names ({len(labels)}): {', '.join(described)}; "
        "they are not read as landmarks"
    )
