"""Plane-geometry helpers and the shape records that the phantom renderer draws.

Points are (x, y) in mm with y pointing down, as numpy arrays of shape [2] or [N, 2].
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable, List, Tuple

import numpy as np

Transform = Callable[[np.ndarray], np.ndarray]

# Densities above soft tissue, in water-equivalent mm per mm of material.
CORTEX_DENSITY = 4.0
CANCELLOUS = 0.9
MARROW = 0.05


def unit(vector: np.ndarray) -> np.ndarray:
    """Return `vector` scaled to length 1."""
    return vector / np.linalg.norm(vector)


def turn(vector: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate `vector` in a leg frame (+x lateral, +y down).

    Positive angles turn down towards lateral, lateral towards up, up towards medial.
    """
    angle = np.radians(-degrees)
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([vector[0] * cos - vector[1] * sin, vector[0] * sin + vector[1] * cos])


def signed_angle(first: np.ndarray, second: np.ndarray) -> float:
    """Return the angle in degrees that turns `first` into `second` (image rotation sense)."""
    cross = first[0] * second[1] - first[1] * second[0]
    return float(np.degrees(np.arctan2(cross, float(np.dot(first, second)))))


def line_intersection(
    point_a: np.ndarray, direction_a: np.ndarray, point_b: np.ndarray, direction_b: np.ndarray
) -> np.ndarray:
    """Return the intersection of two lines given by a point and a direction each."""
    matrix = np.column_stack([direction_a, -direction_b])
    t = np.linalg.solve(matrix, point_b - point_a)
    return point_a + t[0] * direction_a


def segment(start: np.ndarray, end: np.ndarray, count: int = 6) -> np.ndarray:
    """Return `count` points from `start` to `end`, [count, 2]."""
    t = np.linspace(0.0, 1.0, count)[:, None]
    return (1.0 - t) * start + t * end


@lru_cache(maxsize=64)
def _bezier_weights(count: int) -> np.ndarray:
    """Return the [count, 3] Bernstein weights of a quadratic Bezier curve."""
    t = np.linspace(0.0, 1.0, count)[:, None]
    return np.hstack([(1.0 - t) ** 2, 2.0 * (1.0 - t) * t, t**2])


def bezier(start: np.ndarray, control: np.ndarray, end: np.ndarray, count: int = 14) -> np.ndarray:
    """Return `count` points of the quadratic Bezier curve start-control-end, [count, 2]."""
    return _bezier_weights(count) @ np.stack([start, control, end])


def arc(
    centre: np.ndarray,
    axis_x: np.ndarray,
    axis_y: np.ndarray,
    radius_x: float,
    radius_y: float,
    start_deg: float,
    end_deg: float,
    count: int = 24,
) -> np.ndarray:
    """Return points of an ellipse arc: centre + axis_x rx cos(t) + axis_y ry sin(t), [count, 2]."""
    t = np.radians(np.linspace(start_deg, end_deg, count))[:, None]
    return centre + radius_x * np.cos(t) * axis_x + radius_y * np.sin(t) * axis_y


def chain(*pieces: np.ndarray) -> np.ndarray:
    """Concatenate polyline pieces, dropping a point that repeats the previous one."""
    points = [pieces[0]]
    for piece in pieces[1:]:
        if np.abs(points[-1][-1] - piece[0]).max() < 1e-9:
            piece = piece[1:]
        points.append(piece)
    return np.concatenate(points, axis=0)


def smooth_polyline(points: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Round the corners of an open polyline [N, k] by Chaikin's corner cutting.

    The end points stay in place; every other point moves towards a smooth curve.
    """
    for _ in range(iterations):
        first = 0.75 * points[:-1] + 0.25 * points[1:]
        second = 0.25 * points[:-1] + 0.75 * points[1:]
        middle = np.stack([first, second], axis=1).reshape(-1, points.shape[1])
        points = np.concatenate([points[:1], middle[1:-1], points[-1:]], axis=0)
    return points


def smooth_closed(points: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Round the corners of a closed polygon [N, 2] by Chaikin's corner cutting."""
    for _ in range(iterations):
        following = np.roll(points, -1, axis=0)
        first = 0.75 * points + 0.25 * following
        second = 0.25 * points + 0.75 * following
        points = np.stack([first, second], axis=1).reshape(-1, points.shape[1])
    return points


def mirror_points(points: np.ndarray, sign: float, offset: np.ndarray) -> np.ndarray:
    """Map leg-frame points (+x lateral) to world points: x -> offset.x + sign * x."""
    return np.asarray(points, dtype=np.float64) * np.array([sign, 1.0]) + offset


@dataclass
class Bone:
    """A bone drawn from its outline, with a depth profile given along an axis.

    The projected thickness at a pixel whose distance to the outline is d mm is that of a
    rounded body of half-depth R: 2 sqrt(d (2R - d)), flat at 2R deeper inside. The shell
    of `cortex` mm is drawn with `CORTEX_DENSITY`, the interior with `inner` density.
    `stations` is [M, 4]: distance along the axis (mm), R (mm), cortex (mm), inner density.
    """

    name: str
    outline: np.ndarray
    axis_origin: np.ndarray
    axis_direction: np.ndarray
    stations: np.ndarray
    holes: List[np.ndarray] = field(default_factory=list)
    disks: List[Disk] = field(default_factory=list)
    gain: float = 1.0

    def mapped(self, transform: Transform, linear: np.ndarray) -> Bone:
        """Return the bone with every point mapped by `transform` (its linear part `linear`)."""
        direction = linear @ self.axis_direction
        scale = float(np.linalg.norm(direction))
        stations = self.stations.copy()
        stations[:, :3] *= scale
        return replace(
            self,
            outline=transform(self.outline),
            axis_origin=transform(self.axis_origin[None])[0],
            axis_direction=direction / scale,
            stations=stations,
            holes=[transform(hole) for hole in self.holes],
            disks=[disk.mapped(transform, scale) for disk in self.disks],
        )


@dataclass
class Disk:
    """A sphere seen in projection (femoral head, prosthetic head): centre and radii in mm."""

    centre: np.ndarray
    radius: float
    cortex: float
    inner: float

    def mapped(self, transform: Transform, scale: float) -> Disk:
        """Return the disk mapped by `transform`, whose scale factor is `scale`."""
        return Disk(transform(self.centre[None])[0], self.radius * scale, self.cortex * scale,
                    self.inner)  # fmt: skip


@dataclass
class Stroke:
    """A dense line (sourcil, pelvic brim) drawn with a width and an extra density."""

    points: np.ndarray
    width: float
    density: float

    def mapped(self, transform: Transform, scale: float) -> Stroke:
        """Return the stroke mapped by `transform`, whose scale factor is `scale`."""
        return Stroke(transform(self.points), self.width * scale, self.density)


def station_table(rows: List[Tuple[float, float, float, float]]) -> np.ndarray:
    """Return a [M, 4] station array sorted by axis distance."""
    table = np.asarray(rows, dtype=np.float64)
    return table[np.argsort(table[:, 0])]


def constant_stations(radius: float, cortex: float, inner: float) -> np.ndarray:
    """Return stations that keep R, cortex and inner density constant along the axis."""
    return station_table([(-1e4, radius, cortex, inner), (1e4, radius, cortex, inner)])


def ellipse_polygon(
    centre: np.ndarray, radius_x: float, radius_y: float, angle_deg: float = 0.0, count: int = 32
) -> np.ndarray:
    """Return a closed ellipse polygon, axes rotated by `angle_deg` (image sense), [count, 2]."""
    angle = np.radians(angle_deg)
    axis_x = np.array([np.cos(angle), np.sin(angle)])
    axis_y = np.array([-np.sin(angle), np.cos(angle)])
    return arc(centre, axis_x, axis_y, radius_x, radius_y, 0.0, 360.0 * (count - 1) / count, count)
