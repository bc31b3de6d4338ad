"""Image format, size and orientation from file headers, read without decoding any pixel.

The size decides whether an image fits in memory before OpenCV allocates it. The EXIF
orientation of JPEG and PNG files is applied by `llrformer.images` itself, because
cv2.IMREAD_UNCHANGED, which keeps 16-bit data, ignores it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Tuple, Union

from .errors import UserError

PathLike = Union[str, os.PathLike]
ReadAt = Callable[[int, int], bytes]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DICOM_SUFFIXES = (".dcm", ".dicom")

_TIFF_ORIENTATION = 274
_TIFF_PHOTOMETRIC = 262
_TIFF_WIDTH = 256
_TIFF_HEIGHT = 257
# TIFF field types that hold unsigned integers: BYTE, SHORT, LONG, LONG8 (BigTIFF).
_TIFF_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}
# JPEG start-of-frame markers: C0..CF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass
class ImageHeader:
    """Facts from an image file header.

    `width` and `height` are the stored pixel grid, before the orientation is applied.
    For DICOM they are 0, because pydicom reads the DICOM header. `channels` is known
    for JPEG only (0 elsewhere).
    """

    format: str
    width: int
    height: int
    orientation: int = 1
    white_is_zero: bool = False
    scan_offset: int = 0
    channels: int = 0

    @property
    def display_size(self) -> Tuple[int, int]:
        """(width, height) after the orientation, as a viewer shows the image."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def image_error(path: PathLike, problem: str, action: str) -> UserError:
    """Build the UserError for an unreadable image: what failed, which file, what to do."""
    return UserError(f"cannot read image {path}: {problem}; {action}")


def detect_format(start: bytes, path: Path) -> str:
    """Return "png", "jpeg", "tiff", "bmp" or "dicom" from the first 132 bytes of a file."""
    if start.startswith(PNG_SIGNATURE):
        return "png"
    if start.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if start[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if start.startswith(b"BM"):
        return "bmp"
    if start[128:132] == b"DICM" or path.suffix.lower() in DICOM_SUFFIXES:
        return "dicom"
    looks_like = " (it looks like text)" if start[:1] in (b"{", b"[", b"<") else ""
    raise image_error(
        path,
        f"not a PNG, JPEG, TIFF, BMP or DICOM file{looks_like}; it starts with {start[:8]!r}",
        "convert it to one of these formats",
    )


def read_header(handle: BinaryIO, path: Path) -> ImageHeader:
    """Read the format, size and orientation of the image file open in `handle`."""
    start = handle.read(132)
    kind = detect_format(start, path)
    if kind == "dicom":
        return ImageHeader("dicom", 0, 0)
    readers = {"png": _png_header, "jpeg": _jpeg_header, "tiff": _tiff_header, "bmp": _bmp_header}
    try:
        header = readers[kind](handle, path)
    except (struct.error, EOFError):
        raise image_error(
            path, f"the {kind} header is truncated", "export or copy the image again"
        ) from None
    if header.width <= 0 or header.height <= 0:
        raise image_error(
            path,
            f"the {kind} header gives an invalid size of {header.width} x {header.height}",
            "export the image again",
        )
    return header


def _read_exactly(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise EOFError
    return data


def _png_header(handle: BinaryIO, path: Path) -> ImageHeader:
    """Read IHDR, then walk the chunks before the image data for an eXIf orientation."""
    handle.seek(len(PNG_SIGNATURE))
    length, chunk_type = struct.unpack(">I4s", _read_exactly(handle, 8))
    if chunk_type != b"IHDR":
        raise image_error(path, "the PNG has no IHDR chunk", "export the image again")
    width, height = struct.unpack(">II", _read_exactly(handle, 8))
    handle.seek(length - 8 + 4, os.SEEK_CUR)

    orientation = 1
    while True:
        chunk = handle.read(8)
        if len(chunk) < 8:
            break
        length, chunk_type = struct.unpack(">I4s", chunk)
        if chunk_type in (b"IDAT", b"IEND"):
            break
        if chunk_type == b"eXIf":
            exif = _read_exactly(handle, length)
            orientation = exif_orientation(exif)
            handle.seek(4, os.SEEK_CUR)
        else:
            handle.seek(length + 4, os.SEEK_CUR)
    return ImageHeader("png", width, height, orientation=orientation)


def _jpeg_header(handle: BinaryIO, path: Path) -> ImageHeader:
    """Walk the JPEG markers up to the start of scan, reading the frame size and EXIF."""
    handle.seek(2)
    width = height = channels = 0
    orientation = 1
    while True:
        if _read_exactly(handle, 1) != b"\xff":
            raise image_error(path, "the JPEG header is corrupt", "export the image again")
        marker = _read_exactly(handle, 1)[0]
        while marker == 0xFF:  # fill bytes may precede a marker
            marker = _read_exactly(handle, 1)[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue  # markers without a length field
        if marker == 0xD9:
            raise image_error(path, "the JPEG ends before any image data", "export it again")
        (length,) = struct.unpack(">H", _read_exactly(handle, 2))
        if marker == 0xDA:
            scan_offset = handle.tell() - 4
            break
        if marker in _JPEG_SOF_MARKERS:
            frame = _read_exactly(handle, length - 2)
            height, width, channels = struct.unpack(">HHB", frame[1:6])
        elif marker == 0xE1:
            segment = _read_exactly(handle, length - 2)
            if segment.startswith(b"Exif\x00\x00"):
                orientation = exif_orientation(segment[6:])
        else:
            handle.seek(length - 2, os.SEEK_CUR)
    if width == 0 and height == 0:
        raise image_error(path, "the JPEG has no frame header", "export the image again")
    return ImageHeader(
        "jpeg", width, height, orientation=orientation, scan_offset=scan_offset, channels=channels
    )


def _tiff_header(handle: BinaryIO, path: Path) -> ImageHeader:
    def read_at(offset: int, size: int) -> bytes:
        handle.seek(offset)
        return _read_exactly(handle, size)

    tags = read_tiff_tags(read_at)
    return ImageHeader(
        "tiff",
        tags.get(_TIFF_WIDTH, 0),
        tags.get(_TIFF_HEIGHT, 0),
        orientation=tags.get(_TIFF_ORIENTATION, 1),
        white_is_zero=tags.get(_TIFF_PHOTOMETRIC, 1) == 0,
    )


def _bmp_header(handle: BinaryIO, path: Path) -> ImageHeader:
    handle.seek(14)
    (info_size,) = struct.unpack("<I", _read_exactly(handle, 4))
    if info_size == 12:  # BITMAPCOREHEADER has 16-bit sizes
        width, height = struct.unpack("<HH", _read_exactly(handle, 4))
    else:
        width, height = struct.unpack("<ii", _read_exactly(handle, 8))
    # A negative height marks a top-down bitmap.
    return ImageHeader("bmp", width, abs(height))


def exif_orientation(tiff_block: bytes) -> int:
    """Return the Orientation tag (1..8) of an EXIF block (a TIFF structure), or 1."""

    def read_at(offset: int, size: int) -> bytes:
        data = tiff_block[offset : offset + size]
        if len(data) != size:
            raise EOFError
        return data

    try:
        orientation = read_tiff_tags(read_at).get(_TIFF_ORIENTATION, 1)
    except (struct.error, EOFError, ValueError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def read_tiff_tags(read_at: ReadAt) -> Dict[int, int]:
    """Return the first value of each integer tag of the first IFD of a TIFF structure.

    `read_at(offset, size)` returns `size` bytes at `offset` from the start of the
    structure. Classic TIFF and BigTIFF, little- and big-endian, are read.
    """
    byte_order = read_at(0, 2)
    if byte_order not in (b"II", b"MM"):
        raise ValueError("not a TIFF structure")
    endian = "<" if byte_order == b"II" else ">"
    (version,) = struct.unpack(endian + "H", read_at(2, 2))
    big = version == 43
    if big:
        (ifd_offset,) = struct.unpack(endian + "Q", read_at(8, 8))
        (count,) = struct.unpack(endian + "Q", read_at(ifd_offset, 8))
        entry_format, entry_size, first_entry = endian + "HHQ8s", 20, ifd_offset + 8
    else:
        (ifd_offset,) = struct.unpack(endian + "I", read_at(4, 4))
        (count,) = struct.unpack(endian + "H", read_at(ifd_offset, 2))
        entry_format, entry_size, first_entry = endian + "HHI4s", 12, ifd_offset + 2
    if count > 4096:
        raise ValueError("implausible TIFF tag count")

    tags: Dict[int, int] = {}
    for index in range(count):
        entry = read_at(first_entry + index * entry_size, entry_size)
        tag, field_type, value_count, field = struct.unpack(entry_format, entry)
        code = _TIFF_TYPES.get(field_type)
        if code is None or value_count == 0:
            continue
        size = struct.calcsize(code)
        if value_count * size > len(field):  # the field contains an offset to the values
            (offset,) = struct.unpack(endian + ("Q" if big else "I"), field)
            field = read_at(offset, size)
        (tags[tag],) = struct.unpack(endian + code, field[:size])
    return tags
