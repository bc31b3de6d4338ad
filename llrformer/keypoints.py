"""The 36 LLRFormer landmarks: canonical order, left/right pairs and anatomical regions.

`R_` is the patient's right, which a standard AP radiograph shows on the viewer's left.
Pairs (2i, 2i + 1) are mirror images of each other.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from .errors import UserError

KEYPOINT_NAMES: Tuple[str, ...] = (
    "R_FC", "L_FC",
    "R_GT", "L_GT",
    "R_FNeck_Cut_Up", "L_FNeck_Cut_Up",
    "R_FNeck_Cut_Down", "L_FNeck_Cut_Down",
    "R_Cdy_Up", "L_Cdy_Up",
    "R_Cdy_Down", "L_Cdy_Down",
    "R_IF", "L_IF",
    "R_LLP", "L_LLP",
    "R_MLP", "L_MLP",
    "R_LPC", "L_LPC",
    "R_MPC", "L_MPC",
    "R_IR", "L_IR",
    "R_LE", "L_LE",
    "R_ME", "L_ME",
    "R_Cyd_Up", "L_Cyd_Up",
    "R_Cyd_Down", "L_Cyd_Down",
    "R_DLP", "L_DLP",
    "R_DMP", "L_DMP",
)  # fmt: skip

NUM_KEYPOINTS = len(KEYPOINT_NAMES)

KEYPOINT_DESCRIPTIONS: Tuple[str, ...] = tuple(
    description
    for description in (
        "femoral head centre",
        "greater trochanter tip",
        "upper edge of the femoral neck",
        "lower edge of the femoral neck",
        "femoral shaft axis, proximal point",
        "femoral shaft axis, distal point",
        "intercondylar fossa (femoral knee centre)",
        "lowest point of the lateral femoral condyle",
        "lowest point of the medial femoral condyle",
        "lateral corner of the tibial plateau",
        "medial corner of the tibial plateau",
        "tibial intercondylar eminence (tibial knee centre)",
        "lateral edge of the proximal tibia",
        "medial edge of the proximal tibia",
        "tibial shaft axis, proximal point",
        "tibial shaft axis, distal point",
        "lateral point of the distal tibial joint line",
        "medial point of the distal tibial joint line",
    )
    for _side in (0, 1)
)

# Anatomical regions for reports and figure separators: (name, first index, last index).
REGIONS: Tuple[Tuple[str, int, int], ...] = (
    ("hip", 0, 7),
    ("femoral shaft", 8, 11),
    ("knee", 12, 27),
    ("tibial shaft", 28, 31),
    ("ankle", 32, 35),
)

# NOTE: the published region-weighted loss (TRAIN.JOINT_WEIGHTS) groups the indices
# differently from REGIONS. These ranges are kept for checkpoint-compatible training.
LOSS_GROUPS: Tuple[Tuple[str, int, int], ...] = (
    ("HIP_WEIGHT", 0, 9),
    ("FEMUR_WEIGHT", 10, 17),
    ("KNEE_WEIGHT", 18, 25),
    ("TIBIA_WEIGHT", 26, 33),
    ("ANKLE_WEIGHT", 34, 35),
)

_INDEX_BY_NAME: Dict[str, int] = {name: index for index, name in enumerate(KEYPOINT_NAMES)}


def keypoint_index(name: str) -> int:
    """Return the canonical index of a landmark name, case-insensitive."""
    for candidate, index in _INDEX_BY_NAME.items():
        if candidate.lower() == name.lower():
            return index
    raise UserError(f"unknown landmark name {name!r}; valid names are {', '.join(KEYPOINT_NAMES)}")


def mirror_index(index: int) -> int:
    """Return the index of the same landmark on the other leg."""
    return index + 1 if index % 2 == 0 else index - 1


def region_of(index: int) -> str:
    """Return the anatomical region name of a landmark index."""
    for name, first, last in REGIONS:
        if first <= index <= last:
            return name
    raise ValueError(f"keypoint index {index} is outside 0..{NUM_KEYPOINTS - 1}")


def parse_keypoint_list(text: str | Sequence[str], num_keypoints: int = NUM_KEYPOINTS) -> List[int]:
    """Parse landmark indices or names ("4,5,R_LLP" or ["4", "L_LLP"]) into indices.

    Raises UserError naming the first invalid entry.
    """
    items = text.split(",") if isinstance(text, str) else [str(item) for item in text]
    indices = []
    for item in (entry.strip() for entry in items):
        if not item:
            continue
        if item.lstrip("-").isdigit():
            index = int(item)
            if not 0 <= index < num_keypoints:
                raise UserError(
                    f"keypoint index {index} is out of range; the model has keypoints "
                    f"0..{num_keypoints - 1}"
                )
        else:
            index = keypoint_index(item)
            if index >= num_keypoints:
                raise UserError(
                    f"landmark {item!r} has index {index}, but the model has only "
                    f"{num_keypoints} keypoints"
                )
        indices.append(index)
    if not indices:
        raise UserError("no keypoints given; pass indices or names such as 4,5,R_LLP")
    return indices


def keypoint_names(num_keypoints: int) -> List[str]:
    """Return display names for a model with `num_keypoints` keypoints.

    The canonical names are used when the model has 36 keypoints, otherwise `kp0`, `kp1`, ...
    """
    if num_keypoints == NUM_KEYPOINTS:
        return list(KEYPOINT_NAMES)
    return [f"kp{index}" for index in range(num_keypoints)]
