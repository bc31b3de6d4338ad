"""Read radiographs from PNG, JPEG, TIFF, BMP and DICOM into the 8-bit RGB the model expects.

Every reader returns the image as a radiograph viewer shows it: EXIF orientation applied,
data deeper than 8 bits mapped by its real range (or by the DICOM window), MONOCHROME1
inverted. The model and the figures both use this `LoadedImage.rgb`.

Image size is read from the file header before any pixel is decoded. An image above
`max_pixels` is decoded at 1/2, 1/4 or 1/8 size when it is a JPEG (libjpeg scales while
decoding, so the full-size image never exists in memory) and rejected otherwise.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np

from .errors import UserError
from .image_headers import ImageHeader, image_error, read_header

LOGGER = logging.getLogger(__name__)

IMAGE_SUFFIXES: Tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".dcm",
    ".dicom",
)

# 64 megapixels is about 8,000 x 8,000, three times a typical full-length radiograph
# (2,800 x 7,600). Decoding a 16-bit PNG took 6.1 bytes per pixel at peak (docs/inputs.md).
DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENVIRONMENT = "LLRFORMER_MAX_PIXELS"

_JPEG_REDUCED_FLAGS = {
    2: (cv2.IMREAD_REDUCED_GRAYSCALE_2, cv2.IMREAD_REDUCED_COLOR_2),
    4: (cv2.IMREAD_REDUCED_GRAYSCALE_4, cv2.IMREAD_REDUCED_COLOR_4),
    8: (cv2.IMREAD_REDUCED_GRAYSCALE_8, cv2.IMREAD_REDUCED_COLOR_8),
}

PathLike = Union[str, os.PathLike]


@dataclass
class LoadedImage:
    """A radiograph ready for the model and for figures.

    `rgb` is [height, width, 3] uint8 RGB. Annotation coordinates are pixels of the
    original image, so a caller maps them onto `rgb` by multiplying by `1 / reduction`.
    """

    rgb: np.ndarray
    path: Path
    pixel_spacing_mm: Optional[float]  # mm per pixel of `rgb` (DICOM only), else None
    original_size: Tuple[int, int]  # (width, height) at full size, after EXIF orientation
    reduction: float = 1.0  # 1, or the JPEG decoding reduction 2, 4 or 8
    exif_orientation: int = 1  # the EXIF orientation tag that was applied (1 = none)

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) of `rgb` in pixels."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def resolve_max_pixels(max_pixels: Optional[int] = None) -> int:
    """Return `max_pixels`, or the LLRFORMER_MAX_PIXELS environment value, or the default."""
    if max_pixels is not None:
        return int(max_pixels)
    text = os.environ.get(MAX_PIXELS_ENVIRONMENT, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value <= 0:
        raise UserError(
            f"invalid {MAX_PIXELS_ENVIRONMENT}={text!r}; set it to a positive number of "
            f"pixels such as 100000000, or unset it for the default {DEFAULT_MAX_PIXELS}"
        )
    return value


def list_images(folder: PathLike) -> List[Path]:
    """Return the image files of `folder` (not its subfolders), sorted by name.

    Hidden files are skipped: they include the temporary files of atomic writes and the
    `._name` files that macOS leaves on shared drives.
    """
    directory = Path(folder)
    if not directory.is_dir():
        raise UserError(f"image folder {directory} not found; pass an existing folder")
    images = sorted(
        entry
        for entry in directory.iterdir()
        if entry.suffix.lower() in IMAGE_SUFFIXES
        and not entry.name.startswith(".")
        and entry.is_file()
    )
    if not images:
        raise UserError(
            f"no images in {directory}; expected files ending in {', '.join(IMAGE_SUFFIXES)}"
        )
    return images


def read_image(path: PathLike, max_pixels: Optional[int] = None) -> LoadedImage:
    """Read a radiograph and return it as 8-bit RGB, the way a viewer shows it.

    `max_pixels` (default: LLRFORMER_MAX_PIXELS or DEFAULT_MAX_PIXELS) bounds the pixels
    that are decoded. A larger JPEG is decoded reduced, other formats raise UserError.
    Raises UserError for a missing, empty, truncated or unsupported file.
    """
    source = Path(path)
    limit = resolve_max_pixels(max_pixels)
    _check_file(source)
    try:
        with source.open("rb") as handle:
            header = read_header(handle, source)
    except OSError as error:
        problem = f"the file cannot be opened ({error.strerror})"
        raise image_error(source, problem, _PERMISSIONS) from None

    if header.format == "dicom":
        from .dicom import read_dicom

        return read_dicom(source, limit)

    reduction = _choose_reduction(header, limit, source)
    pixels = _decode(source, header, reduction)
    pixels = _drop_alpha(pixels, source)
    if header.white_is_zero and pixels.dtype != np.uint8:
        # OpenCV inverts 8-bit WhiteIsZero TIFF files itself (checked with OpenCV 5.1) but
        # returns deeper data as stored.
        pixels = _invert(pixels)
    rgb = to_rgb8(pixels)
    if header.format in ("jpeg", "png"):
        rgb = apply_orientation(rgb, header.orientation)

    if reduction == 1:
        original_size = (int(rgb.shape[1]), int(rgb.shape[0]))
    else:
        original_size = header.display_size
    return LoadedImage(
        rgb=rgb,
        path=source,
        pixel_spacing_mm=None,
        original_size=original_size,
        reduction=float(reduction),
        exif_orientation=header.orientation,
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise image_error(path, "file not found", "check the path")
    if not path.is_file():
        raise image_error(path, "not a file", "pass an image file, not a folder")
    if path.stat().st_size == 0:
        raise image_error(path, "the file is empty", "copy or export the image again")


def _choose_reduction(header: ImageHeader, max_pixels: int, path: Path) -> int:
    """Return 1, or the JPEG reduction (2, 4 or 8) that fits `max_pixels`."""
    width, height = header.width, header.height
    if width * height <= max_pixels:
        return 1
    if header.format == "jpeg":
        for factor in _JPEG_REDUCED_FLAGS:
            if math.ceil(width / factor) * math.ceil(height / factor) <= max_pixels:
                LOGGER.warning(
                    "%s: %d x %d pixels is more than the limit of %d; decoding at 1/%d size",
                    path,
                    width,
                    height,
                    max_pixels,
                    factor,
                )
                return factor
        reason = ", even at 1/8 size (the smallest size libjpeg decodes to)"
    else:
        kind = header.format.upper()
        reason = f", and a {kind} file cannot be decoded at reduced size (only JPEG can)"
    raise image_error(
        path,
        f"the image is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels), more "
        f"than the limit of {max_pixels / 1e6:.0f} megapixels{reason}",
        f"downscale it, or raise {MAX_PIXELS_ENVIRONMENT} if the machine has about 6 bytes "
        "of memory per pixel",
    )


def _decode(path: Path, header: ImageHeader, reduction: int) -> np.ndarray:
    """Decode with OpenCV, keeping bit depth and channels, without the EXIF orientation."""
    try:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as error:
        problem = f"the file cannot be read ({error.strerror})"
        raise image_error(path, problem, _PERMISSIONS) from None
    if header.format == "jpeg" and reduction > 1:
        grey_flag, colour_flag = _JPEG_REDUCED_FLAGS[reduction]
        flags = grey_flag if header.channels == 1 else colour_flag
        flags |= cv2.IMREAD_IGNORE_ORIENTATION
    elif header.format == "jpeg":
        # IMREAD_COLOR converts CMYK and YCCK JPEGs to BGR, which IMREAD_UNCHANGED does not.
        colour_flag = cv2.IMREAD_GRAYSCALE if header.channels == 1 else cv2.IMREAD_COLOR
        flags = colour_flag | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION
    else:
        # IMREAD_UNCHANGED keeps 16-bit data and alpha, and does not apply EXIF orientation.
        flags = cv2.IMREAD_UNCHANGED
    try:
        pixels = cv2.imdecode(data, flags)
    except cv2.error as error:
        message = str(error).strip().splitlines()[-1]
        raise image_error(path, f"OpenCV failed to decode it ({message})", _REEXPORT) from None
    if pixels is None or pixels.size == 0:
        raise image_error(
            path,
            f"OpenCV could not decode this {header.format} file; it may be truncated",
            _REEXPORT,
        )
    if header.format == "jpeg" and not _has_end_marker(data, header.scan_offset):
        raise image_error(
            path, "the JPEG data has no end-of-image marker, so the file is truncated", _REEXPORT
        )
    return pixels


_REEXPORT = "export or copy the image again"
_PERMISSIONS = "check that the file is readable"


def _has_end_marker(data: np.ndarray, scan_offset: int) -> bool:
    """Return whether an end-of-image marker (FF D9) follows the start of the scan data."""
    return data[max(scan_offset, 0) :].tobytes().rfind(b"\xff\xd9") >= 0


def _drop_alpha(pixels: np.ndarray, path: Path) -> np.ndarray:
    """Return the colour or grey channels without alpha, as cv2.IMREAD_COLOR does in training.

    Layout in: [H, W], [H, W, 1..4] BGR(A) or grey+alpha. Layout out: [H, W] or [H, W, 3].
    """
    if pixels.ndim == 2:
        return pixels
    channels = pixels.shape[2]
    if channels in (2, 4):
        alpha = pixels[..., -1]
        opaque = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1.0
        if alpha.min() < opaque:
            LOGGER.warning(
                "%s: alpha channel ignored; transparent pixels show their stored colour", path
            )
        pixels = pixels[..., :-1]
    if pixels.shape[2] == 1:
        return pixels[..., 0]
    return pixels


def _invert(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype.kind in "ui":
        return np.iinfo(pixels.dtype).max - pixels
    return pixels.max() - pixels


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Convert grey [H, W] or BGR [H, W, 3] pixels of any depth to uint8 RGB [H, W, 3].

    8-bit data is kept as it is. Deeper data is mapped linearly from its real minimum and
    maximum to 0..255, so 12-bit data in a 16-bit file gets full contrast instead of the
    1/16 that dropping the low byte leaves.
    """
    image8 = to_uint8(pixels)
    if image8.ndim == 2:
        return cv2.cvtColor(image8, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image8, cv2.COLOR_BGR2RGB)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Map `pixels` to uint8 by their real range (finite values only); uint8 is unchanged."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        low, high = int(pixels.min()), int(pixels.max())
        lookup = range_lookup(low, high, size=65536)
        return lookup[pixels]

    finite = np.isfinite(pixels) if pixels.dtype.kind == "f" else None
    if finite is not None and not finite.any():
        return np.zeros(pixels.shape, dtype=np.uint8)
    values = pixels[finite] if finite is not None and not finite.all() else pixels
    low, high = float(values.min()), float(values.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    scaled = (pixels.astype(np.float32) - np.float32(low)) * np.float32(scale)
    if finite is not None:
        scaled[~finite] = 0.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def range_lookup(low: int, high: int, size: int) -> np.ndarray:
    """Return a uint8 lookup table of `size` entries mapping low..high linearly to 0..255."""
    lookup = np.zeros(size, dtype=np.uint8)
    if high > low:
        ramp = (np.arange(low, high + 1, dtype=np.float64) - low) * (255.0 / (high - low))
        lookup[low : high + 1] = np.rint(ramp).astype(np.uint8)
        lookup[high + 1 :] = 255
    return lookup


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Return `image` ([H, W, ...]) rotated or flipped as EXIF orientation 1..8 specifies.

    Orientations 5 to 8 swap width and height. Unknown values leave the image as it is.
    """
    if orientation == 2:
        image = image[:, ::-1]
    elif orientation == 3:
        image = image[::-1, ::-1]
    elif orientation == 4:
        image = image[::-1]
    elif orientation == 5:
        image = image.swapaxes(0, 1)
    elif orientation == 6:
        image = image.swapaxes(0, 1)[:, ::-1]
    elif orientation == 7:
        image = image.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        image = image.swapaxes(0, 1)[::-1]
    return np.ascontiguousarray(image)
