"""Drawing of a phantom body into an AP radiograph: attenuation maps, display curve, noise.

The renderer sums water-equivalent path lengths (mm) of soft tissue, bone and metal along
each ray. It then processes them the way a digital radiography system does: soft tissue
is compressed and an exponential display curve lets metal saturate. Blur and noise come
last. Bones are drawn at half the output resolution, soft tissue at a
quarter, and the noise at full resolution.

Image coordinates are continuous pixels: pixel (i, j) covers [j, j + 1) x [i, i + 1), so
its centre is (j + 0.5, i + 0.5). Keypoints use the same convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import List, Tuple

import cv2
import numpy as np

from .phantom_body import Body
from .phantom_shapes import CORTEX_DENSITY, Bone, Disk, Stroke

TEXTURE_SHAPE = (2048, 1024)  # rows, columns; covers any half-resolution canvas
NOISE_TILE_SHAPE = (3900, 1500)  # covers any full-resolution image (3800 x 1400 at most)
NOISE_TILE_STD = 30.0


@dataclass
class Appearance:
    """Imaging settings of one case (exposure, processing, blur and noise)."""

    soft_gain: float  # display weight of the soft-tissue path length
    soft_gamma: float  # compression exponent of the soft-tissue path length
    bone_gain: float  # display weight of the bone path length
    exposure_mm: float  # water-equivalent path length at which the display is 63 % white
    background: float  # grey level of air, 0-255
    gamma: float  # exponent of the display curve
    noise: float  # noise standard deviation in grey levels at mid grey
    blur_mm: float  # standard deviation of the detector blur
    texture: float  # relative amplitude of the trabecular texture
    side_marker: bool  # draw a lead "R" marker in the upper corner on the patient's right
    muscle_contrast: float  # extra attenuation of muscle over fat, relative


@dataclass
class View:
    """Placement of the body in the image: size, pixel spacing and the world-to-image map."""

    width: int
    height: int
    spacing_mm: float  # mm per pixel, isotropic
    matrix: np.ndarray  # [2, 3]: image (x, y) = matrix @ (world x, world y, 1)
    tilt_deg: float

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Map world mm points [..., 2] to continuous image pixels [..., 2]."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Draw the imaging settings of one case."""
    return Appearance(
        soft_gain=rng.uniform(0.38, 0.62),
        soft_gamma=rng.uniform(0.45, 0.7),
        bone_gain=rng.uniform(0.85, 1.2),
        exposure_mm=rng.uniform(120.0, 190.0),
        background=rng.uniform(0.0, 28.0),
        gamma=rng.uniform(0.85, 1.3),
        noise=rng.uniform(1.0, 5.0),
        blur_mm=rng.uniform(0.2, 0.7),
        texture=rng.uniform(0.08, 0.22),
        side_marker=bool(rng.random() < 0.6),
        muscle_contrast=rng.uniform(0.06, 0.16),
    )


def plan_view(body: Body, rng: np.random.Generator) -> View:
    """Choose the image size, pixel spacing, tilt and position of the body.

    The height is 2600-3800 pixels and the width 900-1400; the field of view runs from
    about the iliac crests to the soles, and every landmark stays at least 15 mm inside.
    """
    tilt = rng.uniform(-2.0, 2.0)
    marks = np.array([point for leg in body.legs.values() for point in leg.landmarks.values()])
    centre = np.array([0.0, 0.5 * (body.top_y + body.bottom_y)])
    angle = np.radians(tilt)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rotated = (marks - centre) @ rotation.T + centre

    top = min(body.top_y, rotated[:, 1].min() - 120.0) - rng.uniform(-25.0, 35.0)
    bottom = max(body.bottom_y + rng.uniform(-25.0, 25.0), rotated[:, 1].max() + 40.0)
    height = int(rng.integers(2600, 3801))
    spacing = (bottom - top) / height
    x_min, x_max = rotated[:, 0].min() - 18.0, rotated[:, 0].max() + 18.0
    needed = x_max - x_min
    width = int(np.clip(round((needed + rng.uniform(10.0, 80.0)) / spacing), 900, 1400))
    if width * spacing < needed:
        spacing = needed / width
        height = int(round((bottom - top) / spacing))
    slack = width * spacing - needed
    left = x_min - rng.uniform(0.0, slack)

    # image = (R (p - c) + c - (left, top)) / spacing
    linear = rotation / spacing
    offset = (centre - rotation @ centre - np.array([left, top])) / spacing
    return View(width, height, spacing, np.column_stack([linear, offset]), tilt)


@lru_cache(maxsize=1)
def _texture_tile() -> np.ndarray:
    """Return a fixed noise tile (float32, zero mean) for the texture of cancellous bone.

    A band-pass part with structures of about 1 mm mimics trabeculae, a smooth part of
    about 6 mm uneven mineral density (sizes at a typical half-resolution pixel of 0.6 mm).
    """
    generator = np.random.default_rng(20240611)
    noise = generator.standard_normal(TEXTURE_SHAPE).astype(np.float32)
    band = cv2.GaussianBlur(noise, (0, 0), 0.7) - cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = cv2.GaussianBlur(generator.standard_normal(TEXTURE_SHAPE).astype(np.float32),
                              (0, 0), 10.0)  # fmt: skip
    return band / band.std() + 0.6 * smooth / smooth.std()


@lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    """Return a fixed int8 Gaussian noise tile (std NOISE_TILE_STD) larger than any image.

    NOTE: every case reads a randomly shifted window of this one tile, because drawing
    fresh full-resolution noise took about 10 ms per image, a sixth of the generator's time.
    """
    noise = np.random.default_rng(20240612).standard_normal(NOISE_TILE_SHAPE, dtype=np.float32)
    return np.clip(np.round(noise * NOISE_TILE_STD), -127, 127).astype(np.int8)


def _roi(points: np.ndarray, shape: Tuple[int, int], margin: int = 2) -> Tuple[int, int, int, int]:
    """Return the clipped integer box (x0, y0, x1, y1) around continuous pixel points."""
    x0 = max(int(np.floor(points[:, 0].min())) - margin, 0)
    y0 = max(int(np.floor(points[:, 1].min())) - margin, 0)
    x1 = min(int(np.ceil(points[:, 0].max())) + margin, shape[1])
    y1 = min(int(np.ceil(points[:, 1].max())) + margin, shape[0])
    return x0, y0, x1, y1


def fixed_point(points: np.ndarray, x0: int = 0, y0: int = 0) -> np.ndarray:
    """Convert continuous pixel points to OpenCV drawing points with 4 fractional bits."""
    shifted = (np.asarray(points) - np.array([x0 + 0.5, y0 + 0.5])) * 16.0
    return np.round(shifted).astype(np.int32).reshape(-1, 1, 2)


def _rounded(depth: np.ndarray, radius) -> np.ndarray:
    """Return the chord 2 sqrt(d (2R - d)) of a rounded body, flat at 2R beyond d = R."""
    d = np.minimum(np.maximum(depth, 0.0), radius)
    return 2.0 * np.sqrt(d * (2.0 * radius - d))


def _station_lookup(bone: Bone, t: np.ndarray) -> Tuple[object, object, object]:
    """Return R, cortex and inner density at axis distances `t` (pixels), by table lookup.

    Constant stations come back as Python floats, varying ones as arrays shaped like `t`.
    """
    stations = bone.stations
    if np.all(stations[1:, 1:] == stations[:1, 1:]):
        return float(stations[0, 1]), float(stations[0, 2]), float(stations[0, 3])
    t_min, t_max = float(t.min()), float(t.max())
    grid = np.arange(t_min, t_max + 2.0, 1.0)
    index = np.clip((t - t_min).astype(np.int32), 0, grid.size - 1)
    columns = [np.interp(grid, bone.stations[:, 0], bone.stations[:, k]).astype(np.float32)
               for k in (1, 2, 3)]  # fmt: skip
    return columns[0][index], columns[1][index], columns[2][index]


def _disk_density(disk: Disk, xs: np.ndarray, ys: np.ndarray, tex: np.ndarray) -> np.ndarray:
    """Return the projected density of a sphere (pixel units) on a grid."""
    rho2 = (xs - float(disk.centre[0])) ** 2 + (ys - float(disk.centre[1])) ** 2
    outer = 2.0 * np.sqrt(np.maximum(float(disk.radius) ** 2 - rho2, 0.0))
    core = max(float(disk.radius - disk.cortex), 0.0)
    inner = 2.0 * np.sqrt(np.maximum(core**2 - rho2, 0.0))
    return CORTEX_DENSITY * (outer - inner) + disk.inner * inner * tex


def draw_bone(canvas: np.ndarray, bone: Bone, mm_per_px: float, texture: np.ndarray) -> None:
    """Add a bone's water-equivalent path length (mm) to `canvas`, in pixel coordinates.

    The bone must already be mapped to the canvas pixels. Parts (outline, disks) are joined
    by their maximum, so that overlapping parts of one bone do not add up. `texture`, shaped
    like the canvas, is a multiplicative trabecular pattern (about 1) for the interior.
    """
    points = [bone.outline] + [d.centre[None] + np.array([[-d.radius, -d.radius],
                                                          [d.radius, d.radius]])
                               for d in bone.disks]  # fmt: skip
    x0, y0, x1, y1 = _roi(np.concatenate(points), canvas.shape)
    if x1 <= x0 or y1 <= y0:
        return
    xs = (np.arange(x0, x1, dtype=np.float32) + np.float32(0.5))[None, :]
    ys = (np.arange(y0, y1, dtype=np.float32) + np.float32(0.5))[:, None]
    tex = texture[y0:y1, x0:x1]

    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [fixed_point(bone.outline, x0, y0)], 1, cv2.LINE_8, shift=4)
    for hole in bone.holes:
        cv2.fillPoly(mask, [fixed_point(hole, x0, y0)], 0, cv2.LINE_8, shift=4)
    depth = np.maximum(cv2.distanceTransform(mask, cv2.DIST_L2, 5) - 0.5, 0.0)
    origin_x, origin_y = float(bone.axis_origin[0]), float(bone.axis_origin[1])
    t = (xs - origin_x) * float(bone.axis_direction[0]) + (ys - origin_y) * float(
        bone.axis_direction[1]
    )
    radius, cortex, inner_density = _station_lookup(bone, t)
    outer = _rounded(depth, radius)
    inner = _rounded(depth - cortex, np.maximum(np.subtract(radius, cortex), 0.0))
    density = CORTEX_DENSITY * (outer - inner) + inner_density * inner * tex
    for disk in bone.disks:
        density = np.maximum(density, _disk_density(disk, xs, ys, tex))
    canvas[y0:y1, x0:x1] += float(bone.gain * mm_per_px) * density


def draw_strokes(canvas: np.ndarray, strokes: List[Stroke], mm_per_px: float) -> None:
    """Add dense lines (width in pixels, density in water-equivalent mm) to `canvas`."""
    layer = np.zeros_like(canvas)
    for stroke in strokes:
        thickness = max(int(round(stroke.width)), 1)
        cv2.polylines(layer, [fixed_point(stroke.points)], False, float(stroke.density),
                      thickness, cv2.LINE_8, shift=4)  # fmt: skip
    canvas += cv2.GaussianBlur(layer, (0, 0), 1.0)


def soft_tissue_map(slabs: List[np.ndarray], view: View, factor: int) -> np.ndarray:
    """Return the soft-tissue path length (mm) on a grid `factor` times coarser than the image.

    Each slab is an elliptic cylinder per row: thickness 2 c sqrt(1 - ((x - m) / a)^2), with
    m the midpoint of the skin edges, a their half distance and c the half-depth. Slabs join
    by their maximum, so touching thighs do not add up.
    """
    height, width = -(-view.height // factor), -(-view.width // factor)
    inverse = [[float(v) for v in row] for row in np.linalg.inv(
        np.vstack([view.matrix, [0.0, 0.0, 1.0]]))[:2]]  # fmt: skip
    cols = (np.arange(width, dtype=np.float32) + np.float32(0.5)) * np.float32(factor)
    rows = (np.arange(height, dtype=np.float32) + np.float32(0.5)) * np.float32(factor)
    world_x = inverse[0][0] * cols[None, :] + inverse[0][1] * rows[:, None] + inverse[0][2]
    world_y = inverse[1][0] * cols[None, :] + inverse[1][1] * rows[:, None] + inverse[1][2]

    y_min, y_max = float(world_y.min()) - 1.0, float(world_y.max()) + 1.0
    table_y = np.arange(y_min, y_max + 1.0, 1.0)
    index = np.clip((world_y - y_min).astype(np.int32), 0, table_y.size - 1)
    total = np.zeros((height, width), np.float32)
    for slab in slabs:
        edge_a = np.interp(table_y, slab[:, 0], slab[:, 1])
        edge_b = np.interp(table_y, slab[:, 0], slab[:, 2])
        depth = np.interp(table_y, slab[:, 0], slab[:, 3], left=0.0, right=0.0)

        # World coordinates are linear along rows and columns, so their extremes are at the
        # ends: the slab's block of rows and columns follows from the first and last ones.
        row_low = np.minimum(world_y[:, 0], world_y[:, -1])
        row_high = np.maximum(world_y[:, 0], world_y[:, -1])
        rows_in = np.nonzero((row_low <= slab[:, 0].max()) & (row_high >= slab[:, 0].min()))[0]
        x_low = float(min(edge_a.min(), edge_b.min()))
        x_high = float(max(edge_a.max(), edge_b.max()))
        col_low = np.minimum(world_x[0], world_x[-1])
        col_high = np.maximum(world_x[0], world_x[-1])
        cols_in = np.nonzero((col_high >= x_low) & (col_low <= x_high))[0]
        if rows_in.size == 0 or cols_in.size == 0:
            continue
        block = (slice(rows_in[0], rows_in[-1] + 1), slice(cols_in[0], cols_in[-1] + 1))
        rows_index = index[block]
        middle = (0.5 * (edge_a + edge_b)).astype(np.float32)[rows_index]
        half = np.maximum(0.5 * np.abs(edge_a - edge_b), 1.0).astype(np.float32)[rows_index]
        ratio = (world_x[block] - middle) / half
        chord = np.sqrt(np.maximum(1.0 - ratio * ratio, 0.0))
        chord *= 2.0 * depth.astype(np.float32)[rows_index]
        np.maximum(total[block], chord, out=total[block])
    return total


def render_radiograph(
    body: Body, view: View, look: Appearance, rng: np.random.Generator
) -> np.ndarray:
    """Render the body with its metal parts as a uint8 [height, width] radiograph."""
    half_shape = (-(-view.height // 2), -(-view.width // 2))
    half_mm = 2.0 * view.spacing_mm

    def to_half(points: np.ndarray) -> np.ndarray:
        return 0.5 * view.to_image(points)

    # Soft tissue, compressed the way equalising image processing does.
    # Muscle attenuates a little more than fat, so the fat under the skin shows darker.
    soft = soft_tissue_map(body.soft_tissue, view, 4)
    soft += look.muscle_contrast * soft_tissue_map(body.muscle, view, 4)
    reference = 150.0
    soft = (look.soft_gain * reference) * np.power(soft / reference, look.soft_gamma)
    signal = cv2.resize(soft, (half_shape[1], half_shape[0]), interpolation=cv2.INTER_LINEAR)

    # Bones and dense lines at half resolution.
    bones = np.zeros(half_shape, np.float32)
    # The texture tile is larger than any half-resolution canvas, so a shifted window of it
    # covers the canvas.
    tile = _texture_tile()
    row = int(rng.integers(tile.shape[0] - half_shape[0] + 1))
    col = int(rng.integers(tile.shape[1] - half_shape[1] + 1))
    texture = 1.0 + look.texture * tile[row : row + half_shape[0], col : col + half_shape[1]]
    linear = view.matrix[:, :2] * 0.5
    for leg in body.legs.values():
        for bone in leg.bones:
            draw_bone(bones, bone.mapped(to_half, linear), half_mm, texture)
    for bone in body.pelvis:
        draw_bone(bones, bone.mapped(to_half, linear), half_mm, texture)
    scale = 0.5 / view.spacing_mm
    draw_strokes(bones, [stroke.mapped(to_half, scale) for stroke in body.strokes], half_mm)
    signal += look.bone_gain * bones
    for part in body.metal:
        part.draw(signal, to_half)
    if look.side_marker:
        _draw_side_marker(signal, 2.0 * view.spacing_mm, rng)

    # Display curve (by table lookup), detector blur, upsampling and noise.
    grey = _display_curve(signal, look)
    cv2.setRNGSeed(int(rng.integers(2**31 - 1)))
    mottle = np.empty((half_shape[0] // 2, half_shape[1] // 2), np.float32)
    cv2.randn(mottle, 0.0, 1.0)
    mottle = cv2.resize(mottle, (half_shape[1], half_shape[0]), interpolation=cv2.INTER_LINEAR)
    grey += mottle * (look.noise * (0.3 + grey * (1.5 / 255.0)))
    grey = cv2.GaussianBlur(grey, (0, 0), max(look.blur_mm / half_mm, 0.3))
    full = cv2.resize(grey, (view.width, view.height), interpolation=cv2.INTER_LINEAR)
    tile = _noise_tile()
    row = int(rng.integers(tile.shape[0] - view.height + 1))
    col = int(rng.integers(tile.shape[1] - view.width + 1))
    noise = tile[row : row + view.height, col : col + view.width]
    return cv2.addWeighted(full, 1.0, noise, look.noise / NOISE_TILE_STD, 0.5, dtype=cv2.CV_8U)


def _draw_side_marker(signal: np.ndarray, mm_per_px: float, rng: np.random.Generator) -> None:
    """Add a lead "R" marker, 15-20 mm tall, in the top left corner (above the hips)."""
    height_px = rng.uniform(15.0, 20.0) / mm_per_px
    x = int(rng.uniform(0.03, 0.1) * signal.shape[1])
    y = int(rng.uniform(0.02, 0.06) * signal.shape[0] + height_px)
    layer = np.zeros(signal.shape, np.uint8)
    letter_height = cv2.getTextSize("R", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)[0][1]
    scale = height_px / letter_height
    thickness = max(int(round(scale * 3.0)), 1)
    cv2.putText(layer, "R", (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    margin = int(0.35 * height_px)
    cv2.rectangle(layer, (x - margin, int(y - height_px) - margin),
                  (x + int(0.8 * height_px) + margin, y + margin), 255, max(thickness // 2, 1),
                  cv2.LINE_AA)  # fmt: skip
    signal += layer.astype(np.float32) * (rng.uniform(600.0, 1500.0) / 255.0)


def _display_curve(signal: np.ndarray, look: Appearance) -> np.ndarray:
    """Map water-equivalent path length (mm) to grey levels: air dark, metal saturating."""
    step = 0.25
    lengths = np.arange(0.0, 8.0 * look.exposure_mm, step, dtype=np.float32)
    white = 1.0 - np.exp(-lengths / look.exposure_mm)
    table = (look.background + (255.0 - look.background) * white**look.gamma).astype(np.float32)
    index = np.clip(signal * (1.0 / step), 0, table.size - 1).astype(np.int32)
    return table[index]
