"""Geometry of the phantom lower limbs: bone outlines, landmarks and alignment truth, in mm.

World frame: x points to the image's right (the patient's left), y points down, and the
origin lies midway between the two femoral head centres. Each leg is first built in a
leg frame whose +u axis points laterally (away from the midline) and whose y axis points
down with the femoral head centre at the origin, and then mirrored into the world frame.
So the right leg (side sign -1) lands on the image's left.

The construction follows the landmark definitions. The distal femoral joint line is the
tangent to both condyles, touching them at LLP and MLP. The femoral mechanical axis runs
from the head centre (FC) to the top of the intercondylar notch (IF). The tibial
mechanical axis runs from the centre of the tibial spines (IR) to the ankle centre, the
midpoint of DLP and DMP. mLDFA and LDTA are lateral angles, MPTA is a medial angle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from .phantom_shapes import (
    CANCELLOUS,
    MARROW,
    Bone,
    Disk,
    arc,
    bezier,
    chain,
    constant_stations,
    ellipse_polygon,
    line_intersection,
    mirror_points,
    segment,
    signed_angle,
    station_table,
    turn,
    unit,
)

DOWN = np.array([0.0, 1.0])
SIDE_SIGNS = {"right": -1.0, "left": 1.0}


@dataclass
class LegParameters:
    """Anatomy of one leg: lengths and widths in mm, angles in degrees."""

    head_radius: float
    neck_shaft_deg: float
    anatomic_mechanical_deg: float
    femur_mechanical_length: float
    tibia_length: float
    mldfa_deg: float
    mpta_deg: float
    ldta_deg: float
    jlca_deg: float
    shaft_radius: float
    shaft_cortex: float
    notch_height: float
    condyle_offset: float
    condyle_width: float
    condyle_height: float
    joint_gap: float
    plateau_half_width: float
    eminence_height: float
    tibia_radius: float
    tibia_cortex: float
    plafond_width: float
    greater_trochanter_drop: float
    lesser_trochanter_size: float
    fibula_shift: float
    rotation_deg: float
    limb_axis_deg: float


@dataclass
class ShaftGeometry:
    """A straight shaft segment: axis end points (proximal, distal) and radii, in world mm."""

    proximal: np.ndarray
    distal: np.ndarray
    outer_radius: float
    canal_radius: float


@dataclass
class Leg:
    """One leg in world mm: landmarks by base name (no R_/L_ prefix), bones, shafts and skin."""

    side: str
    landmarks: Dict[str, np.ndarray]
    bones: List[Bone]
    femoral_head: Disk
    femoral_shaft: ShaftGeometry
    tibial_shaft: ShaftGeometry
    skin: np.ndarray  # [levels, 3]: world y, lateral skin x, medial skin x
    points: Dict[str, np.ndarray] = field(default_factory=dict)
    frames: Dict[str, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def sample_leg_parameters(rng: np.random.Generator, scale: float) -> LegParameters:
    """Draw one leg's anatomy. `scale` is the patient's size factor (about 0.9-1.1)."""

    def normal(mean: float, std: float, low: float, high: float) -> float:
        return float(np.clip(rng.normal(mean, std), low, high))

    mldfa = normal(87.5, 1.6, 84.0, 91.0)
    mpta = normal(87.0, 1.6, 84.0, 90.5)
    jlca = normal(0.8, 0.7, -1.0, 2.5)
    deformity = rng.random()
    if deformity < 0.12:  # varus knee: low MPTA, laterally opened joint line
        mpta -= rng.uniform(2.0, 6.0)
        jlca += rng.uniform(0.5, 3.0)
    elif deformity < 0.22:  # valgus knee: low mLDFA
        mldfa -= rng.uniform(2.0, 6.0)
        jlca -= rng.uniform(0.0, 1.5)
    rotation = normal(0.0, 6.0, -15.0, 15.0)
    return LegParameters(
        head_radius=normal(23.0, 1.4, 20.0, 27.0) * scale,
        neck_shaft_deg=normal(130.0, 4.0, 120.0, 140.0) + 0.2 * rotation,
        anatomic_mechanical_deg=normal(6.0, 0.6, 4.8, 7.2),
        femur_mechanical_length=normal(405.0, 12.0, 375.0, 440.0) * scale,
        tibia_length=normal(370.0, 11.0, 340.0, 400.0) * scale,
        mldfa_deg=mldfa,
        mpta_deg=mpta,
        ldta_deg=normal(89.0, 1.5, 86.0, 92.0),
        jlca_deg=jlca,
        shaft_radius=normal(13.5, 1.0, 11.5, 15.5) * scale,
        shaft_cortex=normal(6.3, 0.7, 5.0, 8.0),
        notch_height=normal(19.0, 1.5, 16.0, 23.0) * scale,
        condyle_offset=normal(22.0, 1.2, 19.5, 25.0) * scale,
        condyle_width=normal(17.0, 1.0, 15.0, 19.0) * scale,
        condyle_height=normal(17.0, 1.5, 14.0, 21.0) * scale,
        joint_gap=normal(5.0, 0.8, 3.0, 7.0),
        plateau_half_width=normal(37.5, 1.8, 34.0, 41.0) * scale,
        eminence_height=normal(9.0, 1.0, 7.0, 11.5) * scale,
        tibia_radius=normal(12.0, 0.9, 10.0, 14.0) * scale,
        tibia_cortex=normal(5.0, 0.6, 4.0, 6.5),
        plafond_width=normal(31.0, 1.5, 28.0, 35.0) * scale,
        greater_trochanter_drop=normal(-3.0, 5.0, -13.0, 8.0),
        lesser_trochanter_size=float(np.clip(6.0 + 0.35 * rotation, 2.0, 11.0)) * scale,
        fibula_shift=0.25 * rotation,
        rotation_deg=rotation,
        limb_axis_deg=normal(2.5, 1.0, 0.5, 4.5),
    )


def _femur_landmarks(lp: LegParameters, phi: float) -> Dict[str, np.ndarray]:
    """Build the femoral and knee construction points in the leg frame."""
    pts: Dict[str, np.ndarray] = {"FC": np.zeros(2)}
    d_f = turn(DOWN, -phi)  # femoral mechanical axis, hip to knee; knee medial when phi > 0
    pts["IF"] = lp.femur_mechanical_length * d_f
    j_f = turn(-d_f, -lp.mldfa_deg)  # distal femoral joint line, pointing laterally
    n_f = turn(j_f, -90.0)  # its normal, pointing distally
    pts["K0"] = pts["IF"] + lp.notch_height * n_f  # notch centre on the joint line
    pts["LLP"] = pts["K0"] + lp.condyle_offset * j_f
    pts["MLP"] = pts["K0"] - lp.condyle_offset * j_f
    pts["d_f"], pts["j_f"], pts["n_f"] = d_f, j_f, n_f
    return pts


def _tibia_landmarks(lp: LegParameters, pts: Dict[str, np.ndarray]) -> None:
    """Add the tibial and ankle construction points (leg frame) to `pts`."""
    j_t = turn(pts["j_f"], -lp.jlca_deg)  # positive JLCA opens the joint laterally
    n_t = turn(j_t, -90.0)
    plateau = pts["K0"] + lp.joint_gap * pts["n_f"]
    pts["Tp"], pts["j_t"], pts["n_t"] = plateau, j_t, n_t
    pts["IR"] = plateau - lp.eminence_height * n_t
    pts["LPC"] = plateau + lp.plateau_half_width * j_t
    pts["MPC"] = plateau - lp.plateau_half_width * j_t
    d_t = turn(-j_t, lp.mpta_deg)  # tibial mechanical axis, knee to ankle
    ankle = pts["IR"] + (lp.tibia_length + lp.eminence_height) * d_t
    j_a = turn(-d_t, -lp.ldta_deg)  # distal tibial joint line, pointing laterally
    pts["A"], pts["d_t"], pts["j_a"], pts["n_a"] = ankle, d_t, j_a, turn(j_a, -90.0)
    pts["DLP"] = ankle + 0.5 * lp.plafond_width * j_a
    pts["DMP"] = ankle - 0.5 * lp.plafond_width * j_a


def leg_construction(lp: LegParameters, phi: float) -> Dict[str, np.ndarray]:
    """Return the leg-frame construction points for a femoral mechanical axis tilt `phi`."""
    pts = _femur_landmarks(lp, phi)
    _tibia_landmarks(lp, pts)

    # Anatomical femoral axis: AMA degrees more valgus than the mechanical axis, meeting the
    # joint line a few mm medial of the notch. The neck axis meets it at the neck-shaft angle.
    d_a = turn(pts["d_f"], -lp.anatomic_mechanical_deg)
    pts["Q"] = pts["K0"] - 4.0 * pts["j_f"]
    pts["d_a"] = d_a
    neck_dir = turn(-d_a, 180.0 - lp.neck_shaft_deg)  # from the shaft towards the head
    pts["neck_dir"] = neck_dir
    pts["P"] = line_intersection(pts["FC"], neck_dir, pts["Q"], d_a)
    return pts


def solve_femoral_tilt(lp: LegParameters) -> float:
    """Return the femoral axis tilt that leans the hip-ankle line medially by limb_axis_deg."""
    pts = leg_construction(lp, 0.0)
    hip_to_ankle = pts["A"] - pts["FC"]
    lean = np.degrees(np.arctan2(-hip_to_ankle[0], hip_to_ankle[1]))  # medial lean at phi = 0
    return lp.limb_axis_deg - lean


def _femur_outline(lp: LegParameters, pts: Dict[str, np.ndarray]) -> np.ndarray:
    """Return the femur outline (leg frame), neck closed inside the head, [N, 2] mm."""
    d_a, q = pts["d_a"], pts["Q"]
    e_l = turn(d_a, 90.0)  # lateral normal of the shaft

    def shaft(x: float, h: float) -> np.ndarray:
        return q + x * e_l - h * d_a

    def joint(x: float, y: float) -> np.ndarray:
        return pts["K0"] + x * pts["j_f"] + y * pts["n_f"]

    neck_dir = pts["neck_dir"]
    n_sup = turn(neck_dir, 90.0)  # superior normal of the neck: towards lateral-up
    if n_sup[1] > 0:
        n_sup = -n_sup
    r_h, r_n, r_s = lp.head_radius, 0.68 * lp.head_radius, lp.shaft_radius
    pts["n_sup"] = n_sup

    def neck(t: float, v: float) -> np.ndarray:
        return pts["FC"] - t * neck_dir + v * n_sup

    h_p = float(np.dot(q - pts["P"], d_a))  # height of the neck-shaft point above Q
    h_gt = float((q[1] + e_l[1] * r_s - lp.greater_trochanter_drop) / d_a[1])
    gt_tip = shaft(r_s - 2.0, h_gt)
    pts["GT"] = gt_tip
    t_cut = 1.05 * r_h
    pts["FNeck_Cut_Up"] = neck(t_cut, r_n)
    pts["FNeck_Cut_Down"] = neck(t_cut, -r_n)
    h_met, c_off, c_w, c_h = 95.0, lp.condyle_offset, lp.condyle_width, lp.condyle_height

    # Lateral side, from the greater trochanter down to the lateral condyle.
    lateral = chain(
        bezier(gt_tip, shaft(r_s + 9.0, h_gt - 4.0), shaft(r_s + 8.0, h_gt - 30.0)),
        bezier(shaft(r_s + 8.0, h_gt - 30.0), shaft(r_s + 4.0, h_gt - 60.0), shaft(r_s, h_gt - 95)),
        segment(shaft(r_s, h_gt - 95.0), shaft(r_s, h_met)),
        bezier(shaft(r_s, h_met), shaft(r_s + 5.0, 48.0), joint(c_off + c_w * 0.95, -c_h - 5.0)),
    )
    lateral_condyle = arc(joint(c_off, -c_h), pts["j_f"], pts["n_f"], c_w, c_h, -15.0, 128.0)
    notch_w, arch_h = 0.45 * c_off, 0.55 * lp.notch_height
    notch = arc(joint(0.0, -lp.notch_height + arch_h), pts["j_f"], pts["n_f"], notch_w, arch_h,
                0.0, -180.0)  # fmt: skip
    medial_condyle = arc(joint(-c_off, -c_h), pts["j_f"], pts["n_f"], c_w, c_h, 52.0, 195.0)

    # Medial side up to the lesser trochanter, then the calcar into the inferior neck.
    h_lt = h_p - 48.0
    lt = lp.lesser_trochanter_size
    calcar_corner = line_intersection(shaft(-r_s, h_lt), -d_a, neck(t_cut, -r_n), neck_dir)
    medial = chain(
        bezier(joint(-c_off - c_w * 0.95, -c_h - 5.0), shaft(-r_s - 5.0, 48.0), shaft(-r_s, h_met)),
        segment(shaft(-r_s, h_met), shaft(-r_s, h_lt - 25.0)),
        bezier(
            shaft(-r_s, h_lt - 25.0), shaft(-r_s - lt * 1.6, h_lt), shaft(-r_s - 1.0, h_lt + 14)
        ),
        bezier(shaft(-r_s - 1.0, h_lt + 14.0), calcar_corner, neck(t_cut + 8.0, -r_n - 1.0)),
        segment(neck(t_cut + 8.0, -r_n - 1.0), neck(t_cut, -r_n)),
        bezier(neck(t_cut, -r_n), neck(0.5 * r_h, -r_n * 1.02), neck(0.0, -r_n * 1.1)),
    )

    # Superior neck out to the trochanteric fossa and back up to the greater trochanter.
    fossa = shaft(r_s - 13.0, h_gt - 9.0)
    fossa_corner = line_intersection(neck(t_cut, r_n), -neck_dir, fossa, d_a)
    superior = chain(
        bezier(neck(0.0, r_n * 1.1), neck(0.5 * r_h, r_n * 1.02), neck(t_cut, r_n)),
        bezier(neck(t_cut, r_n), fossa_corner, fossa),
        bezier(fossa, shaft(r_s - 9.0, h_gt + 1.0), gt_tip),
    )
    return chain(lateral, lateral_condyle, notch, medial_condyle, medial, superior)


def _tibia_outline(lp: LegParameters, pts: Dict[str, np.ndarray]) -> np.ndarray:
    """Return the tibia outline (leg frame), [N, 2] mm."""
    j_t, n_t, d_t = pts["j_t"], pts["n_t"], pts["d_t"]
    e_l = turn(d_t, 90.0)
    w, r_t = lp.plateau_half_width, lp.tibia_radius

    def plateau(x: float, y: float) -> np.ndarray:
        return pts["Tp"] + x * j_t + y * n_t

    def shaft(x: float, h: float) -> np.ndarray:  # h: height above the ankle centre
        return pts["A"] + x * e_l - h * d_t

    def ankle(x: float, y: float) -> np.ndarray:
        return pts["A"] + x * pts["j_a"] + y * pts["n_a"]

    length = float(np.dot(pts["A"] - pts["Tp"], d_t))
    e_w, h_e = 5.5, lp.eminence_height
    edge_depth = 14.0
    pts["LE"] = plateau(w + 1.5, edge_depth)
    pts["ME"] = plateau(-w - 1.5, edge_depth)
    half_p, mal_w = 0.5 * lp.plafond_width, 13.0
    plateau_surface = chain(
        bezier(pts["LPC"], plateau(0.55 * w, -0.6), plateau(12.0, 0.4)),
        bezier(plateau(12.0, 0.4), plateau(e_w + 1.0, -h_e + 3.0), plateau(e_w, -h_e)),
        bezier(plateau(e_w, -h_e), plateau(0.0, -h_e + 3.5), plateau(-e_w, -h_e)),
        bezier(plateau(-e_w, -h_e), plateau(-e_w - 1.0, -h_e + 3.0), plateau(-12.0, 0.6)),
        bezier(plateau(-12.0, 0.6), plateau(-0.55 * w, 1.6), pts["MPC"]),
    )
    medial = chain(
        bezier(pts["MPC"], plateau(-w - 1.5, 4.0), pts["ME"]),
        bezier(pts["ME"], plateau(-w - 0.5, 26.0), plateau(-w + 10.0, 44.0)),
        bezier(plateau(-w + 10.0, 44.0), shaft(-r_t - 2.0, length - 72.0),
               shaft(-r_t, length - 105.0)),
        segment(shaft(-r_t, length - 105.0), shaft(-r_t, 85.0)),
        bezier(shaft(-r_t, 85.0), shaft(-r_t - 2.0, 35.0), ankle(-half_p - mal_w - 1.0, -14.0)),
        bezier(ankle(-half_p - mal_w - 1.0, -14.0), ankle(-half_p - mal_w, 8.0),
               ankle(-half_p - 0.5 * mal_w, 13.0)),
        bezier(ankle(-half_p - 0.5 * mal_w, 13.0), ankle(-half_p + 0.5, 12.0), ankle(-half_p, 3.0)),
        segment(ankle(-half_p, 3.0), pts["DMP"]),
    )  # fmt: skip
    lateral = chain(
        bezier(pts["DMP"], ankle(0.0, -2.5), pts["DLP"]),
        bezier(pts["DLP"], ankle(half_p + 2.5, -3.0), ankle(half_p + 1.0, -9.0)),
        bezier(ankle(half_p + 1.0, -9.0), ankle(half_p - 3.0, -28.0), shaft(r_t, 80.0)),
        segment(shaft(r_t, 80.0), shaft(r_t, length - 100.0)),
        bezier(shaft(r_t, length - 100.0), shaft(r_t + 2.0, length - 70.0), plateau(w - 9.0, 46.0)),
        bezier(plateau(w - 9.0, 46.0), plateau(w + 0.5, 27.0), pts["LE"]),
        bezier(pts["LE"], plateau(w + 1.5, 4.0), pts["LPC"]),
    )
    return chain(plateau_surface, medial, lateral)


def _fibula_outline(lp: LegParameters, pts: Dict[str, np.ndarray]) -> Tuple[np.ndarray, Tuple]:
    """Return the fibula outline and its axis (origin, unit direction, length), leg frame."""
    w, half_p = lp.plateau_half_width, 0.5 * lp.plafond_width
    head = pts["Tp"] + (w - 1.0 + lp.fibula_shift) * pts["j_t"] + 25.0 * pts["n_t"]
    malleolus = pts["A"] + (half_p + 8.0 + 0.5 * lp.fibula_shift) * pts["j_a"] + 2.0 * pts["n_a"]
    axis = unit(malleolus - head)
    length = float(np.linalg.norm(malleolus - head))
    side = turn(axis, 90.0)  # lateral normal of the fibular axis

    def at(t: float, x: float) -> np.ndarray:
        return head + t * axis + x * side

    outline = chain(
        bezier(at(-17.0, 2.0), at(-13.0, 12.0), at(0.0, 12.5)),
        bezier(at(0.0, 12.5), at(20.0, 11.0), at(40.0, 7.0)),
        segment(at(40.0, 7.0), at(length - 60.0, 7.0)),
        bezier(at(length - 60.0, 7.0), at(length - 10.0, 11.0), at(length + 8.0, 9.0)),
        bezier(at(length + 8.0, 9.0), at(length + 22.0, 5.0), at(length + 21.0, -2.0)),
        bezier(at(length + 21.0, -2.0), at(length + 12.0, -10.0), at(length - 5.0, -10.0)),
        bezier(at(length - 5.0, -10.0), at(length - 40.0, -9.0), at(length - 60.0, -6.0)),
        segment(at(length - 60.0, -6.0), at(40.0, -6.0)),
        bezier(at(40.0, -6.0), at(20.0, -11.0), at(3.0, -12.0)),
        bezier(at(3.0, -12.0), at(-10.0, -12.0), at(-17.0, 2.0)),
    )
    return outline, (head, axis, length)


def _talus_outline(lp: LegParameters, pts: Dict[str, np.ndarray]) -> np.ndarray:
    """Return the talus outline below the plafond (leg frame)."""
    half_p = 0.5 * lp.plafond_width

    def ankle(x: float, y: float) -> np.ndarray:
        return pts["A"] + x * pts["j_a"] + y * pts["n_a"]

    gap = 3.2
    return chain(
        bezier(ankle(-half_p + 0.5, gap + 2.5), ankle(0.0, gap - 1.5),
               ankle(half_p + 0.5, gap + 2.0)),
        bezier(ankle(half_p + 0.5, gap + 2.0), ankle(half_p + 2.5, gap + 12.0),
               ankle(half_p + 5.0, gap + 22.0)),
        bezier(ankle(half_p + 5.0, gap + 22.0), ankle(half_p - 4.0, gap + 31.0),
               ankle(0.0, gap + 29.0)),
        bezier(ankle(0.0, gap + 29.0), ankle(-half_p - 3.0, gap + 30.0),
               ankle(-half_p - 1.5, gap + 14.0)),
        bezier(ankle(-half_p - 1.5, gap + 14.0), ankle(-half_p - 0.5, gap + 6.0),
               ankle(-half_p + 0.5, gap + 2.5)),
    )  # fmt: skip


def _axis_point_at_level(origin: np.ndarray, direction: np.ndarray, y: float) -> np.ndarray:
    """Return the point of the line (origin, direction) whose y coordinate is `y`."""
    return origin + (y - origin[1]) / direction[1] * direction


def _leg_bones(lp: LegParameters, pts: Dict[str, np.ndarray]) -> List[Bone]:
    """Return the bones of one leg in the leg frame (femur, patella, tibia, fibula, foot)."""
    femur_outline = _femur_outline(lp, pts)
    h_gt = float(np.dot(pts["Q"] - pts["GT"], pts["d_a"]))
    r_s, c_s = lp.shaft_radius, lp.shaft_cortex
    femur = Bone(
        "femur",
        femur_outline,
        pts["Q"],
        -pts["d_a"],
        station_table([
            (-40.0, 28.0, 1.4, CANCELLOUS), (25.0, 30.0, 1.5, CANCELLOUS),
            (65.0, 22.0, 2.4, 0.7), (100.0, r_s, 0.75 * c_s, 0.3), (140.0, r_s, c_s, MARROW),
            (h_gt - 120.0, r_s, c_s, MARROW), (h_gt - 75.0, 19.0, 3.2, 0.55),
            (h_gt - 25.0, 20.0, 1.8, CANCELLOUS), (h_gt + 80.0, 17.0, 1.6, CANCELLOUS),
        ]),
        disks=[Disk(pts["FC"].copy(), lp.head_radius, 1.8, CANCELLOUS)],
    )  # fmt: skip

    patella_centre = pts["K0"] + 5.0 * pts["j_f"] - 40.0 * pts["n_f"]
    patella = Bone(
        "patella",
        ellipse_polygon(patella_centre, 21.0, 24.0, 0.0),
        patella_centre,
        pts["n_f"],
        constant_stations(10.0, 1.2, CANCELLOUS),
        gain=0.5,
    )

    length = float(np.dot(pts["A"] - pts["Tp"], pts["d_t"]))
    r_t, c_t = lp.tibia_radius, lp.tibia_cortex
    tibia = Bone(
        "tibia",
        _tibia_outline(lp, pts),
        pts["A"],
        -pts["d_t"],
        station_table([
            (-30.0, 17.0, 1.5, CANCELLOUS), (15.0, 19.0, 1.6, CANCELLOUS), (60.0, 15.0, 2.6, 0.6),
            (100.0, r_t, c_t, MARROW), (length - 130.0, r_t, c_t, MARROW),
            (length - 75.0, 20.0, 2.6, 0.6), (length - 10.0, 28.0, 1.5, CANCELLOUS),
            (length + 40.0, 28.0, 1.5, CANCELLOUS),
        ]),
    )  # fmt: skip

    fibula_outline, (head, axis, fib_len) = _fibula_outline(lp, pts)
    fibula = Bone(
        "fibula",
        fibula_outline,
        head,
        axis,
        station_table([
            (-25.0, 11.0, 1.2, CANCELLOUS), (30.0, 7.5, 2.0, 0.4), (60.0, 6.5, 2.4, MARROW),
            (fib_len - 70.0, 6.5, 2.4, MARROW), (fib_len - 15.0, 9.5, 1.5, CANCELLOUS),
            (fib_len + 30.0, 9.5, 1.5, CANCELLOUS),
        ]),
    )  # fmt: skip

    def ankle(x: float, y: float) -> np.ndarray:
        return pts["A"] + x * pts["j_a"] + y * pts["n_a"]

    talus = Bone("talus", _talus_outline(lp, pts), pts["A"], pts["n_a"],
                 constant_stations(15.0, 1.2, CANCELLOUS))  # fmt: skip
    calcaneus = Bone("calcaneus", ellipse_polygon(ankle(-4.0, 54.0), 22.0, 17.0, 8.0), pts["A"],
                     pts["n_a"], constant_stations(12.0, 1.5, CANCELLOUS), gain=0.5)  # fmt: skip
    midfoot = Bone("midfoot", ellipse_polygon(ankle(6.0, 40.0), 30.0, 16.0, 0.0), pts["A"],
                   pts["n_a"], constant_stations(8.0, 1.5, CANCELLOUS), gain=0.35)  # fmt: skip
    return [femur, patella, tibia, fibula, talus, calcaneus, midfoot]


def _skin_profile(
    lp: LegParameters, pts: Dict[str, np.ndarray], fat: np.ndarray, crotch_y: float, midline: float
) -> np.ndarray:
    """Return [levels, 3] leg-frame skin edges: y, lateral u, medial u (mm).

    `fat` is [4] subcutaneous widths in mm at the hip, thigh, knee and calf; above
    `crotch_y` the medial edge is the body midline at u = `midline`.
    """
    fem_lat = pts["Q"][0] + lp.shaft_radius
    fem_med = pts["Q"][0] - lp.shaft_radius
    knee_y, ankle = pts["K0"][1], pts["A"]
    half_p = 0.5 * lp.plafond_width
    thigh_medial = max(fem_med - fat[1] - 25.0, midline + 4.0)
    rows = [
        (-20.0, pts["GT"][0] + fat[0] * 0.9, midline),
        (crotch_y, pts["GT"][0] + fat[0], midline),
        (0.45 * knee_y, fem_lat + fat[1] + 20.0, thigh_medial),
        (knee_y - 90.0, fem_lat + 0.8 * fat[1] + 10.0, fem_med - 0.8 * fat[1] - 15.0),
        (knee_y, pts["LLP"][0] + 20.0 + fat[2], pts["MLP"][0] - 20.0 - fat[2]),
        (knee_y + 110.0, pts["LPC"][0] + 8.0 + fat[3], pts["MPC"][0] - 5.0 - fat[3]),
        (ankle[1] - 40.0, ankle[0] + half_p + 27.0, ankle[0] - half_p - 26.0),
        (ankle[1] + 15.0, ankle[0] + half_p + 32.0, ankle[0] - half_p - 30.0),
        (ankle[1] + 45.0, ankle[0] + half_p + 36.0, ankle[0] - half_p - 34.0),
        (ankle[1] + 72.0, ankle[0] + half_p + 24.0, ankle[0] - half_p - 24.0),
        (ankle[1] + 82.0, ankle[0] + 6.0, ankle[0] - 6.0),
    ]
    return np.array(rows, dtype=np.float64)


def build_leg(
    side: str, lp: LegParameters, hip: np.ndarray, fat: np.ndarray, crotch_y: float
) -> Leg:
    """Build one leg in world mm with its femoral head centre at `hip`.

    `fat` sets the skin (see `_skin_profile`); `crotch_y` is the depth of the perineum below
    the head centre, above which the medial skin is the midline x = 0.
    """
    sign = SIDE_SIGNS[side]
    pts = leg_construction(lp, solve_femoral_tilt(lp))
    bones = _leg_bones(lp, pts)  # also adds GT, the neck cut points, LE and ME to pts
    skin = _skin_profile(lp, pts, fat, crotch_y, -abs(float(hip[0])))

    # Shaft axis points at fixed fractions: femur along FC to the joint line, tibia IR to ankle.
    fc_y, joint_y = pts["FC"][1], pts["K0"][1]
    pts["Cdy_Up"] = _axis_point_at_level(pts["Q"], pts["d_a"], fc_y + 0.3 * (joint_y - fc_y))
    pts["Cdy_Down"] = _axis_point_at_level(pts["Q"], pts["d_a"], fc_y + 0.65 * (joint_y - fc_y))
    pts["Cyd_Up"] = pts["IR"] + 0.36 * (pts["A"] - pts["IR"])
    pts["Cyd_Down"] = pts["IR"] + 0.7 * (pts["A"] - pts["IR"])

    def world(points: np.ndarray) -> np.ndarray:
        return mirror_points(points, sign, hip)

    linear = np.diag([sign, 1.0])
    world_bones = [bone.mapped(world, linear) for bone in bones]
    landmarks = {name: world(pts[name][None])[0] for name in LEG_LANDMARKS}
    h_gt = float(np.dot(pts["Q"] - pts["GT"], pts["d_a"]))
    shaft_length = float(np.dot(pts["A"] - pts["Tp"], pts["d_t"]))
    femoral_shaft = ShaftGeometry(
        world((pts["Q"] - (h_gt - 95.0) * pts["d_a"])[None])[0],
        world((pts["Q"] - 95.0 * pts["d_a"])[None])[0],
        lp.shaft_radius,
        lp.shaft_radius - lp.shaft_cortex,
    )
    tibial_shaft = ShaftGeometry(
        world((pts["A"] - (shaft_length - 100.0) * pts["d_t"])[None])[0],
        world((pts["A"] - 85.0 * pts["d_t"])[None])[0],
        lp.tibia_radius,
        lp.tibia_radius - lp.tibia_cortex,
    )
    world_skin = skin.copy()
    world_skin[:, 0] += hip[1]
    world_skin[:, 1] = hip[0] + sign * skin[:, 1]
    world_skin[:, 2] = hip[0] + sign * skin[:, 2]
    frames = {
        name: (world(pts[origin][None])[0], linear @ pts[direction])
        for name, origin, direction in (
            ("femoral_axis", "Q", "d_a"), ("femoral_mechanical", "FC", "d_f"),
            ("tibial_mechanical", "IR", "d_t"), ("knee_joint", "K0", "j_f"),
            ("plateau", "Tp", "j_t"), ("plafond", "A", "j_a"), ("neck", "FC", "neck_dir"),
        )
    }  # fmt: skip
    return Leg(
        side=side,
        landmarks=landmarks,
        bones=world_bones,
        femoral_head=world_bones[0].disks[0],
        femoral_shaft=femoral_shaft,
        tibial_shaft=tibial_shaft,
        skin=world_skin,
        points={name: world(value[None])[0] for name, value in pts.items() if name in POINTS},
        frames=frames,
    )


LEG_LANDMARKS: Tuple[str, ...] = (
    "FC", "GT", "FNeck_Cut_Up", "FNeck_Cut_Down", "Cdy_Up", "Cdy_Down", "IF", "LLP", "MLP",
    "LPC", "MPC", "IR", "LE", "ME", "Cyd_Up", "Cyd_Down", "DLP", "DMP",
)  # fmt: skip
POINTS = ("K0", "Tp", "A", "P", "Q")


def alignment_from_landmarks(landmarks: Dict[str, np.ndarray], side: str) -> Dict[str, float]:
    """Measure one leg's alignment angles (degrees) from its world landmarks (any units).

    HKA is 180 for a straight leg, below 180 in varus and above 180 in valgus. JLCA is
    positive when the joint opens laterally. mLDFA, LDTA and mLPFA are lateral angles, MPTA
    a medial angle, NSA the angle between the neck axis and the anatomical shaft axis.
    """
    sign = SIDE_SIGNS[side]
    leg = {name: np.asarray(point, dtype=np.float64) * np.array([sign, 1.0])
           for name, point in landmarks.items()}  # fmt: skip
    ankle = 0.5 * (leg["DLP"] + leg["DMP"])
    neck_mid = 0.5 * (leg["FNeck_Cut_Up"] + leg["FNeck_Cut_Down"])
    femoral = leg["IF"] - leg["FC"]
    tibial = ankle - leg["IR"]
    shaft = leg["Cdy_Down"] - leg["Cdy_Up"]
    return {
        "hka_deg": 180.0 - signed_angle(femoral, tibial),
        "mldfa_deg": angle_between(-femoral, leg["LLP"] - leg["MLP"]),
        "mpta_deg": angle_between(tibial, leg["MPC"] - leg["LPC"]),
        "ldta_deg": angle_between(-tibial, leg["DLP"] - leg["DMP"]),
        "jlca_deg": signed_angle(leg["LLP"] - leg["MLP"], leg["LPC"] - leg["MPC"]),
        "mlpfa_deg": angle_between(femoral, leg["GT"] - leg["FC"]),
        "neck_shaft_deg": angle_between(leg["FC"] - neck_mid, shaft),
        "anatomic_mechanical_deg": angle_between(femoral, shaft),
    }


def angle_between(first: np.ndarray, second: np.ndarray) -> float:
    """Return the unsigned angle between two vectors in degrees."""
    cosine = np.dot(first, second) / (np.linalg.norm(first) * np.linalg.norm(second))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
