"""Image readers on real encoder output: PNG, TIFF, JPEG with EXIF, DICOM, and hostile files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1, generate_uid

from llrformer.errors import UserError, run_cli
from llrformer.images import IMAGE_SUFFIXES, list_images, read_image

REPOSITORY = Path(__file__).resolve().parents[1]
DIGITAL_XRAY_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"


# ---------------------------------------------------------------- builders


def marker_image(height: int = 60, width: int = 24, dtype=np.uint8) -> np.ndarray:
    """Return a dark grey image [height, width] with a bright block in the top-left corner."""
    image = np.full((height, width), 40, dtype=dtype)
    image[:10, :6] = 200
    return image


def jpeg_with_orientation(image: np.ndarray, orientation: int) -> bytes:
    """Encode `image` as JPEG and insert an APP1 EXIF segment with the Orientation tag."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    # Big-endian TIFF structure: header, one IFD with one SHORT entry (tag 274), no next IFD.
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 274, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = encoded.tobytes()
    return data[:2] + app1 + data[2:]


def png_chunk(chunk_type: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", crc)


def png_with_exif(image: np.ndarray, orientation: int) -> bytes:
    """Encode `image` as PNG and insert an eXIf chunk (little-endian TIFF) after IHDR."""
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    tiff = b"II\x2a\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHIHH", 274, 3, 1, orientation, 0) + struct.pack("<I", 0)
    data = encoded.tobytes()
    ihdr_end = 8 + 8 + 13 + 4
    return data[:ihdr_end] + png_chunk(b"eXIf", tiff) + data[ihdr_end:]


def png_claiming_size(width: int, height: int, rows_of_zeros: int = 0) -> bytes:
    """Return an 8-bit grey PNG whose IHDR claims width x height.

    With `rows_of_zeros` equal to `height` the file is complete and valid; zlib packs the
    zero rows to about a thousandth of their size.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then zero pixels
    compressed = b"".join(compressor.compress(row) for _ in range(rows_of_zeros))
    compressed += compressor.flush()
    chunks = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", compressed) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def tiff_bytes(pixels: np.ndarray, orientation: int = 1, photometric: int = 1) -> bytes:
    """Write an uncompressed single-strip grey TIFF by hand, with Orientation and Photometric."""
    height, width = pixels.shape
    data = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    entries = [
        (256, 3, width),
        (257, 3, height),
        (258, 3, pixels.dtype.itemsize * 8),
        (259, 3, 1),
        (262, 3, photometric),
        (273, 4, 0),  # strip offset, filled in below
        (274, 3, orientation),
        (277, 3, 1),
        (278, 3, height),
        (279, 4, len(data)),
    ]
    data_offset = 8 + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, field_type, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if field_type == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, field_type, 1) + packed
    return out + struct.pack("<I", 0) + data


def write_dicom(path: Path, stored: np.ndarray, **elements) -> Path:
    """Write a single-frame grey DICOM file with pydicom; `elements` are set by keyword."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DIGITAL_XRAY_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = elements.pop("transfer_syntax", ExplicitVRLittleEndian)
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "DX"
    dataset.Rows, dataset.Columns = stored.shape[:2]
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 12
    dataset.HighBit = 11
    dataset.PixelRepresentation = 1 if stored.dtype.kind == "i" else 0
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    if "PixelData" not in elements:
        dataset.PixelData = stored.astype(stored.dtype.newbyteorder("<")).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


def bright_block(rgb: np.ndarray) -> tuple:
    """Return (first row, last row, first column, last column) of the bright pixels."""
    grey = rgb[..., 0].astype(float)
    rows, columns = np.nonzero(grey > grey.mean())
    return rows.min(), rows.max(), columns.min(), columns.max()


# ---------------------------------------------------------------- PNG, TIFF, colour


def test_grey_png_8bit_kept_as_is(tmp_path):
    image = marker_image()
    cv2.imwrite(str(tmp_path / "grey.png"), image)
    loaded = read_image(tmp_path / "grey.png")
    assert loaded.rgb.shape == (60, 24, 3)
    assert loaded.rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(loaded.rgb[..., channel], image)
    assert loaded.original_size == (24, 60)
    assert loaded.reduction == 1.0
    assert loaded.pixel_spacing_mm is None


def test_png_16bit_mapped_by_real_range(tmp_path):
    # 12-bit data in a 16-bit file: dropping the low byte would leave values 3..15.
    stored = np.linspace(1000, 4095, 60 * 24).reshape(60, 24).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), stored)
    rgb = read_image(tmp_path / "deep.png").rgb
    expected = np.rint((stored.astype(float) - 1000) * 255 / (4095 - 1000)).astype(np.uint8)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    assert rgb.min() == 0
    assert rgb.max() == 255
    assert np.all(np.diff(rgb[..., 1].ravel().astype(int)) >= 0)


def test_tiff_16bit_keeps_orientation_and_contrast(tmp_path):
    stored = marker_image(dtype=np.uint16) * 16  # 640..3200
    cv2.imwrite(str(tmp_path / "deep.tif"), stored)
    rgb = read_image(tmp_path / "deep.tif").rgb
    assert rgb.shape == (60, 24, 3)
    assert bright_block(rgb) == (0, 9, 0, 5)
    assert rgb[0, 0, 0] == 255
    assert rgb[-1, -1, 0] == 0


def test_float_tiff_mapped_by_finite_range(tmp_path):
    stored = marker_image().astype(np.float32) / 100.0
    stored[30, 10] = np.nan
    cv2.imwrite(str(tmp_path / "float.tif"), stored)
    rgb = read_image(tmp_path / "float.tif").rgb
    assert rgb[0, 0, 0] == 255
    assert rgb[-1, -1, 0] == 0
    assert rgb[30, 10, 0] == 0


def test_rgb_png_channels_in_rgb_order(tmp_path):
    bgr = np.zeros((20, 10, 3), np.uint8)
    bgr[:5] = (0, 0, 255)  # red in OpenCV's BGR order
    bgr[5:10] = (255, 0, 0)  # blue
    cv2.imwrite(str(tmp_path / "colour.png"), bgr)
    rgb = read_image(tmp_path / "colour.png").rgb
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[7, 0]) == (0, 0, 255)


def test_rgba_png_alpha_dropped(tmp_path, caplog):
    bgra = np.zeros((20, 10, 4), np.uint8)
    bgra[..., :3] = (10, 100, 200)
    bgra[..., 3] = 255
    bgra[0, 0, 3] = 0
    cv2.imwrite(str(tmp_path / "alpha.png"), bgra)
    rgb = read_image(tmp_path / "alpha.png").rgb
    assert rgb.shape == (20, 10, 3)
    assert tuple(rgb[0, 0]) == (200, 100, 10)
    assert "alpha channel ignored" in caplog.text


def test_bmp_read(tmp_path):
    cv2.imwrite(str(tmp_path / "grey.bmp"), marker_image())
    rgb = read_image(tmp_path / "grey.bmp").rgb
    assert bright_block(rgb) == (0, 9, 0, 5)


# ---------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_matches_opencv(tmp_path, orientation):
    stored = cv2.cvtColor(marker_image(), cv2.COLOR_GRAY2BGR)
    stored[:10, :6] = (0, 0, 255)  # colour keeps the check sensitive to the channel order
    data = jpeg_with_orientation(stored, orientation)
    (tmp_path / "oriented.jpg").write_bytes(data)

    loaded = read_image(tmp_path / "oriented.jpg")
    # OpenCV's IMREAD_COLOR applies the EXIF orientation itself: an independent reference.
    reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(loaded.rgb, cv2.cvtColor(reference, cv2.COLOR_BGR2RGB))
    assert loaded.exif_orientation == orientation
    assert loaded.original_size == (loaded.rgb.shape[1], loaded.rgb.shape[0])


def test_jpeg_orientation_6_turns_clockwise(tmp_path):
    (tmp_path / "six.jpg").write_bytes(jpeg_with_orientation(marker_image(), 6))
    loaded = read_image(tmp_path / "six.jpg")
    assert loaded.rgb.shape == (24, 60, 3)
    assert loaded.original_size == (60, 24)
    # The top-left block of the stored image is at the top right after a clockwise turn.
    assert bright_block(loaded.rgb) == (0, 5, 50, 59)


def test_png_exif_orientation_applied(tmp_path):
    (tmp_path / "eight.png").write_bytes(png_with_exif(marker_image(), 8))
    loaded = read_image(tmp_path / "eight.png")
    assert loaded.rgb.shape == (24, 60, 3)
    # Orientation 8 turns counter-clockwise: the top-left block ends at the bottom left.
    assert bright_block(loaded.rgb) == (18, 23, 0, 9)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_orientation_tag_applied(tmp_path, dtype):
    (tmp_path / "six.tif").write_bytes(tiff_bytes(marker_image(dtype=dtype), orientation=6))
    loaded = read_image(tmp_path / "six.tif")
    assert loaded.rgb.shape == (24, 60, 3)
    assert bright_block(loaded.rgb) == (0, 5, 50, 59)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_white_is_zero_shown_inverted(tmp_path, dtype):
    (tmp_path / "inverted.tif").write_bytes(tiff_bytes(marker_image(dtype=dtype), photometric=0))
    rgb = read_image(tmp_path / "inverted.tif").rgb
    # Stored 200 is darker than stored 40 when 0 means white.
    assert rgb[0, 0, 0] < rgb[-1, -1, 0]


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".dcm"])
def test_non_ascii_path_with_spaces(tmp_path, suffix):
    folder = tmp_path / "Röntgen Aufnahmen"
    folder.mkdir()
    path = folder / f"患者 01 bein{suffix}"
    if suffix == ".dcm":
        write_dicom(path, marker_image(dtype=np.uint16))
    else:
        ok, encoded = cv2.imencode(suffix, marker_image())
        path.write_bytes(encoded.tobytes())
    loaded = read_image(path)
    assert loaded.rgb.shape == (60, 24, 3)
    assert loaded.path == path
    assert list_images(folder) == [path]


def test_list_images_sorted_and_filtered(tmp_path):
    for name in ["b.PNG", "a.jpg", "c.dcm", ".a.tmp.png", "._d.png", "notes.txt", "e.json"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [path.name for path in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.dcm"]
    assert ".png" in IMAGE_SUFFIXES


def test_list_images_errors(tmp_path):
    with pytest.raises(UserError, match="no images in"):
        list_images(tmp_path)
    with pytest.raises(UserError, match="image folder .* not found"):
        list_images(tmp_path / "missing")


# ---------------------------------------------------------------- DICOM


def test_dicom_monochrome1_window_and_rescale(tmp_path):
    stored = marker_image(dtype=np.uint16) * 10  # 400 in the body, 2000 in the block
    path = write_dicom(
        tmp_path / "mono1.dcm",
        stored,
        PhotometricInterpretation="MONOCHROME1",
        RescaleSlope=2,
        RescaleIntercept=-100,  # values 700 and 3900 after the modality LUT
        WindowCenter=2300,
        WindowWidth=3201,
        PixelSpacing=[0.15, 0.15],
    )
    loaded = read_image(path)

    # LINEAR window: y = (x - (c - 0.5)) / (w - 1) + 0.5, then MONOCHROME1 turns y into 1 - y.
    def shown(x):
        return round(255 * (1 - min(max((x - 2299.5) / 3200 + 0.5, 0), 1)))

    assert loaded.rgb[0, 0, 0] == shown(3900)
    assert loaded.rgb[-1, -1, 0] == shown(700)
    assert loaded.rgb[0, 0, 0] < loaded.rgb[-1, -1, 0]  # high values appear dark
    dark_rows, dark_columns = np.nonzero(loaded.rgb[..., 0] < 128)
    assert (dark_rows.max(), dark_columns.max()) == (9, 5)  # block stays top left
    assert loaded.pixel_spacing_mm == pytest.approx(0.15)
    assert loaded.original_size == (24, 60)


def test_dicom_monochrome2_without_window_uses_range(tmp_path):
    stored = np.linspace(100, 3000, 60 * 24).reshape(60, 24).astype(np.uint16)
    loaded = read_image(write_dicom(tmp_path / "mono2.dcm", stored))
    expected = np.rint((stored.astype(float) - 100) * 255 / 2900).astype(np.uint8)
    np.testing.assert_array_equal(loaded.rgb[..., 2], expected)
    assert loaded.pixel_spacing_mm is None


def test_dicom_signed_values_with_window(tmp_path):
    stored = (marker_image(dtype=np.int16) - 100) * 10  # -600 and 1000
    path = write_dicom(
        tmp_path / "signed.dcm",
        stored,
        WindowCenter=[200, 0],
        WindowWidth=[1600, 10],
        VOILUTFunction="LINEAR_EXACT",
    )
    rgb = read_image(path).rgb
    assert rgb[0, 0, 0] == 255  # 1000 is at the top of the first window (200 + 800)
    assert rgb[-1, -1, 0] == 0  # -600 is at its bottom


def test_dicom_voi_lut_sequence_applied(tmp_path):
    stored = marker_image(dtype=np.uint16) * 10  # 400 and 2000
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.add_new(0x00283006, "US", [4095 - value for value in range(4096)])  # LUT Data, inverting
    path = write_dicom(
        tmp_path / "voi.dcm",
        stored,
        VOILUTSequence=Sequence([item]),
        WindowCenter=2000,
        WindowWidth=4000,  # ignored because the VOI LUT comes first
    )
    rgb = read_image(path).rgb
    assert rgb[0, 0, 0] == round(255 * (4095 - 2000) / 4095)
    assert rgb[-1, -1, 0] == round(255 * (4095 - 400) / 4095)


def test_dicom_imager_spacing_corrected_for_magnification(tmp_path):
    path = write_dicom(
        tmp_path / "imager.dcm",
        marker_image(dtype=np.uint16),
        ImagerPixelSpacing=[0.148, 0.148],
        EstimatedRadiographicMagnificationFactor=1.2,
    )
    assert read_image(path).pixel_spacing_mm == pytest.approx(0.148 / 1.2)


# ---------------------------------------------------------------- huge images


def peak_memory_of_read(path: Path, max_pixels: int) -> dict:
    """Read `path` in a fresh interpreter; return its result and peak memory growth in MB."""
    script = f"""
import json, resource, sys
from llrformer.errors import UserError
from llrformer.images import read_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    image = read_image({str(path)!r}, max_pixels={max_pixels})
    result = {{"size": image.size, "original": image.original_size, "reduction": image.reduction}}
except UserError as error:
    result = {{"error": str(error)}}
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result["growth_mb"] = (after - before) / 1024
print(json.dumps(result))
"""
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_huge_png_rejected_from_header(tmp_path):
    # A complete, valid 16,000 x 48,000 PNG of zeros: about 0.8 MB on disk, 768 MB decoded.
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming_size(16000, 48000, rows_of_zeros=48000))
    result = peak_memory_of_read(path, max_pixels=64_000_000)
    assert "16000 x 48000 pixels (768 megapixels)" in result["error"]
    assert "a PNG file cannot be decoded at reduced size (only JPEG can)" in result["error"]
    assert result["growth_mb"] < 50


def test_huge_jpeg_decoded_reduced(tmp_path):
    stored = np.zeros((12000, 4000), np.uint8)
    stored[8000:9000, 1000:2000] = 255
    path = tmp_path / "large.jpg"
    cv2.imwrite(str(path), stored)
    del stored
    result = peak_memory_of_read(path, max_pixels=4_000_000)
    assert result.get("error") is None
    assert result["reduction"] == 4.0
    assert result["size"] == [1000, 3000]
    assert result["original"] == [4000, 12000]
    # Decoding at full size would need 48 MB for the grey data and 144 MB for RGB.
    assert result["growth_mb"] < 40

    rgb = read_image(path, max_pixels=4_000_000).rgb
    assert rgb[2000:2250, 250:500].mean() > 250  # the block at 1/4 of its position
    assert rgb[:1900].max() < 10


def test_max_pixels_from_environment(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / "small.png"), marker_image())
    monkeypatch.setenv("LLRFORMER_MAX_PIXELS", "1000")
    with pytest.raises(UserError, match="more than the limit"):
        read_image(tmp_path / "small.png")
    monkeypatch.setenv("LLRFORMER_MAX_PIXELS", "many")
    with pytest.raises(UserError, match="invalid LLRFORMER_MAX_PIXELS='many'"):
        read_image(tmp_path / "small.png")


# ---------------------------------------------------------------- hostile corpus


def build_truncated_png(path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", noise)
    path.write_bytes(encoded.tobytes()[: len(encoded) // 2])


def build_truncated_jpeg(path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", noise)
    path.write_bytes(encoded.tobytes()[: len(encoded) // 2])


def build_dicom_without_pixels(path: Path) -> None:
    write_dicom(path.with_suffix(".tmp"), marker_image(dtype=np.uint16))
    from pydicom import dcmread

    dataset = dcmread(path.with_suffix(".tmp"))
    del dataset.PixelData
    dataset.save_as(path)


def build_multiframe_dicom(path: Path) -> None:
    frames = np.stack([marker_image(dtype=np.uint16)] * 2)
    write_dicom(path, frames[0], NumberOfFrames=2, PixelData=frames.tobytes())


def build_compressed_dicom(path: Path) -> None:
    write_dicom(
        path,
        marker_image(dtype=np.uint16),
        transfer_syntax=JPEGLosslessSV1,
        # Encapsulated pixel data: an empty basic offset table, then a fragment of junk.
        PixelData=b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
        + b"\xfe\xff\x00\xe0\x08\x00\x00\x00"
        + b"\xff\xd8junk\xff\xd9"
        + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",
    )


HOSTILE_IMAGES = [
    ("empty.png", lambda p: p.write_bytes(b""), "the file is empty"),
    ("missing.png", None, "file not found"),
    ("folder.png", lambda p: p.mkdir(), "not a file"),
    ("text.png", lambda p: p.write_text('{"shapes": []}'), "not a PNG, JPEG, TIFF, BMP or DICOM"),
    ("truncated.png", build_truncated_png, "could not decode this png file; it may be truncated"),
    ("header only.png", lambda p: p.write_bytes(png_claiming_size(10, 10)[:20]), "truncated"),
    ("zero.png", lambda p: p.write_bytes(png_claiming_size(0, 10)), "invalid size of 0 x 10"),
    ("truncated.jpg", build_truncated_jpeg, "truncated"),
    ("soi only.jpg", lambda p: p.write_bytes(b"\xff\xd8\xff\xe0\x00"), "header is truncated"),
    ("junk.dcm", lambda p: p.write_bytes(b"hello" * 40), "no Pixel Data element"),
    ("no pixels.dcm", build_dicom_without_pixels, "no Pixel Data element"),
    ("frames.dcm", build_multiframe_dicom, "has 2 frames"),
    (
        "lossless.dcm",
        build_compressed_dicom,
        "decode the pixel data (Unable to decompress 'JPEG Lossless",
    ),
    (
        "huge.png",
        lambda p: p.write_bytes(png_claiming_size(16000, 48000)),
        "16000 x 48000 pixels (768 megapixels), more than the limit",
    ),
]


@pytest.mark.parametrize(
    "name, build, expected", HOSTILE_IMAGES, ids=[case[0] for case in HOSTILE_IMAGES]
)
def test_hostile_image_gives_one_line(tmp_path, capsys, name, build, expected):
    path = tmp_path / name
    if build is not None:
        build(path)

    status = run_cli(lambda argv: read_image(path) and 0, program="read_image")

    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"read_image: error: cannot read image {path}: ")
    assert expected in lines[0]


def test_dicom_palette_colour_example():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("examples_palette.dcm")  # bundled with pydicom, no download
    loaded = read_image(path)
    assert loaded.rgb.shape == (350, 800, 3)
    # The Philips banner at the top is blue: more blue than red.
    banner = loaded.rgb[:50].reshape(-1, 3).astype(float).mean(axis=0)
    assert banner[2] > banner[0] + 20
