"""Landmark error metrics: radial error, NME, PCK, AUC, and per-region and per-landmark tables.

Errors are Euclidean distances between predicted and annotated points, in three units:
pixels of the letterboxed model input, pixels of the original image, and millimetres where the
pixel spacing is known. Missing landmarks (NaN) are skipped and counted. NME and the PCK
thresholds are fractions of the letterboxed input height (MODEL.IMAGE_SIZE height), so the
numbers compare across images of any size.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from .fileio import PathLike, write_text_atomic
from .keypoints import REGIONS, keypoint_names
from .preprocess import Letterbox

# PCK thresholds in millimetres, reported when every evaluated landmark has a pixel spacing.
MM_THRESHOLDS = (2.0, 4.0, 10.0)


@dataclass
class LandmarkErrors:
    """Radial errors [N images, K landmarks], NaN where a landmark is missing.

    `mm` is also NaN where the image's pixel spacing is unknown. `input_height` is the
    letterboxed input height in pixels, the normaliser of NME and of the PCK thresholds.
    """

    input_px: np.ndarray
    original_px: np.ndarray
    mm: np.ndarray
    input_height: int
    names: List[str]
    image_names: List[str]


def radial_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Return the distances [..., K] between points [..., K, 2]; NaN where `truth` is NaN."""
    difference = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return np.sqrt((difference**2).sum(axis=-1))


def compute_errors(
    predicted_input: np.ndarray,
    truth_input: np.ndarray,
    truth_original: np.ndarray,
    letterboxes: Sequence[Letterbox],
    reductions: Sequence[float],
    spacings_mm: Sequence[Optional[float]],
    input_height: int,
    image_names: Optional[Sequence[str]] = None,
) -> LandmarkErrors:
    """Compute radial errors in input pixels, original pixels and millimetres.

    `predicted_input` and `truth_input` are [N, K, 2] letterboxed input pixels,
    `truth_original` [N, K, 2] pixels of the images on disk. A prediction is mapped to the
    original image by the inverse letterbox and the decoding `reduction` of its image.
    """
    predicted_input = np.asarray(predicted_input, dtype=np.float64)
    count, num_keypoints = predicted_input.shape[:2]
    predicted_original = (
        np.stack(
            [
                box.to_original(points) * reduction
                for box, points, reduction in zip(letterboxes, predicted_input, reductions)
            ]
        )
        if count
        else np.zeros_like(predicted_input)
    )
    original_px = radial_errors(predicted_original, truth_original)
    spacing = np.array([np.nan if s is None else float(s) for s in spacings_mm])
    return LandmarkErrors(
        input_px=radial_errors(predicted_input, truth_input),
        original_px=original_px,
        mm=original_px * spacing.reshape(-1, 1),
        input_height=int(input_height),
        names=keypoint_names(num_keypoints),
        image_names=list(image_names) if image_names else [str(i) for i in range(count)],
    )


def pck_label(fraction: float, input_height: int) -> str:
    """Name a PCK threshold by its real value, e.g. "PCK@2% of height (7.7 px)"."""
    return f"PCK@{fraction * 100:g}% of height ({fraction * input_height:.1f} px)"


def pck(errors: np.ndarray, threshold: float) -> float:
    """Return the fraction of finite errors at or below `threshold` (NaN if there are none)."""
    finite = errors[np.isfinite(errors)]
    return float((finite <= threshold).mean()) if finite.size else float("nan")


def pck_auc(errors: np.ndarray, max_threshold: float) -> float:
    """Return the area under the PCK curve for thresholds 0..`max_threshold`, scaled to 0..1.

    Each error e contributes max(0, 1 - e / max_threshold), the exact integral of its
    step function over the threshold range.
    """
    finite = errors[np.isfinite(errors)]
    if not finite.size:
        return float("nan")
    return float(np.clip(1.0 - finite / max_threshold, 0.0, 1.0).mean())


def _mean(values: np.ndarray) -> Optional[float]:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _stat(values: np.ndarray, function) -> Optional[float]:
    finite = values[np.isfinite(values)]
    return float(function(finite)) if finite.size else None


def summarize(
    errors: LandmarkErrors, fractions: Sequence[float], columns: Optional[Sequence[int]] = None
) -> Dict[str, object]:
    """Summarise the errors of the landmarks `columns` (default all) over all images.

    Returns counts, mean/SD/median radial error in each unit, NME, PCK at each fraction of
    the input height, PCK in millimetres where every landmark has a spacing, and the PCK AUC
    up to the largest fraction. Values without data are None.
    """
    columns = list(range(errors.input_px.shape[1])) if columns is None else list(columns)
    input_px = errors.input_px[:, columns]
    original_px = errors.original_px[:, columns]
    mm = errors.mm[:, columns]
    evaluated = int(np.isfinite(input_px).sum())
    height = errors.input_height
    mre = _mean(input_px)
    summary: Dict[str, object] = {
        "landmarks_evaluated": evaluated,
        "landmarks_missing": int(input_px.size - evaluated),
        "mre_input_px": mre,
        "sd_input_px": _stat(input_px, np.std),
        "median_input_px": _stat(input_px, np.median),
        "max_input_px": _stat(input_px, np.max),
        "mre_original_px": _mean(original_px),
        "mre_mm": _mean(mm),
        "sd_mm": _stat(mm, np.std),
        "landmarks_with_mm": int(np.isfinite(mm).sum()),
        "nme": None if mre is None else mre / height,
    }
    pck_rows = []
    for fraction in sorted(fractions):
        value = pck(input_px, fraction * height)
        pck_rows.append(
            {
                "label": pck_label(fraction, height),
                "fraction_of_height": float(fraction),
                "threshold_input_px": fraction * height,
                "value": None if np.isnan(value) else value,
            }
        )
    summary["pck"] = pck_rows
    mm_complete = evaluated > 0 and summary["landmarks_with_mm"] == evaluated
    summary["pck_mm"] = (
        [
            {
                "label": f"PCK@{threshold:g} mm",
                "threshold_mm": threshold,
                "value": pck(mm, threshold),
            }
            for threshold in MM_THRESHOLDS
        ]
        if mm_complete
        else []
    )
    largest = max(fractions) if len(fractions) else 0.05
    auc = pck_auc(input_px, largest * height)
    summary["auc"] = None if np.isnan(auc) else auc
    summary["auc_label"] = (
        f"AUC of PCK for 0-{largest * 100:g}% of height (0-{largest * height:.1f} px)"
    )
    return summary


def region_rows(errors: LandmarkErrors, fractions: Sequence[float]) -> List[Dict[str, object]]:
    """Summarise each anatomical region (hip, femoral shaft, knee, ...) and all landmarks."""
    num_keypoints = errors.input_px.shape[1]
    rows = []
    for name, first, last in REGIONS:
        columns = [index for index in range(first, last + 1) if index < num_keypoints]
        if columns:
            rows.append({"region": name, **_flat(summarize(errors, fractions, columns))})
    rows.append({"region": "all", **_flat(summarize(errors, fractions))})
    return rows


def landmark_rows(errors: LandmarkErrors, fractions: Sequence[float]) -> List[Dict[str, object]]:
    """Summarise each landmark."""
    rows = []
    for index, name in enumerate(errors.names):
        region = next((r for r, first, last in REGIONS if first <= index <= last), "")
        summary = summarize(errors, fractions, [index])
        rows.append({"index": index, "landmark": name, "region": region, **_flat(summary)})
    return rows


def _flat(summary: Dict[str, object]) -> Dict[str, object]:
    """Turn the PCK lists of a summary into one column per threshold, for tables."""
    skipped = ("pck", "pck_mm", "auc", "auc_label")
    flat = {key: value for key, value in summary.items() if key not in skipped}
    for row in summary["pck"] + summary["pck_mm"]:
        flat[row["label"]] = row["value"]
    flat[summary["auc_label"]] = summary["auc"]
    return flat


def write_csv(rows: Sequence[Dict[str, object]], path: PathLike) -> None:
    """Write table rows (dicts with the same keys) as CSV, atomically; None is left empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    write_text_atomic(path, buffer.getvalue())


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


# ---------------------------------------------------------------------------------------------
# Reports


def build_report(
    errors: LandmarkErrors, fractions: Sequence[float], context: Dict[str, object]
) -> Dict[str, object]:
    """Collect the overall summary, the region and landmark tables and `context` in one dict."""
    height = errors.input_height
    return {
        **context,
        "images": int(errors.input_px.shape[0]),
        "units": {
            "input_px": f"pixels of the letterboxed model input ({height} px high)",
            "original_px": "pixels of the image on disk",
            "mm": "millimetres, from the annotation's pixel_spacing_mm or the DICOM header",
        },
        "nme_normalised_by": f"letterboxed input height ({height} px)",
        "overall": summarize(errors, fractions),
        "regions": region_rows(errors, fractions),
        "landmarks": landmark_rows(errors, fractions),
    }


def per_image_rows(errors: LandmarkErrors) -> List[Dict[str, object]]:
    """Summarise each image: mean and maximum error and its worst landmark."""
    rows = []
    for name, row, row_mm in zip(errors.image_names, errors.input_px, errors.mm):
        finite = np.isfinite(row)
        worst = int(np.nanargmax(row)) if finite.any() else None
        rows.append(
            {
                "image": name,
                "landmarks_evaluated": int(finite.sum()),
                "mre_input_px": float(row[finite].mean()) if finite.any() else None,
                "max_input_px": float(row[finite].max()) if finite.any() else None,
                "worst_landmark": errors.names[worst] if worst is not None else "",
                "mre_mm": _mean(row_mm),
            }
        )
    return rows


def format_table(report: Dict[str, object]) -> str:
    """Format the region table as fixed-width text for the terminal."""
    fractions_rows = report["overall"]["pck"]
    pck_titles = [f"PCK@{row['fraction_of_height'] * 100:g}%" for row in fractions_rows]
    header = f"{'region':<14}{'n':>5}{'miss':>5}{'MRE px':>8}{'orig px':>9}{'mm':>7}{'NME %':>7}"
    header += "".join(f"{title:>10}" for title in pck_titles)
    lines = [header]
    for row in report["regions"]:
        cells = [
            f"{row['region']:<14}",
            f"{row['landmarks_evaluated']:>5}",
            f"{row['landmarks_missing']:>5}",
            _cell(row["mre_input_px"], 8, ".2f"),
            _cell(row["mre_original_px"], 9, ".1f"),
            _cell(row["mre_mm"], 7, ".2f"),
            _cell(None if row["nme"] is None else 100 * row["nme"], 7, ".2f"),
        ]
        for pck_row in fractions_rows:
            value = row.get(pck_row["label"])
            cells.append(_cell(None if value is None else 100 * value, 10, ".1f"))
        lines.append("".join(cells))
    overall = report["overall"]
    thresholds = ", ".join(row["label"] for row in fractions_rows)
    lines.append(f"{thresholds}; NME = MRE / {report['nme_normalised_by']}")
    if overall["auc"] is not None:
        lines.append(f"{overall['auc_label']}: {overall['auc']:.3f}")
    return "\n".join(lines)


def _cell(value: Optional[float], width: int, spec: str) -> str:
    text = "-" if value is None or not np.isfinite(value) else format(value, spec)
    return f"{text:>{width}}"


def plot_errors_by_landmark(
    report: Dict[str, object], errors: LandmarkErrors, path: PathLike, title: str
) -> None:
    """Draw the mean radial error of each landmark as bars (SD whiskers), coloured by region.

    The left axis is letterboxed input pixels, the right axis the same in % of the input
    height; dashed lines mark the PCK thresholds. Written atomically with the Agg backend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fileio import atomic_path

    rows = report["landmarks"]
    height = errors.input_height
    means = np.array([np.nan if r["mre_input_px"] is None else r["mre_input_px"] for r in rows])
    spreads = np.array([0.0 if r["sd_input_px"] is None else r["sd_input_px"] for r in rows])
    region_names = [name for name, _, _ in REGIONS]
    palette = plt.get_cmap("tab10").colors
    colours = [palette[region_names.index(r["region"]) % 10] if r["region"] else "grey"
               for r in rows]  # fmt: skip

    figure, axes = plt.subplots(figsize=(14, 5.5), layout="constrained")
    positions = np.arange(len(rows))
    bar_heights = np.nan_to_num(means)
    axes.bar(positions, bar_heights, color=colours, width=0.75)
    # Whiskers of one SD, cut at zero below.
    whiskers = [np.minimum(spreads, bar_heights), spreads]
    axes.errorbar(
        positions, bar_heights, yerr=whiskers, fmt="none", ecolor="black", elinewidth=0.8,
        capsize=2,
    )  # fmt: skip
    for index in np.flatnonzero(np.isnan(means)):
        axes.text(index, 0, "no data", rotation=90, ha="center", va="bottom", fontsize=7)
    top = max(float(np.nanmax(np.concatenate([means + spreads, [0.0]]))), 0.021 * height) * 1.08
    axes.set_ylim(0, top)
    threshold_handles, threshold_labels = [], []
    styles = ["--", "-.", ":", (0, (5, 1)), (0, (1, 3))]
    for number, pck_row in enumerate(report["overall"]["pck"]):
        threshold = pck_row["threshold_input_px"]
        if threshold >= top:
            continue
        line = axes.axhline(
            threshold, color="0.25", linestyle=styles[number % len(styles)], linewidth=0.9
        )
        threshold_handles.append(line)
        threshold_labels.append(
            f"{pck_row['fraction_of_height'] * 100:g}% of height ({threshold:.1f} px)"
        )
    axes.set_xticks(positions, [r["landmark"] for r in rows], rotation=90, fontsize=8)
    axes.set_xlim(-0.6, len(rows) - 0.4)
    axes.set_ylabel(f"mean radial error (letterboxed input px, {height} px high)")
    secondary = axes.secondary_yaxis(
        "right", functions=(lambda px: 100 * px / height, lambda pct: pct * height / 100)
    )
    secondary.set_ylabel("% of input height")
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[i]) for i in range(len(region_names))]
    figure.legend(
        handles + threshold_handles,
        region_names + threshold_labels,
        loc="outside upper center",
        ncols=len(handles) + len(threshold_handles),
        fontsize=8,
        frameon=False,
    )
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
    plt.close(figure)
