"""Read DICOM radiographs with pydicom into the 8-bit RGB a viewer would show.

Grey images go through the DICOM display chain of PS3.3 C.11. The modality LUT (Rescale
Slope/Intercept or a Modality LUT Sequence) comes first. Then the first VOI LUT or window
is applied when the file has one, else the real value range is mapped linearly. Last,
MONOCHROME1 images are inverted, so that a high value shows dark.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi

from .image_headers import image_error
from .images import MAX_PIXELS_ENVIRONMENT, LoadedImage, to_uint8

LOGGER = logging.getLogger(__name__)

# Exceptions pydicom raises for unparsable elements or undecodable pixel data (pydicom 3.0).
_PYDICOM_ERRORS = (
    InvalidDicomError,
    AttributeError,
    KeyError,
    NotImplementedError,
    RuntimeError,
    TypeError,
    ValueError,
    EOFError,
    OSError,
)


def read_dicom(path: Path, max_pixels: int) -> LoadedImage:
    """Read a single-frame DICOM image; see the module docstring for the display chain."""
    dataset = _read_dataset(path)
    columns, rows = _frame_size(dataset, path)
    if rows * columns > max_pixels:
        raise image_error(
            path,
            f"the image is {columns} x {rows} pixels, more than the limit of {max_pixels} "
            "pixels, and DICOM cannot be decoded at reduced size",
            f"downscale it, or raise {MAX_PIXELS_ENVIRONMENT} if the machine has the memory",
        )
    pixels = _pixel_array(dataset, path)

    photometric = str(dataset.get("PhotometricInterpretation", "")).strip().upper()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        rgb = cv2.cvtColor(grey_to_uint8(pixels, dataset, path), cv2.COLOR_GRAY2RGB)
    elif photometric == "PALETTE COLOR":
        rgb = to_uint8(apply_color_lut(pixels, dataset))
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        # pydicom returns YBR data converted to RGB.
        rgb = to_uint8(pixels)
    else:
        raise image_error(
            path,
            f"unsupported Photometric Interpretation {photometric or '(missing)'}",
            "export the image as MONOCHROME1, MONOCHROME2 or RGB",
        )
    return LoadedImage(
        rgb=np.ascontiguousarray(rgb),
        path=path,
        pixel_spacing_mm=pixel_spacing_mm(dataset, path),
        original_size=(columns, rows),
    )


def _read_dataset(path: Path) -> pydicom.Dataset:
    try:
        # force=True also reads files without the 128-byte preamble and "DICM" prefix.
        dataset = pydicom.dcmread(path, force=True, defer_size="64 KB")
    except _PYDICOM_ERRORS as error:
        problem = f"pydicom failed to parse it ({one_line(error)})"
        raise image_error(path, problem, _REEXPORT) from None
    if not any(name in dataset for name in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise image_error(
            path, "the DICOM file has no Pixel Data element, so it contains no image", _REEXPORT
        )
    return dataset


_REEXPORT = "export the image from the PACS or modality again"


def _frame_size(dataset: pydicom.Dataset, path: Path) -> Tuple[int, int]:
    """Return (columns, rows) of the single frame; raise UserError for multi-frame files."""
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
    except _PYDICOM_ERRORS:
        raise image_error(path, "the DICOM file has no valid Rows/Columns", _REEXPORT) from None
    if frames > 1:
        raise image_error(
            path,
            f"the DICOM file has {frames} frames, but a radiograph is a single frame",
            "export the frame to use as its own file",
        )
    if rows <= 0 or columns <= 0:
        raise image_error(path, f"invalid DICOM size {columns} x {rows}", _REEXPORT)
    return columns, rows


def _pixel_array(dataset: pydicom.Dataset, path: Path) -> np.ndarray:
    try:
        return dataset.pixel_array
    except _PYDICOM_ERRORS as error:
        detail = one_line(error)
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and syntax.name not in detail:
            detail = f"transfer syntax {syntax.name}: {detail}"
        raise image_error(
            path,
            f"pydicom could not decode the pixel data ({detail})",
            "install a pydicom decoder plugin for this transfer syntax (pylibjpeg or GDCM, see "
            "the pydicom documentation) or convert the file to uncompressed DICOM",
        ) from None


def one_line(error: Exception) -> str:
    """Return the message of `error` with line breaks and runs of spaces collapsed."""
    return " ".join(str(error).split())


def grey_to_uint8(pixels: np.ndarray, dataset: pydicom.Dataset, path: Path) -> np.ndarray:
    """Map stored grey values [rows, columns] through the display chain to uint8.

    Integer data of up to 16 bits is mapped with a lookup table built over the stored
    values from their minimum to their maximum, which needs far less memory than
    transforming every pixel in float64.
    """
    if pixels.dtype.kind in "ui" and pixels.dtype.itemsize <= 2:
        low, high = int(pixels.min()), int(pixels.max())
        domain = np.arange(low, high + 1, dtype=np.int64)
        lookup = np.rint(display_values(domain, dataset, path) * 255).astype(np.uint8)
        index = pixels - low if pixels.dtype.kind == "u" else pixels.astype(np.int32) - low
        return lookup[index]
    display = display_values(pixels.astype(np.float64), dataset, path)
    return np.rint(display * 255).astype(np.uint8)


def display_values(stored: np.ndarray, dataset: pydicom.Dataset, path: Path) -> np.ndarray:
    """Return display values in 0..1 (0 = black) for stored pixel values of any shape."""
    values = apply_modality_lut(stored, dataset)
    display = _apply_voi(values, dataset, path)
    if display is None:
        # No VOI in the file: use the real range. For a non-monotonic Modality LUT this is
        # the range over every stored value between the minimum and maximum.
        low, high = float(np.min(values)), float(np.max(values))
        display = (values - low) / (high - low) if high > low else np.zeros(values.shape)
    if str(dataset.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        display = 1.0 - display
    return display


def _apply_voi(values: np.ndarray, dataset: pydicom.Dataset, path: Path) -> Optional[np.ndarray]:
    """Apply the first VOI LUT, else the first window; return 0..1 values, or None if neither."""
    sequence = dataset.get("VOILUTSequence")
    if sequence and "LUTDescriptor" in sequence[0] and "LUTData" in sequence[0]:
        entries, first_input, _bits = (int(value) for value in sequence[0].LUTDescriptor)
        table = apply_voi(np.arange(first_input, first_input + (entries or 65536)), dataset)
        output = apply_voi(np.rint(values).astype(np.int64), dataset).astype(np.float64)
        low, high = float(table.min()), float(table.max())
        return (output - low) / (high - low) if high > low else np.zeros(values.shape)

    window = _window(dataset, path)
    if window is None:
        return None
    center, width, function = window
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    # LINEAR, PS3.3 C.11.2.1.2.1: centre and width are shifted by half a value.
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _window(dataset: pydicom.Dataset, path: Path) -> Optional[Tuple[float, float, str]]:
    """Return the first (Window Center, Window Width, VOI LUT Function), or None."""
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        return None
    try:
        center = float(_first_value(dataset.WindowCenter))
        width = float(_first_value(dataset.WindowWidth))
    except (TypeError, ValueError, IndexError):
        LOGGER.warning("%s: invalid Window Center/Width; using the data range", path)
        return None
    function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        LOGGER.warning("%s: unknown VOI LUT Function %r; using LINEAR", path, function)
        function = "LINEAR"
    minimum_width = 1.0 if function == "LINEAR" else 0.0
    if width <= minimum_width:
        LOGGER.warning("%s: Window Width %s is too small; using the data range", path, width)
        return None
    return center, width, function


def _first_value(value):
    if isinstance(value, (list, tuple, MultiValue)):
        return value[0]
    return value


def pixel_spacing_mm(dataset: pydicom.Dataset, path: Path) -> Optional[float]:
    """Return the pixel spacing in mm at the patient, or None when the file has none.

    Pixel Spacing is used first. Imager Pixel Spacing is measured at the detector, so it
    is divided by the Estimated Radiographic Magnification Factor when the file has one.
    Non-square pixels give the mean of row and column spacing, with a warning.
    """
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword not in dataset:
            continue
        try:
            row, column = (float(value) for value in list(dataset[keyword].value)[:2])
        except (TypeError, ValueError):
            LOGGER.warning("%s: invalid %s %r ignored", path, keyword, dataset[keyword].value)
            continue
        if row <= 0 or column <= 0:
            LOGGER.warning("%s: non-positive %s ignored", path, keyword)
            continue
        spacing = (row + column) / 2
        if abs(row - column) > 0.01 * spacing:
            LOGGER.warning(
                "%s: non-square pixels (%s x %s mm); using their mean %.4f mm for distances",
                path, row, column, spacing,
            )  # fmt: skip
        if keyword == "ImagerPixelSpacing":
            factor = _magnification(dataset)
            if factor is not None:
                spacing /= factor
        return spacing
    return None


def _magnification(dataset: pydicom.Dataset) -> Optional[float]:
    try:
        factor = float(dataset.get("EstimatedRadiographicMagnificationFactor") or 0)
    except (TypeError, ValueError):
        return None
    return factor if factor > 0 else None
