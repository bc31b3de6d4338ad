"""Landmark data sets for training and evaluation: loading, targets and augmentation.

A split is the folder `DATASET.ROOT/<split>/` with `images/` and `annotations/` (LabelMe JSON,
same base name). Each image is read and letterboxed to MODEL.IMAGE_SIZE once and kept in
memory as uint8, with its keypoints in letterboxed input pixels. Augmentation starts from this
cache, so an epoch decodes no image file. Coordinates are (x, y) pixels, and pixel i spans
[i, i + 1) as in `Letterbox`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .annotations import find_annotation, image_size_mismatch, read_annotation
from .config import ConfigNode
from .errors import UserError
from .images import list_images, read_image
from .keypoints import NUM_KEYPOINTS, mirror_index
from .preprocess import Letterbox, letterbox_image, normalize_image

logger = logging.getLogger(__name__)

# The window of a target Gaussian reaches this many sigmas from its centre cell.
GAUSSIAN_RADIUS_SIGMAS = 3
# MODEL.TARGET_TYPE values: the published Gaussian centred on a whole heatmap cell, or one
# centred on the exact keypoint position (see `make_targets`).
TARGET_TYPES = ("gaussian", "gaussian_subpixel")


@dataclass
class LandmarkSample:
    """One annotated image, letterboxed to the model input.

    `image` is uint8 RGB [input_h, input_w, 3]. `keypoints` [K, 2] are letterboxed input
    pixels and `keypoints_original` [K, 2] pixels of the image on disk; both are NaN where
    `visible` [K] is False. `reduction` is the factor by which the image was decoded smaller
    than on disk (1 for all but huge JPEGs).
    """

    image_path: Path
    annotation_path: Path
    image: np.ndarray
    keypoints: np.ndarray
    keypoints_original: np.ndarray
    visible: np.ndarray
    letterbox: Letterbox
    reduction: float
    pixel_spacing_mm: Optional[float]


def split_folder(root: Path, split: str) -> Path:
    """Return `root/split`, or raise UserError if it or its images/ folder is missing."""
    folder = root / split
    if not (folder / "images").is_dir():
        raise UserError(
            f"data split {folder} has no images/ folder; expected "
            f"{folder}/images and {folder}/annotations (see DATASET.ROOT and the split names)"
        )
    return folder


def load_split(cfg: ConfigNode, root: Path, split: str) -> List[LandmarkSample]:
    """Read, check and letterbox every image of one split.

    Raises UserError naming the file for an image without an annotation, an annotation with
    labels that are not landmark names, an annotation made for another image size, an empty
    split, and a config whose MODEL.NUM_JOINTS is not the 36 landmarks of the annotations.
    """
    folder = split_folder(root, split)
    num_joints = int(cfg.MODEL.NUM_JOINTS)
    if num_joints != NUM_KEYPOINTS:
        raise UserError(
            f"{cfg.get('path') or 'config'}: MODEL.NUM_JOINTS is {num_joints}, but the "
            f"annotations in {folder} have the {NUM_KEYPOINTS} LLRFormer landmarks; "
            f"set MODEL.NUM_JOINTS: {NUM_KEYPOINTS}"
        )
    try:
        image_paths = list_images(folder / "images")
    except UserError:
        raise UserError(
            f"data split {folder} is empty: {folder / 'images'} has no images; "
            "add images and annotations or fix DATASET.ROOT and the split name"
        ) from None

    input_size = tuple(cfg.MODEL.IMAGE_SIZE)
    samples = []
    problem_count = 0
    for image_path in tqdm(
        image_paths, desc=f"reading {split}", unit="image", leave=False, disable=None
    ):
        sample, problems = _load_sample(image_path, input_size)
        for line in problems:
            logger.debug("%s", line)
        problem_count += len(problems)
        samples.append(sample)

    missing = int(sum((~sample.visible).sum() for sample in samples))
    logger.info(
        "%s: %d images, %d missing landmarks, %d annotation notes%s",
        folder,
        len(samples),
        missing,
        problem_count,
        " (run with --verbose to list them)" if problem_count else "",
    )
    return samples


def _load_sample(image_path: Path, input_size: Tuple[int, int]) -> Tuple[LandmarkSample, list]:
    annotation_path = find_annotation(image_path)
    if annotation_path is None:
        raise UserError(
            f"image {image_path} has no annotation; expected "
            f"{image_path.parent.parent / 'annotations' / (image_path.stem + '.json')}; "
            "annotate it or move it out of the split"
        )
    annotation = read_annotation(annotation_path)
    if annotation.unknown_labels:
        labels = ", ".join(repr(label) for label in annotation.unknown_labels)
        raise UserError(
            f"annotation {annotation_path} has labels that are not landmark names: {labels}; "
            "rename them to the canonical names (R_FC, L_FC, ...) or delete those shapes"
        )

    loaded = read_image(image_path)
    mismatch = image_size_mismatch(annotation, loaded.original_size, loaded.exif_orientation)
    if mismatch:
        raise UserError(mismatch)

    letterboxed, box = letterbox_image(loaded.rgb, input_size)
    keypoints_original = annotation.keypoints.copy()
    # Annotation coordinates are pixels of the image on disk; `rgb` may be decoded smaller.
    keypoints = box.to_input(keypoints_original / loaded.reduction)
    spacing = annotation.pixel_spacing_mm or loaded.pixel_spacing_mm
    sample = LandmarkSample(
        image_path=image_path,
        annotation_path=annotation_path,
        image=letterboxed,
        keypoints=keypoints,
        keypoints_original=keypoints_original,
        visible=annotation.visible.copy(),
        letterbox=box,
        reduction=float(loaded.reduction),
        pixel_spacing_mm=spacing,
    )
    return sample, annotation.report_lines()


def make_targets(
    keypoints: np.ndarray,
    visible: np.ndarray,
    input_size: Tuple[int, int],
    heatmap_size: Tuple[int, int],
    sigma: float,
    subpixel: bool = False,
) -> Tuple[np.ndarray, np.ndarray]:
    """Build Gaussian target heatmaps [K, Hh, Wh] float32 and target weights [K] float32.

    Keypoints [K, 2] are input pixels, sigma is in heatmap pixels and each Gaussian is cut off
    at 3 sigma from its centre. The published encoding centres it on the cell
    (int(x * Wh / W), int(y * Hh / H)), which moves the peak by up to one cell. With
    `subpixel` it is centred on the keypoint itself, so a model can learn positions finer
    than a cell. `decode_heatmaps` reads both back the same way. A keypoint that is not
    visible or lies outside the input gets an all-zero heatmap and weight 0.
    """
    input_w, input_h = input_size
    heatmap_w, heatmap_h = heatmap_size
    keypoints = np.asarray(keypoints, dtype=np.float64)
    x, y = keypoints[:, 0], keypoints[:, 1]
    with np.errstate(invalid="ignore"):
        inside = visible & np.isfinite(x) & np.isfinite(y)
        inside &= (x >= 0) & (x < input_w) & (y >= 0) & (y < input_h)
    centre_x = np.where(inside, np.nan_to_num(x) * heatmap_w / input_w, 0.0)
    centre_y = np.where(inside, np.nan_to_num(y) * heatmap_h / input_h, 0.0)
    if subpixel:
        # Cell i is centred on heatmap coordinate i + 0.5, the centre of its input pixels.
        centre_x, centre_y = centre_x - 0.5, centre_y - 0.5
    else:
        centre_x, centre_y = np.floor(centre_x), np.floor(centre_y)

    columns = np.arange(heatmap_w)[None, None, :] - centre_x[:, None, None]
    rows = np.arange(heatmap_h)[None, :, None] - centre_y[:, None, None]
    heatmaps = np.exp(-(columns**2 + rows**2) / (2.0 * sigma**2))
    radius = GAUSSIAN_RADIUS_SIGMAS * sigma
    heatmaps[(np.abs(columns) > radius) | (np.abs(rows) > radius)] = 0.0
    heatmaps[~inside] = 0.0
    return heatmaps.astype(np.float32), inside.astype(np.float32)


def uses_subpixel_targets(cfg: ConfigNode) -> bool:
    """Return True for MODEL.TARGET_TYPE gaussian_subpixel, False for gaussian.

    Raises UserError for any other value.
    """
    target_type = str(cfg.MODEL.TARGET_TYPE).lower()
    if target_type not in TARGET_TYPES:
        raise UserError(
            f"{cfg.get('path') or 'config'}: MODEL.TARGET_TYPE {cfg.MODEL.TARGET_TYPE!r} is not "
            f"supported; use {' or '.join(TARGET_TYPES)}"
        )
    return target_type == "gaussian_subpixel"


@dataclass(frozen=True)
class AugmentationSettings:
    """Random augmentation ranges, read from the config by `from_config`.

    Rotation is in degrees, scale a relative change; brightness and contrast are factor
    ranges and `noise_std` a fraction of the 0-255 range.
    """

    scale_factor: float = 0.0
    rotation_degrees: float = 0.0
    flip: bool = False
    photometric: bool = False
    brightness: Tuple[float, float] = (1.0, 1.0)
    contrast: Tuple[float, float] = (1.0, 1.0)
    noise_std: float = 0.0

    @classmethod
    def from_config(cls, cfg: ConfigNode) -> AugmentationSettings:
        medical = cfg.MEDICAL_AUGMENTATION
        ranges = list(medical.BRIGHTNESS_CONTRAST)
        if len(ranges) != 4:
            raise UserError(
                f"{cfg.get('path') or 'config'}: MEDICAL_AUGMENTATION.BRIGHTNESS_CONTRAST must "
                f"be [brightness_low, brightness_high, contrast_low, contrast_high], not {ranges}"
            )
        return cls(
            scale_factor=float(cfg.DATASET.SCALE_FACTOR),
            rotation_degrees=float(cfg.DATASET.ROT_FACTOR),
            flip=bool(cfg.DATASET.FLIP),
            photometric=bool(cfg.DATASET.MEDICAL_AUGMENTATION),
            brightness=(float(ranges[0]), float(ranges[1])),
            contrast=(float(ranges[2]), float(ranges[3])),
            noise_std=float(medical.NOISE_INTENSITY),
        )


def affine_for_pixels(matrix: np.ndarray) -> np.ndarray:
    """Convert a 2 x 3 affine map of continuous coordinates for `cv2.warpAffine`.

    OpenCV places pixel i at coordinate i, this module at i + 0.5 (its centre).
    """
    linear, shift = matrix[:, :2], matrix[:, 2]
    half = np.array([0.5, 0.5])
    return np.hstack([linear, (shift + linear @ half - half)[:, None]])


def random_geometry(
    rng: np.random.Generator, settings: AugmentationSettings, input_size: Tuple[int, int]
) -> Tuple[np.ndarray, bool]:
    """Draw a 2 x 3 affine map (scale and rotation about the image centre) and a flip flag."""
    width, height = input_size
    scale = 1.0
    if settings.scale_factor > 0:
        factor = settings.scale_factor
        scale = float(np.clip(rng.normal(1.0, factor), 1.0 - factor, 1.0 + factor))
    angle = 0.0
    if settings.rotation_degrees > 0 and rng.random() < 0.6:
        limit = settings.rotation_degrees
        angle = float(np.clip(rng.normal(0.0, limit), -2 * limit, 2 * limit))
    flip = settings.flip and rng.random() < 0.5

    radians = math.radians(angle)
    cos, sin = scale * math.cos(radians), scale * math.sin(radians)
    centre = np.array([width / 2.0, height / 2.0])
    linear = np.array([[cos, sin], [-sin, cos]])
    if flip:
        linear = linear @ np.array([[-1.0, 0.0], [0.0, 1.0]])
    shift = centre - linear @ centre
    return np.hstack([linear, shift[:, None]]), flip


def augment(
    image: np.ndarray,
    keypoints: np.ndarray,
    visible: np.ndarray,
    rng: np.random.Generator,
    settings: AugmentationSettings,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Randomly scale, rotate, flip and (optionally) change brightness, contrast and noise.

    `image` is uint8 [H, W, 3], `keypoints` [K, 2] input pixels. A horizontal flip also swaps
    every left/right landmark pair, so each index keeps naming the same anatomical point.
    Returns the new image, keypoints and visibility.
    """
    height, width = image.shape[:2]
    matrix, flip = random_geometry(rng, settings, (width, height))
    if not np.allclose(matrix, [[1, 0, 0], [0, 1, 0]]):
        image = cv2.warpAffine(
            image,
            affine_for_pixels(matrix),
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        keypoints = keypoints @ matrix[:, :2].T + matrix[:, 2]
    if flip:
        order = [mirror_index(index) for index in range(len(keypoints))]
        keypoints, visible = keypoints[order], visible[order]
    if settings.photometric:
        image = _photometric(image, rng, settings)
    return image, keypoints, visible


def _photometric(
    image: np.ndarray, rng: np.random.Generator, settings: AugmentationSettings
) -> np.ndarray:
    values = image.astype(np.float32)
    contrast = rng.uniform(*settings.contrast)
    brightness = rng.uniform(*settings.brightness)
    mean = values.mean()
    values = (values - mean) * contrast + mean * brightness
    if settings.noise_std > 0:
        values += rng.normal(0.0, settings.noise_std * 255.0, size=values.shape[:2])[..., None]
    return np.clip(values, 0, 255).astype(np.uint8)


class LandmarkDataset(torch.utils.data.Dataset):
    """Model inputs and targets from cached samples, augmented when `train` is True.

    Items are dicts: `image` [3, H, W] ImageNet-normalised, `target` [K, Hh, Wh],
    `target_weight` [K], `keypoints` [K, 2] (input pixels after augmentation, 0 where
    missing) and `index` into `samples`. A missing landmark, or one that
    augmentation moved out of the image, always gets weight 0 (also when
    LOSS.USE_TARGET_WEIGHT is false), so the loss never teaches an empty heatmap. Augmentation
    draws from a generator seeded by (seed, epoch, index), so runs repeat exactly whatever
    the number of DataLoader workers; call `set_epoch` before each epoch.
    """

    def __init__(
        self,
        samples: Sequence[LandmarkSample],
        cfg: ConfigNode,
        train: bool,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.input_size = tuple(cfg.MODEL.IMAGE_SIZE)
        self.heatmap_size = tuple(cfg.MODEL.HEATMAP_SIZE)
        self.sigma = float(cfg.MODEL.SIGMA)
        self.subpixel = uses_subpixel_targets(cfg)
        self.settings = AugmentationSettings.from_config(cfg) if train else AugmentationSettings()
        self.train = train
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        sample = self.samples[index]
        image, keypoints, visible = sample.image, sample.keypoints, sample.visible
        if self.train:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            image, keypoints, visible = augment(image, keypoints, visible, rng, self.settings)
        target, weight = make_targets(
            keypoints, visible, self.input_size, self.heatmap_size, self.sigma, self.subpixel
        )
        return {
            "image": normalize_image(image),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "keypoints": torch.from_numpy(np.nan_to_num(keypoints).astype(np.float32)),
            "index": torch.tensor(index),
        }
