"""Metal implants for phantom radiographs: hip and knee prostheses, plates with screws, nails.

Metal is drawn as filled polygons whose water-equivalent path length is far beyond any
bone, so it saturates the display the way implants do on real radiographs. A prosthesis
also changes the bone it replaces (the femoral head and neck, the knee joint gap) and the
landmarks that then sit on metal (the neck edges move to the prosthetic neck).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, List

import cv2
import numpy as np

from .phantom_anatomy import Leg, LegParameters
from .phantom_shapes import Disk, arc, bezier, chain, ellipse_polygon, unit

HIP = "hip_prosthesis"
KNEE = "knee_prosthesis"
FEMORAL_PLATE = "femoral_plate"
TIBIAL_PLATE = "tibial_plate"
FEMORAL_NAIL = "femoral_nail"
TIBIAL_NAIL = "tibial_nail"

# Chance per leg of each implant; a leg gets at most one implant per bone.
IMPLANT_RATES = {HIP: 0.045, KNEE: 0.04, FEMORAL_PLATE: 0.015, TIBIAL_PLATE: 0.015,
                 FEMORAL_NAIL: 0.012, TIBIAL_NAIL: 0.012}  # fmt: skip


@dataclass
class MetalPart:
    """Filled metal polygons in world mm with a water-equivalent path length in mm."""

    kind: str
    side: str
    polygons: List[np.ndarray]
    path_mm: float

    def draw(self, signal: np.ndarray, to_pixels: Callable[[np.ndarray], np.ndarray]) -> None:
        """Add the metal to `signal`, whose pixel coordinates `to_pixels` maps world mm to."""
        layer = np.zeros(signal.shape, np.uint8)
        height, width = signal.shape
        for polygon in self.polygons:
            # Each polygon goes into its own box and joins by maximum: one fillPoly call
            # would leave overlaps unfilled, and anti-aliased edges would overwrite metal.
            points = to_pixels(polygon)
            x0 = max(int(np.floor(points[:, 0].min())) - 2, 0)
            y0 = max(int(np.floor(points[:, 1].min())) - 2, 0)
            x1 = min(int(np.ceil(points[:, 0].max())) + 2, width)
            y1 = min(int(np.ceil(points[:, 1].max())) + 2, height)
            if x1 <= x0 or y1 <= y0:
                continue
            box = np.zeros((y1 - y0, x1 - x0), np.uint8)
            fixed = np.round((points - [x0 + 0.5, y0 + 0.5]) * 16.0).astype(np.int32)
            cv2.fillPoly(box, [fixed.reshape(-1, 1, 2)], 255, cv2.LINE_AA, shift=4)
            np.maximum(layer[y0:y1, x0:x1], box, out=layer[y0:y1, x0:x1])
        signal += layer.astype(np.float32) * (self.path_mm / 255.0)


def plan_implants(rng: np.random.Generator) -> Dict[str, List[str]]:
    """Draw which implants each leg carries: {side: [kind, ...]}."""
    plan: Dict[str, List[str]] = {}
    for side in ("right", "left"):
        kinds = [kind for kind, rate in IMPLANT_RATES.items() if rng.random() < rate]
        if FEMORAL_NAIL in kinds:  # one implant per bone
            kinds = [k for k in kinds if k not in (HIP, FEMORAL_PLATE)]
        if TIBIAL_NAIL in kinds or KNEE in kinds:
            kinds = [k for k in kinds if k != TIBIAL_PLATE]
        if KNEE in kinds:
            kinds = [k for k in kinds if k != TIBIAL_NAIL]
        plan[side] = kinds
    return plan


def adjust_for_implants(lp: LegParameters, kinds: List[str]) -> LegParameters:
    """Return leg parameters changed by a knee prosthesis: the tray replaces the spines and
    the polyethylene insert widens the joint gap."""
    if KNEE not in kinds:
        return lp
    return replace(
        lp, joint_gap=lp.joint_gap + 6.0, eminence_height=0.0, jlca_deg=0.5 * lp.jlca_deg
    )


def _clip_half_plane(points: np.ndarray, origin: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Keep the part of a closed polygon where (p - origin) . normal >= 0 (Sutherland-Hodgman)."""
    kept = []
    count = len(points)
    for i in range(count):
        current, following = points[i], points[(i + 1) % count]
        a = float(np.dot(current - origin, normal))
        b = float(np.dot(following - origin, normal))
        if a >= 0:
            kept.append(current)
        if (a >= 0) != (b >= 0):
            kept.append(current + (following - current) * (a / (a - b)))
    return np.array(kept)


def _rectangle(
    start: np.ndarray, end: np.ndarray, width_start: float, width_end: float
) -> np.ndarray:
    """Return a (tapered) rectangle polygon around the segment start-end."""
    side = unit(np.array([-(end - start)[1], (end - start)[0]]))
    return np.array([start + 0.5 * width_start * side, end + 0.5 * width_end * side,
                     end - 0.5 * width_end * side, start - 0.5 * width_start * side])  # fmt: skip


def _screw(head: np.ndarray, tip: np.ndarray, width: float) -> List[np.ndarray]:
    """Return a screw: head block plus a threaded shaft drawn as a zigzag outline."""
    axis = unit(tip - head)
    side = np.array([-axis[1], axis[0]])
    length = float(np.linalg.norm(tip - head))
    steps = np.arange(0.0, length, 1.6)
    half = 0.5 * width * (1.0 + 0.18 * (np.arange(steps.size) % 2))
    upper = head + steps[:, None] * axis + half[:, None] * side
    lower = head + steps[::-1, None] * axis - half[::-1, None] * side
    shaft = np.concatenate([upper, [tip], lower])
    block = _rectangle(head - 2.5 * axis, head + 1.0 * axis, width * 1.9, width * 1.9)
    return [shaft, block]


def _lateral_normal(direction: np.ndarray, lateral_sign: float) -> np.ndarray:
    """Return the unit normal of `direction` that points away from the midline."""
    normal = unit(np.array([direction[1], -direction[0]]))
    return normal if normal[0] * lateral_sign > 0 else -normal


def _hip_prosthesis(leg: Leg, lp: LegParameters, rng: np.random.Generator) -> List[np.ndarray]:
    """Replace the femoral head and neck by a stem, a metal head and an acetabular cup.

    FC stays the centre of the (prosthetic) head; the neck edge landmarks move onto the
    prosthetic neck, which keeps the neck axis.
    """
    fc, p = leg.landmarks["FC"], leg.points["P"]
    neck_dir = leg.frames["neck"][1]  # unit vector from the shaft towards the head
    d_a = leg.frames["femoral_axis"][1]  # anatomical axis, pointing distally
    lateral_sign = 1.0 if fc[0] > 0 else -1.0
    e_l = _lateral_normal(d_a, lateral_sign)
    n_sup = _lateral_normal(neck_dir, lateral_sign)  # the neck's superior normal

    femur = leg.bones[0]
    neck_length = float(np.linalg.norm(fc - p))
    femur.outline = _clip_half_plane(femur.outline, fc - 0.75 * neck_length * neck_dir, -neck_dir)
    femur.disks = []

    # The neck edge landmarks go to the narrow prosthetic neck just below the metal head.
    neck_half = 6.0
    ball_radius = float(rng.choice([14.0, 16.0, 18.0]))
    t_cut = ball_radius + 6.0
    leg.landmarks["FNeck_Cut_Up"] = fc - t_cut * neck_dir + neck_half * n_sup
    leg.landmarks["FNeck_Cut_Down"] = fc - t_cut * neck_dir - neck_half * n_sup

    canal = lp.shaft_radius - lp.shaft_cortex
    collar = fc - 0.72 * neck_length * neck_dir
    tip = p + rng.uniform(110.0, 150.0) * d_a
    stem = chain(
        bezier(collar + 9.0 * n_sup, p + 13.0 * e_l - 14.0 * d_a, p + 1.2 * canal * e_l + 40 * d_a),
        np.array([tip + 0.45 * canal * e_l, tip - 0.45 * canal * e_l]),
        bezier(
            p - 1.2 * canal * e_l + 40.0 * d_a, p - 11.0 * e_l + 6.0 * d_a, collar - 9.0 * n_sup
        ),
    )
    neck = _rectangle(collar, fc, 2.0 * neck_half, 2.0 * neck_half)
    ball = ellipse_polygon(fc, ball_radius, ball_radius, 0.0, 40)
    leg.femoral_head = Disk(fc.copy(), ball_radius, 0.0, 0.0)
    cup_r = lp.head_radius + rng.uniform(3.0, 6.0)
    opening = -lateral_sign * rng.uniform(35.0, 50.0)  # the cup opens down and laterally
    e1, e2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    outer = arc(fc, e1, e2, cup_r, cup_r, 180.0 + opening, 360.0 + opening, 30)
    inner = arc(fc, e1, e2, cup_r - 3.5, cup_r - 3.5, 360.0 + opening, 180.0 + opening, 30)
    return [stem, neck, ball, np.concatenate([outer, inner])]


def _knee_prosthesis(leg: Leg, lp: LegParameters, rng: np.random.Generator) -> List[np.ndarray]:
    """Cover the distal femur with a femoral component and the plateau with a stemmed tray.

    The condyle, notch and plateau landmarks stay: they lie on the component surfaces.
    """
    k0, j_f = leg.frames["knee_joint"]
    n_f = np.array([-j_f[1], j_f[0]])
    if n_f[1] < 0:
        n_f = -n_f
    femur = leg.bones[0]
    component = _clip_half_plane(femur.outline, k0 - rng.uniform(26.0, 32.0) * n_f, n_f)

    tp, j_t = leg.frames["plateau"]
    n_t = np.array([-j_t[1], j_t[0]])
    if n_t[1] < 0:
        n_t = -n_t
    lpc, mpc = leg.landmarks["LPC"], leg.landmarks["MPC"]
    tray = np.array(
        [
            lpc + 1.0 * j_t * np.sign(np.dot(lpc - tp, j_t)),
            mpc - 1.0 * j_t * np.sign(np.dot(lpc - tp, j_t)),
            mpc + 4.5 * n_t,
            lpc + 4.5 * n_t,
        ]
    )
    keel = _rectangle(tp + 4.0 * n_t, tp + rng.uniform(35.0, 50.0) * n_t, 16.0, 9.0)
    return [component, tray, keel]


def _plate(leg: Leg, bone: str, rng: np.random.Generator) -> List[np.ndarray]:
    """Return a plate on the lateral (femur) or medial/lateral (tibia) cortex with screws."""
    shaft = leg.femoral_shaft if bone == "femur" else leg.tibial_shaft
    axis = unit(shaft.distal - shaft.proximal)
    length_available = float(np.linalg.norm(shaft.distal - shaft.proximal))
    lateral_sign = 1.0 if leg.landmarks["FC"][0] > 0 else -1.0
    side = _lateral_normal(axis, lateral_sign)
    if bone == "tibia" and rng.random() < 0.5:
        side = -side
    plate_length = rng.uniform(0.35, 0.7) * length_available
    start = rng.uniform(0.0, length_available - plate_length)
    top = shaft.proximal + start * axis + (shaft.outer_radius + 2.5) * side
    bottom = top + plate_length * axis
    parts = [_rectangle(top, bottom, 5.0, 5.0)]
    count = max(int(plate_length // 18.0), 3)
    for t in np.linspace(8.0, plate_length - 8.0, count):
        head = top + t * axis
        tip = head - (2.0 * shaft.outer_radius + 6.0) * side
        parts += _screw(head, tip, 4.2)
    return parts


def _nail(leg: Leg, bone: str, rng: np.random.Generator) -> List[np.ndarray]:
    """Return an intramedullary nail down the shaft axis with two locking screws at each end."""
    shaft = leg.femoral_shaft if bone == "femur" else leg.tibial_shaft
    axis = unit(shaft.distal - shaft.proximal)
    if bone == "femur":
        start = leg.landmarks["GT"] + 8.0 * axis
    else:
        start = leg.points["Tp"] + 12.0 * axis
    end = shaft.distal + rng.uniform(10.0, 40.0) * axis
    width = 2.0 * shaft.canal_radius - 1.0
    parts = [_rectangle(start, end, width, width * 0.9)]
    side = np.array([-axis[1], axis[0]])
    span = 2.0 * shaft.outer_radius + 8.0
    for t in (25.0, 45.0, -45.0, -25.0):
        centre = (start if t > 0 else end) + t * axis
        parts += _screw(centre + 0.5 * span * side, centre - 0.5 * span * side, 4.5)
    return parts


def build_implants(
    legs: Dict[str, Leg],
    params: Dict[str, LegParameters],
    plan: Dict[str, List[str]],
    rng: np.random.Generator,
) -> List[MetalPart]:
    """Create the planned metal parts, changing the bones and landmarks they replace."""
    parts: List[MetalPart] = []
    builders = {
        HIP: lambda leg, lp: _hip_prosthesis(leg, lp, rng),
        KNEE: lambda leg, lp: _knee_prosthesis(leg, lp, rng),
        FEMORAL_PLATE: lambda leg, lp: _plate(leg, "femur", rng),
        TIBIAL_PLATE: lambda leg, lp: _plate(leg, "tibia", rng),
        FEMORAL_NAIL: lambda leg, lp: _nail(leg, "femur", rng),
        TIBIAL_NAIL: lambda leg, lp: _nail(leg, "tibia", rng),
    }
    for side, kinds in plan.items():
        for kind in kinds:
            polygons = builders[kind](legs[side], params[side])
            parts.append(MetalPart(kind, side, polygons, rng.uniform(900.0, 2500.0)))
    return parts
