"""The whole phantom body: both legs, the pelvis, soft-tissue silhouettes and metal implants.

All coordinates are world mm (x to the image's right, y down, origin between the femoral
heads); see `phantom_anatomy` for the leg construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Tuple

import numpy as np

from .phantom_anatomy import (
    Leg,
    LegParameters,
    alignment_from_landmarks,
    build_leg,
    leg_construction,
    sample_leg_parameters,
    solve_femoral_tilt,
)
from .phantom_implants import MetalPart, adjust_for_implants, build_implants, plan_implants
from .phantom_shapes import (
    CANCELLOUS,
    Bone,
    Stroke,
    arc,
    bezier,
    chain,
    constant_stations,
    ellipse_polygon,
    segment,
    smooth_closed,
    smooth_polyline,
    station_table,
)

SIDES = ("right", "left")
MIN_KNEE_GAP_MM = 55.0
MIN_ANKLE_GAP_MM = 55.0


@dataclass
class Body:
    """A phantom patient in world mm.

    `soft_tissue` contains slabs, each [levels, 4]: world y, first skin x, second skin x and
    the half-depth of the elliptic cross-section (mm). `muscle` contains the slabs inside the
    subcutaneous fat of the legs, in the same format.
    """

    legs: Dict[str, Leg]
    pelvis: List[Bone]
    strokes: List[Stroke]
    soft_tissue: List[np.ndarray]
    muscle: List[np.ndarray]
    top_y: float
    bottom_y: float
    metal: List[MetalPart] = field(default_factory=list)
    truth: Dict[str, object] = field(default_factory=dict)


def _perturbed(lp: LegParameters, rng: np.random.Generator) -> LegParameters:
    """Return the other leg: the same person's anatomy with small left-right differences."""
    other = sample_leg_parameters(rng, 1.0)
    values = dict(vars(lp))
    for name in ("femur_mechanical_length", "tibia_length"):
        values[name] = lp.__dict__[name] * float(np.clip(rng.normal(1.0, 0.012), 0.96, 1.04))
    for name in ("mldfa_deg", "mpta_deg", "ldta_deg", "jlca_deg", "neck_shaft_deg"):
        values[name] = lp.__dict__[name] + float(np.clip(rng.normal(0.0, 0.8), -2.0, 2.0))
    values["anatomic_mechanical_deg"] += float(np.clip(rng.normal(0.0, 0.3), -0.6, 0.6))
    if rng.random() < 0.25:  # a deformity on one side only: take the other draw's angles
        for name in ("mldfa_deg", "mpta_deg", "jlca_deg"):
            values[name] = other.__dict__[name]
    for name in ("rotation_deg", "fibula_shift", "lesser_trochanter_size", "limb_axis_deg"):
        values[name] = other.__dict__[name]
    return LegParameters(**values)


def _hemipelvis(sign: float, centre: np.ndarray, axes: np.ndarray, k: float, hip: dict) -> Tuple:
    """Return (bones, strokes) of one hemipelvis in world mm.

    Shapes are drawn for a reference pelvis whose head centres are 180 mm apart and scaled
    by `k`. `axes` contains the pelvis x axis (towards the patient's left) and y axis (down).
    """
    p = 90.0

    def world(points) -> np.ndarray:
        local = np.atleast_2d(np.asarray(points, dtype=np.float64)) * k
        return centre + sign * local[:, :1] * axes[0] + local[:, 1:2] * axes[1]

    head = np.array([p, 0.0])
    r_roof = (hip["radius"] + 3.5) / k
    ce = np.radians(hip["centre_edge_deg"])
    rim = head + r_roof * np.array([np.sin(ce), -np.cos(ce)])
    roof = arc(head, np.array([1.0, 0.0]), np.array([0.0, 1.0]), r_roof, r_roof,
               -90.0 + hip["centre_edge_deg"], -90.0 - 75.0, 20)  # fmt: skip
    crest = chain(
        bezier(np.array([40.0, -112.0]), np.array([62.0, -152.0]), np.array([98.0, -138.0])),
        bezier(np.array([98.0, -138.0]), np.array([142.0, -128.0]), np.array([136.0, -88.0])),
    )
    ilium = chain(
        crest,
        bezier(np.array([136.0, -88.0]), np.array([124.0, -72.0]), np.array([129.0, -58.0])),
        bezier(np.array([129.0, -58.0]), np.array([126.0, -40.0]), rim),
        roof,
        bezier(roof[-1], np.array([p - r_roof - 3.0, 6.0]), np.array([p - r_roof - 2.0, 20.0])),
        bezier(np.array([p - r_roof - 2.0, 20.0]), np.array([60.0, 26.0]), np.array([48.0, 10.0])),
        bezier(np.array([48.0, 10.0]), np.array([38.0, -40.0]), np.array([40.0, -112.0])),
    )
    ring = chain(
        bezier(np.array([p - 10.0, 6.0]), np.array([60.0, 2.0]), np.array([35.0, 13.0])),
        bezier(np.array([35.0, 13.0]), np.array([16.0, 16.0]), np.array([3.0, 24.0])),
        segment(np.array([3.0, 24.0]), np.array([3.0, 62.0])),
        bezier(np.array([3.0, 62.0]), np.array([6.0, 72.0]), np.array([16.0, 72.0])),
        bezier(np.array([16.0, 72.0]), np.array([42.0, 74.0]), np.array([62.0, 84.0])),
        bezier(np.array([62.0, 84.0]), np.array([76.0, 100.0]), np.array([91.0, 86.0])),
        bezier(np.array([91.0, 86.0]), np.array([99.0, 60.0]), np.array([p + 4.0, 28.0])),
        bezier(np.array([p + 4.0, 28.0]), np.array([p + 2.0, 10.0]), np.array([p - 10.0, 6.0])),
    )
    ring = smooth_closed(ring, 2)
    foramen = ellipse_polygon(np.array([55.0, 46.0]), 20.0, 27.0, 18.0)

    bones = [
        Bone("ilium", world(ilium), world([p, -60.0])[0], axes[1],
             station_table([(-100.0, 3.0 * k, k, 0.5), (-30.0, 3.5 * k, k, 0.5),
                            (15.0, 7.0 * k, k, 0.6), (45.0, 9.0 * k, k, 0.7)]),
             gain=0.75),
        Bone("pubis-ischium", world(ring), world([50.0, 45.0])[0], axes[1],
             constant_stations(6.5 * k, 1.5 * k, 0.45), holes=[world(foramen)], gain=0.85),
    ]  # fmt: skip
    sourcil = arc(head, np.array([1.0, 0.0]), np.array([0.0, 1.0]), r_roof + 1.2, r_roof + 1.2,
                  -90.0 + hip["centre_edge_deg"] - 4.0, -90.0 - 50.0, 16)  # fmt: skip
    brim = chain(
        bezier(np.array([41.0, -86.0]), np.array([66.0, -40.0]), np.array([60.0, 2.0])),
        bezier(np.array([60.0, 2.0]), np.array([50.0, 16.0]), np.array([18.0, 17.0])),
    )
    tear_x = p - r_roof - 7.0
    teardrop = bezier(np.array([tear_x, -2.0]), np.array([tear_x - 2.0, 32.0]),
                      np.array([tear_x + 8.0, 4.0]))  # fmt: skip
    posterior_wall = bezier(
        rim, head + np.array([8.0, 10.0]), head + np.array([-4.0, r_roof + 4.0])
    )
    anterior_wall = bezier(
        head + np.array([-r_roof * 0.5, -r_roof * 0.8]),
        head + np.array([-r_roof * 0.2, 4.0]),
        np.array([p - 26.0, 9.0]),
    )
    # The cortex of the iliac crest is thick: a dense band just inside the outline.
    wing_centre = np.array([95.0, -90.0])
    inward = wing_centre - crest[3:-3]
    crest_band = crest[3:-3] + 1.5 * inward / np.linalg.norm(inward, axis=1, keepdims=True)
    strokes = [
        Stroke(world(crest_band), 3.0 * k, 6.0),
        Stroke(world(posterior_wall), 1.8 * k, 5.0),
        Stroke(world(anterior_wall), 1.8 * k, 4.0),
        Stroke(world(sourcil), 2.6 * k, 14.0),
        Stroke(world(brim), 2.2 * k, 9.0),
        Stroke(world(teardrop), 1.8 * k, 9.0),
    ]
    return bones, strokes


def _spine_and_sacrum(centre: np.ndarray, axes: np.ndarray, k: float) -> List[Bone]:
    """Return the sacrum with its foramina and the fifth lumbar vertebra, world mm."""

    def world(points) -> np.ndarray:
        local = np.atleast_2d(np.asarray(points, dtype=np.float64)) * k
        return centre + local[:, :1] * axes[0] + local[:, 1:2] * axes[1]

    right = [(-56.0, -116.0), (-50.0, -90.0), (-38.0, -55.0), (-22.0, -20.0), (-12.0, 2.0),
             (-5.0, 22.0)]  # fmt: skip
    sacrum = smooth_closed(
        np.array(
            [(-20.0, -123.0), (20.0, -123.0)]
            + [(-x, y) for x, y in right]
            + [(0.0, 30.0)]
            + right[::-1]
        ),
        2,
    )
    foramina = [
        Bone("sacral foramen", world(ellipse_polygon(np.array([side * 21.0, y]), r, r * 0.8)),
             world([side * 21.0, y])[0], axes[1], constant_stations(3.0 * k, 0.0, CANCELLOUS),
             gain=-1.2)
        for y, r in ((-98.0, 6.0), (-78.0, 5.5), (-59.0, 4.8), (-42.0, 4.0))
        for side in (-1.0, 1.0)
    ]  # fmt: skip
    vertebra = chain(
        bezier(np.array([-25.0, -166.0]), np.array([0.0, -170.0]), np.array([25.0, -166.0])),
        bezier(np.array([25.0, -166.0]), np.array([29.0, -152.0]), np.array([26.0, -137.0])),
        bezier(np.array([26.0, -137.0]), np.array([0.0, -134.0]), np.array([-26.0, -137.0])),
        bezier(np.array([-26.0, -137.0]), np.array([-29.0, -152.0]), np.array([-25.0, -166.0])),
    )
    processes = np.array([(-50.0, -161.0), (50.0, -161.0), (46.0, -153.0), (-46.0, -153.0)])
    return [
        Bone("sacrum", world(sacrum), world([0.0, -60.0])[0], axes[1],
             station_table([(-70.0, 15.0 * k, 1.2 * k, CANCELLOUS),
                            (70.0, 7.0 * k, 1.0 * k, CANCELLOUS)]), gain=0.45),
        Bone("L5", world(vertebra), world([0.0, -152.0])[0], axes[1],
             constant_stations(16.0 * k, 1.6 * k, CANCELLOUS), gain=0.8),
        Bone("L5 processes", world(processes), world([0.0, -155.0])[0], axes[1],
             constant_stations(5.0 * k, 1.0 * k, CANCELLOUS), gain=0.8),
    ] + foramina  # fmt: skip


def _muscle(slab: np.ndarray, fat_fraction: float) -> np.ndarray:
    """Return the muscle slab inside a leg slab whose outer `fat_fraction` of width is fat."""
    muscle = slab.copy()
    inset = 0.5 * fat_fraction * (slab[:, 2] - slab[:, 1])
    muscle[:, 1] += inset
    muscle[:, 2] -= inset
    muscle[:, 3] *= 1.0 - fat_fraction
    return muscle


def _soft_tissue(
    legs: Dict[str, Leg], rng: np.random.Generator, top_y: float, crotch_y: float
) -> List[np.ndarray]:
    """Return the torso slab and one slab per leg (see `Body.soft_tissue`), smoothed."""
    right, left = legs["right"].skin, legs["left"].skin
    depth_ratio = rng.uniform(0.8, 1.0)
    slabs = []
    for skin in (right, left):
        depth = depth_ratio * 0.5 * np.abs(skin[:, 1] - skin[:, 2])
        depth[-3:] *= np.array([1.6, 2.2, 2.0])  # the foot, seen end-on, is deep
        depth[-1] = 0.0
        rows = np.column_stack([skin, depth])
        ramp = rows[:1].copy()  # fade in over the hip, where the torso is the thicker body
        ramp[0, 0] -= 90.0
        ramp[0, 3] = 0.0
        slabs.append(np.concatenate([ramp, rows]))
    waist = rng.uniform(10.0, 40.0)
    depth = rng.uniform(95.0, 125.0)
    torso = np.array([
        (top_y - 60.0, right[0, 1] + waist, left[0, 1] - waist, depth),
        (right[0, 0], right[0, 1], left[0, 1], depth),
        (crotch_y - 40.0, right[1, 1], left[1, 1], 0.8 * depth),
        (crotch_y + 20.0, right[1, 1], left[1, 1], 0.0),
    ])  # fmt: skip
    return [smooth_polyline(slab, 4) for slab in [torso] + slabs]


def _stance(params: Dict[str, LegParameters], half_hips: float) -> Dict[str, LegParameters]:
    """Return the legs with the feet set apart far enough that knees and ankles do not overlap.

    The medial knee edges must stay MIN_KNEE_GAP_MM apart and the medial plafond corners
    MIN_ANKLE_GAP_MM; the medial lean of both limb axes drops by 0.5 degree steps until
    they do (a negative lean places the feet wider apart than the hips).
    """
    for _ in range(40):
        medial = {}
        for side in SIDES:
            pts = leg_construction(params[side], solve_femoral_tilt(params[side]))
            # Leg-frame u of the medial edges; the other leg mirrors across the midline.
            medial[side] = (pts["MPC"][0] - 2.0, pts["DMP"][0])
        knee_gap = 2.0 * half_hips + medial["right"][0] + medial["left"][0]
        ankle_gap = 2.0 * half_hips + medial["right"][1] + medial["left"][1]
        if knee_gap >= MIN_KNEE_GAP_MM and ankle_gap >= MIN_ANKLE_GAP_MM:
            break
        params = {side: replace(lp, limb_axis_deg=lp.limb_axis_deg - 0.5)
                  for side, lp in params.items()}  # fmt: skip
    return params


def sample_body(rng: np.random.Generator) -> Body:
    """Draw a phantom patient: both legs, pelvis and soft tissue, with its alignment truth."""
    scale = float(np.clip(rng.normal(1.0, 0.035), 0.92, 1.08))
    half_hips = float(np.clip(rng.normal(92.5, 3.8) * (0.5 + 0.5 * scale), 82.0, 103.0))
    right = sample_leg_parameters(rng, scale)
    params = {"right": right, "left": _perturbed(right, rng)}
    plan = plan_implants(rng)
    params = {side: adjust_for_implants(params[side], plan[side]) for side in SIDES}
    fat = np.array([rng.uniform(25, 75), rng.uniform(30, 80), rng.uniform(12, 35),
                    rng.uniform(20, 50)])  # fmt: skip
    crotch_y = rng.uniform(60.0, 95.0)

    params = _stance(params, half_hips)

    # Place each hip so that both ankles are level: a longer leg raises its hip and tilts
    # the pelvis.
    ankle_y = {}
    for side in SIDES:
        construction = leg_construction(params[side], solve_femoral_tilt(params[side]))
        ankle_y[side] = float(construction["A"][1])
    level = 0.5 * (ankle_y["right"] + ankle_y["left"])
    hips = {side: np.array([sign * half_hips, level - ankle_y[side]])
            for side, sign in (("right", -1.0), ("left", 1.0))}  # fmt: skip
    legs = {side: build_leg(side, params[side], hips[side], fat, crotch_y) for side in SIDES}

    centre = 0.5 * (hips["right"] + hips["left"])
    x_axis = (hips["left"] - hips["right"]) / np.linalg.norm(hips["left"] - hips["right"])
    axes = np.array([x_axis, [-x_axis[1], x_axis[0]]])
    k = half_hips / 90.0
    pelvis: List[Bone] = _spine_and_sacrum(centre, axes, k)
    strokes: List[Stroke] = []
    for side, sign in (("right", -1.0), ("left", 1.0)):
        hip = {"radius": params[side].head_radius, "centre_edge_deg": rng.uniform(24.0, 38.0)}
        bones, side_strokes = _hemipelvis(sign, centre, axes, k, hip)
        pelvis += bones
        strokes += side_strokes

    metal = build_implants(legs, params, plan, rng)
    top_y = centre[1] - 138.0 * k
    soft = _soft_tissue(legs, rng, top_y, centre[1] + crotch_y)
    fat_fraction = float(np.clip(fat[1] / 200.0, 0.12, 0.4))
    muscle = [_muscle(slab, fat_fraction) for slab in soft[1:]]
    bottom_y = max(leg.skin[-1, 0] for leg in legs.values())
    truth: Dict[str, object] = {
        "hip_distance_mm": float(np.linalg.norm(hips["left"] - hips["right"])),
        "pelvic_obliquity_deg": float(np.degrees(np.arctan2(x_axis[1], x_axis[0]))),
        "implants": [{"type": part.kind, "side": part.side} for part in metal],
    }
    per_leg = {side: _leg_truth(legs[side], params[side]) for side in SIDES}
    for name in per_leg["right"]:
        truth[name] = {side: per_leg[side][name] for side in SIDES}
    return Body(legs, pelvis, strokes, soft, muscle, top_y, bottom_y, metal, truth)


def _leg_truth(leg: Leg, lp: LegParameters) -> Dict[str, float]:
    """Return one leg's measured angles (degrees), lengths (mm) and rotation (degrees)."""
    marks = leg.landmarks
    values = alignment_from_landmarks(marks, leg.side)
    condyles = 0.5 * (marks["LLP"] + marks["MLP"])
    plateau = 0.5 * (marks["LPC"] + marks["MPC"])
    plafond = 0.5 * (marks["DLP"] + marks["DMP"])
    values["femur_length_mm"] = float(np.linalg.norm(marks["FC"] - condyles) + lp.head_radius)
    values["tibia_length_mm"] = float(np.linalg.norm(plateau - plafond))
    values["head_diameter_mm"] = 2.0 * lp.head_radius
    values["limb_rotation_deg"] = lp.rotation_deg
    return values
