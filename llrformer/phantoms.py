"""Phantom full-length lower-limb AP radiographs with exact landmark truth.

`generate_case` draws one phantom: both legs from the pelvis to the ankles, with
varus/valgus alignment, limb lengths, pelvic width, neck-shaft angle, limb rotation,
image size, exposure, soft tissue, noise, blur and sometimes metal implants varying
between cases. `write_dataset` writes a data set in the layout the training tools read:

    OUT/{split}/images/phantom_{split}_{index:04d}.jpg
    OUT/{split}/annotations/phantom_{split}_{index:04d}.json   (LabelMe 5)

Each case is seeded from (seed, split, index), so the files do not depend on the number of
worker processes, and the same seed gives byte-identical files.

The images are smaller than clinical long-leg radiographs (about 2,800 x 7,600 pixels at
0.1237 mm), so their pixels are coarser: 0.24-0.44 mm, stored per image in the
annotation's `pixel_spacing_mm`.

Alignment convention (stored in each annotation): HKA is 180 degrees minus the signed
angle from the femoral mechanical axis (FC to IF) to the tibial mechanical axis (IR to
the ankle centre, the midpoint of DLP and DMP). 180 is a straight leg, below 180 is varus
and above 180 is valgus.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from .errors import UserError
from .fileio import atomic_path, write_text_atomic
from .keypoints import KEYPOINT_NAMES
from .phantom_body import SIDES, Body, sample_body
from .phantom_render import View, plan_view, render_radiograph, sample_appearance

logger = logging.getLogger(__name__)

SPLITS: Tuple[str, ...] = ("train", "val", "test")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
JPEG_QUALITY = 92
LABELME_VERSION = "5.2.1"
MANIFEST_NAME = "phantoms.json"
GENERATOR_VERSION = 1
HKA_CONVENTION = (
    "hka_deg = 180 - signed angle from the femoral mechanical axis (FC to IF) to the tibial "
    "mechanical axis (IR to the midpoint of DLP and DMP); 180 is straight, below 180 varus, "
    "above 180 valgus"
)
_PHANTOM_FILE = re.compile(r"^phantom_(train|val|test)_\d{4,}\.(jpg|json)$")
# Temporary files that an interrupted atomic write of a phantom or the manifest leaves.
_TEMPORARY_FILE = re.compile(r"^\.(phantoms|phantom_(train|val|test)_\d{4,})\..*\.tmp\.(jpg|json)$")

PathLike = Union[str, os.PathLike]


@dataclass
class PhantomCase:
    """One phantom radiograph with its landmark truth.

    `image` is uint8 [H, W] (grey). `keypoints` is float64 [36, 2]: (x, y) in continuous
    image pixels (pixel (i, j) covers [j, j + 1) x [i, i + 1)), in the order of
    `llrformer.keypoints.KEYPOINT_NAMES`. `truth` contains the alignment and other known
    values (angles in degrees, lengths in mm). `body` and `view` give the full geometry in
    world mm and its mapping to pixels, for checks.
    """

    image: np.ndarray
    keypoints: np.ndarray
    truth: Dict[str, object]
    pixel_spacing_mm: float
    body: Body
    view: View

    def head_radius_px(self, side: str) -> float:
        """Return the femoral head radius in pixels (the prosthetic head's after a replacement)."""
        return self.body.legs[side].femoral_head.radius / self.pixel_spacing_mm


def case_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Return the random generator of one case, seeded from (seed, split, index)."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split], index]))


def generate_case(rng: np.random.Generator, render: bool = True) -> PhantomCase:
    """Draw one phantom radiograph and its landmarks.

    With `render=False` the image is an empty [0, 0] array, for fast geometry checks.
    """
    body = sample_body(rng)
    look = sample_appearance(rng)
    view = plan_view(body, rng)
    if render:
        image = render_radiograph(body, view, look, rng)
    else:
        image = np.zeros((0, 0), np.uint8)

    world = np.array([
        body.legs["right" if name.startswith("R_") else "left"].landmarks[name[2:]]
        for name in KEYPOINT_NAMES
    ])  # fmt: skip
    keypoints = view.to_image(world)
    truth = dict(body.truth)
    truth["image_tilt_deg"] = view.tilt_deg
    return PhantomCase(image, keypoints, truth, view.spacing_mm, body, view)


def _rounded(value: object, digits: int = 3) -> object:
    """Round floats inside nested dicts and lists for a stable, readable JSON file."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: _rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item, digits) for item in value]
    return value


def labelme_annotation(case: PhantomCase, image_name: str, provenance: Dict[str, object]) -> dict:
    """Return the LabelMe 5 annotation of a case: FC as circles, the other landmarks as points.

    `provenance` (seed, split, index) goes into the `phantom` block with the truth values.
    """
    shapes = []
    for index, name in enumerate(KEYPOINT_NAMES):
        x, y = (round(float(v), 3) for v in case.keypoints[index])
        if name.endswith("_FC"):
            radius = case.head_radius_px("right" if name.startswith("R_") else "left")
            points = [[x, y], [round(x + radius, 3), y]]
            shape_type = "circle"
        else:
            points = [[x, y]]
            shape_type = "point"
        shapes.append({"label": name, "points": points, "group_id": None,
                       "shape_type": shape_type, "flags": {}})  # fmt: skip
    phantom: Dict[str, object] = dict(provenance)
    phantom["generator_version"] = GENERATOR_VERSION
    phantom["hka_convention"] = HKA_CONVENTION
    phantom.update(_rounded(case.truth))  # type: ignore[arg-type]
    height, width = case.image.shape[:2]
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": f"../images/{image_name}",
        "imageData": None,
        "imageHeight": int(height),
        "imageWidth": int(width),
        "pixel_spacing_mm": round(case.pixel_spacing_mm, 6),
        "phantom": phantom,
    }


def case_stem(split: str, index: int) -> str:
    """Return the file stem of a case, e.g. phantom_train_0007."""
    return f"phantom_{split}_{index:04d}"


def write_case(out_dir: PathLike, split: str, index: int, seed: int) -> Dict[str, object]:
    """Generate one case and write its JPEG and LabelMe files atomically; return a summary."""
    root = Path(out_dir) / split
    stem = case_stem(split, index)
    case = generate_case(case_rng(seed, split, index))
    image_path = root / "images" / f"{stem}.jpg"
    with atomic_path(image_path) as temporary:
        if not cv2.imwrite(str(temporary), case.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"OpenCV could not write {image_path}")
    annotation = labelme_annotation(case, image_path.name,
                                    {"seed": seed, "split": split, "index": index})  # fmt: skip
    write_text_atomic(root / "annotations" / f"{stem}.json", json.dumps(annotation, indent=2))
    return {
        "implants": len(case.truth["implants"]),  # type: ignore[arg-type]
        "hka_deg": [case.truth["hka_deg"][side] for side in SIDES],
    }  # type: ignore[index]


def validate_counts(counts: Mapping[str, int]) -> Dict[str, int]:
    """Check split names and counts; return them in split order. Raise UserError if invalid."""
    unknown = sorted(set(counts) - set(SPLITS))
    if unknown:
        raise UserError(f"unknown split {unknown[0]!r}; valid splits are {', '.join(SPLITS)}")
    checked = {}
    for split in SPLITS:
        count = counts.get(split, 0)
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise UserError(f"the {split} count must be a whole number >= 0, got {count!r}")
        checked[split] = int(count)
    if sum(checked.values()) == 0:
        raise UserError("every split count is 0, so there is nothing to generate; "
                        "give at least one split a positive count")  # fmt: skip
    return checked


def _is_generated(path: Path) -> bool:
    """Return whether `path` is a file this generator writes (or its temporary file)."""
    if not path.is_file():
        return False
    return bool(_PHANTOM_FILE.match(path.name) or _TEMPORARY_FILE.match(path.name))


def foreign_entries(out_dir: Path) -> List[Path]:
    """Return the entries under `out_dir` that a phantom data set does not contain."""
    foreign: List[Path] = []
    for entry in sorted(out_dir.iterdir()):
        if entry.name == MANIFEST_NAME and entry.is_file():
            continue
        if _TEMPORARY_FILE.match(entry.name) and entry.is_file():
            continue
        if entry.name not in SPLITS or not entry.is_dir():
            foreign.append(entry)
            continue
        for folder in sorted(entry.iterdir()):
            if folder.name not in ("images", "annotations") or not folder.is_dir():
                foreign.append(folder)
                continue
            foreign += [path for path in sorted(folder.iterdir()) if not _is_generated(path)]
    return foreign


def _check_output_folder(out_dir: Path, force: bool) -> None:
    """Raise UserError if `out_dir` is a file or, unless forced, contains non-phantom files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output path {out_dir} is a file, not a folder; choose another --out")
    if not out_dir.exists() or force:
        return
    foreign = foreign_entries(out_dir)
    if foreign:
        raise UserError(
            f"output folder {out_dir} is not a phantom data set: it contains {foreign[0]}"
            f"{f' and {len(foreign) - 1} more entries' if len(foreign) > 1 else ''}; choose an "
            "empty or new folder, or pass --force to add phantoms beside those files"
        )


def _remove_stale_phantoms(out_dir: Path, counts: Mapping[str, int]) -> int:
    """Delete phantom files of the written splits whose index is beyond the new count.

    Only files named like this generator's output are touched, so a user's own files stay.
    """
    removed = 0
    for split, count in counts.items():
        for folder in ("images", "annotations"):
            path = out_dir / split / folder
            if not path.is_dir():
                continue
            for entry in path.iterdir():
                match = re.match(rf"^phantom_{split}_(\d{{4,}})\.(jpg|json)$", entry.name)
                stale = match is not None and int(match.group(1)) >= count
                if stale or (entry.is_file() and _TEMPORARY_FILE.match(entry.name)):
                    entry.unlink()
                    removed += 1
    return removed


def _worker_setup() -> None:
    """Keep each worker process on one OpenCV thread, so that workers do not compete."""
    cv2.setNumThreads(1)


def _write_task(task: Tuple[str, str, int, int]) -> Dict[str, object]:
    return write_case(*task)


def _run_tasks(tasks: List[Tuple[str, str, int, int]], workers: int,
               progress: bool) -> Iterator[Dict[str, object]]:  # fmt: skip
    """Yield the summaries of the written cases, in task order, with a progress bar."""
    bar = tqdm(total=len(tasks), unit="image", desc="phantoms", disable=not progress)
    try:
        if workers <= 1:
            for task in tasks:
                yield _write_task(task)
                bar.update()
            return
        context = get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_setup) as pool:
            chunk = max(1, min(8, len(tasks) // (4 * workers)))
            for result in pool.map(_write_task, tasks, chunksize=chunk):
                yield result
                bar.update()
    finally:
        bar.close()


def write_dataset(
    out_dir: PathLike,
    counts: Mapping[str, int],
    seed: int,
    workers: Optional[int] = None,
    *,
    force: bool = False,
    progress: bool = False,
) -> Dict[str, object]:
    """Write a phantom data set and return a summary (counts, seconds, images per second).

    `counts` maps split names (train, val, test) to numbers of cases; splits with 0 are
    not touched. `workers` is the number of processes (default: the CPU count, at most 8).
    An existing folder must be a phantom data set unless `force` is set; even then only
    phantom files are replaced or removed. Raises UserError for invalid input.
    """
    checked = validate_counts(counts)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"the seed must be a whole number >= 0, got {seed!r}")
    out = Path(out_dir)
    _check_output_folder(out, force)
    written = {split: count for split, count in checked.items() if count > 0}
    try:
        out.mkdir(parents=True, exist_ok=True)
        removed = _remove_stale_phantoms(out, written)
    except OSError as error:
        raise UserError(
            f"cannot prepare output folder {out}: {error}; check its permissions"
        ) from error
    if removed:
        logger.info("removed %d phantom files left from an earlier, larger run", removed)

    tasks = [(str(out), split, index, int(seed))
             for split, count in written.items() for index in range(count)]  # fmt: skip
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    workers = max(1, min(int(workers), len(tasks)))
    start = time.perf_counter()
    try:
        results = list(_run_tasks(tasks, workers, progress))
    except OSError as error:
        raise UserError(
            f"writing phantoms to {out} failed: {error}; check free disk space and permissions"
        ) from error
    seconds = time.perf_counter() - start

    summary: Dict[str, object] = {
        "out_dir": str(out),
        "seed": int(seed),
        "counts": written,
        "images": len(tasks),
        "workers": workers,
        "seconds": round(seconds, 3),
        "images_per_second": round(len(tasks) / seconds, 2) if seconds > 0 else None,
        "cases_with_implants": sum(1 for result in results if result["implants"]),
    }
    manifest = {"generator": "llrformer.phantoms", "generator_version": GENERATOR_VERSION,
                "seed": int(seed), "counts": checked, "hka_convention": HKA_CONVENTION}  # fmt: skip
    write_text_atomic(out / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    return summary
