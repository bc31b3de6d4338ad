"""Attention maps drawn over the radiograph: a grid of tall panels with one colour bar.

Each panel is composed in numpy at its exact pixel size. The radiograph and the attention map
are resampled with nearest-neighbour lookup, so every output pixel shows the attention of the
patch under its centre. The map is blended over the radiograph with an opacity that grows
with the attention. Matplotlib only adds the text, the markers and the colour bar.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from .figures import Header, PixelLayout, add_colorbar

OVERLAY_CMAP = "turbo"
MAX_OVERLAY_ALPHA = 0.6


# Overlay values are quantised to this many levels before blending. A step of 1/255 changes
# a blended pixel by less than one grey level.
OVERLAY_LEVELS = 256


@functools.lru_cache(maxsize=8)
def blend_tables(cmap: str, max_alpha: float) -> Tuple[np.ndarray, np.ndarray]:
    """Return per overlay level the radiograph weight [L] and the added colour [L, 3].

    Level i is the value i / (L - 1), and its opacity is `max_alpha` times that value.
    """
    values = np.linspace(0.0, 1.0, OVERLAY_LEVELS)
    colors = colormaps[cmap](values, bytes=True)[:, :3].astype(np.float32)
    alpha = (max_alpha * values).astype(np.float32)
    return 1.0 - alpha, colors * alpha[:, None]


def overlay_level_index(values: np.ndarray) -> np.ndarray:
    """Quantise values in 0..1 (clipped) to overlay levels 0..L-1 as uint8."""
    clipped = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    return np.rint(clipped * (OVERLAY_LEVELS - 1)).astype(np.uint8)


def blend_levels(
    gray_rgb: np.ndarray,
    levels: np.ndarray,
    cmap: str = OVERLAY_CMAP,
    max_alpha: float = MAX_OVERLAY_ALPHA,
) -> np.ndarray:
    """Blend overlay levels [h, w] uint8 (`overlay_level_index`) over [h, w, 3] uint8.

    Two table lookups per pixel replace a colour-map call and a per-pixel opacity.
    """
    keep, add = blend_tables(cmap, float(max_alpha))
    blended = gray_rgb * keep[levels][..., None]
    blended += add[levels]
    blended += 0.5
    return np.clip(blended, 0, 255, out=blended).astype(np.uint8)


def blend_overlay(
    gray_rgb: np.ndarray,
    values: np.ndarray,
    cmap: str = OVERLAY_CMAP,
    max_alpha: float = MAX_OVERLAY_ALPHA,
) -> np.ndarray:
    """Blend a colour-mapped map over a radiograph: [h, w, 3] uint8 and [h, w] in 0..1.

    The overlay's opacity grows with the value (0 where the value is 0, `max_alpha` at 1), so
    the radiograph stays visible where attention is low, and through every colour.
    """
    return blend_levels(gray_rgb, overlay_level_index(values), cmap, max_alpha)


def nearest_indices(source: int, target: int) -> np.ndarray:
    """Return, for each of `target` output pixels, the source pixel under its centre."""
    return np.minimum(((np.arange(target) + 0.5) * source / target).astype(np.int64), source - 1)


@dataclass(frozen=True)
class LandmarkMarker:
    """A landmark's position on a panel, in pixels of the drawn image, and its source.

    `source` is "ground truth" (from the annotation) or "prediction" (decoded heatmap).
    `outside` is the image edge ("top", "bottom", "left" or "right") that a landmark lying
    outside the image was moved onto, else None.
    """

    x: float
    y: float
    source: str
    outside: Optional[str] = None


MARKER_STYLES = {
    "ground truth": dict(marker="o", markersize=7, markerfacecolor="none",
                         markeredgecolor="#00ff66", markeredgewidth=1.2),
    "prediction": dict(marker="x", markersize=6, markeredgecolor="#ff2bd6",
                       markeredgewidth=1.5),
}  # fmt: skip
MARKER_LABELS = {"ground truth": "ground-truth landmark", "prediction": "predicted landmark"}
# A landmark outside the image is drawn on the nearest edge as a triangle pointing out.
OUTSIDE_MARKERS = {"top": "^", "bottom": "v", "left": "<", "right": ">"}


def clamp_marker(marker: LandmarkMarker, width: int, height: int) -> LandmarkMarker:
    """Move a marker outside the image [0, width] x [0, height] onto the nearest edge."""
    x = min(max(marker.x, 0.0), float(width))
    y = min(max(marker.y, 0.0), float(height))
    if (x, y) == (marker.x, marker.y):
        return marker
    # The edge is the one the landmark lies farthest beyond, relative to the image size.
    beyond = {
        "left": -marker.x / width,
        "right": (marker.x - width) / width,
        "top": -marker.y / height,
        "bottom": (marker.y - height) / height,
    }
    return replace(marker, x=x, y=y, outside=max(beyond, key=beyond.get))


def marker_style(marker: LandmarkMarker) -> dict:
    """Return the matplotlib marker style of a landmark marker."""
    style = dict(MARKER_STYLES[marker.source])
    if marker.outside is not None:
        style.update(marker=OUTSIDE_MARKERS[marker.outside], markersize=7)
        style.setdefault("markerfacecolor", style["markeredgecolor"])
    return style


def inward_shift(marker: LandmarkMarker, size_px: float) -> Tuple[float, float]:
    """Return the pixel shift that puts an edge marker just inside the panel, else (0, 0).

    Outside the panel, the triangle would cover the note above or the panel beside it.
    """
    step = size_px / 2.0 + 1.0
    shifts = {"top": (0.0, step), "bottom": (0.0, -step), "left": (step, 0.0)}
    return shifts.get(marker.outside, (-step, 0.0) if marker.outside == "right" else (0.0, 0.0))


def marker_legend_handles(markers: Sequence[Optional[LandmarkMarker]]) -> List[Line2D]:
    """Return one legend handle per landmark source that the markers use.

    Markers moved onto the image edge get their own entry, labelled as moved.
    """
    handles = []
    drawn = [marker for marker in markers if marker is not None]
    for source in dict.fromkeys(marker.source for marker in drawn):
        inside = [marker for marker in drawn if marker.source == source and not marker.outside]
        outside = [marker for marker in drawn if marker.source == source and marker.outside]
        if inside:
            style = marker_style(inside[0])
            handles.append(Line2D([], [], linestyle="", label=MARKER_LABELS[source], **style))
        if outside:
            label = f"{MARKER_LABELS[source]} outside the image, drawn on its edge"
            style = marker_style(outside[0])
            handles.append(Line2D([], [], linestyle="", label=label, **style))
    return handles


@dataclass(frozen=True)
class BlockMap:
    """A map that is constant on blocks, such as attention on the patch grid.

    `blocks` [rows, cols] contains the values. `pixel_rows` [h] gives the block row of each
    image pixel row, and `pixel_columns` [w] the block column of each image pixel column.
    A full-resolution map [h, w] is the case of one block per pixel (`BlockMap.of_pixels`).
    """

    blocks: np.ndarray
    pixel_rows: np.ndarray
    pixel_columns: np.ndarray

    @classmethod
    def of_pixels(cls, values: np.ndarray) -> BlockMap:
        """Wrap a map [h, w] with one value per image pixel."""
        return cls(values, np.arange(values.shape[0]), np.arange(values.shape[1]))

    def sample(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """Return the values at image pixel `rows` x `columns`, [len(rows), len(columns)]."""
        return self.blocks[self.pixel_rows[rows]][:, self.pixel_columns[columns]]


def compose_panel(
    image: np.ndarray,
    values: BlockMap,
    height: int,
    width: int,
    cmap: str = OVERLAY_CMAP,
) -> np.ndarray:
    """Return one panel [height, width, 3] uint8: `values` in 0..1 blended over `image`.

    `image` is [h, w, 3] and `values` covers the same pixels. Both are resampled by
    nearest-neighbour lookup, so an output pixel shows the value at the image pixel under its
    centre and a patch's block keeps sharp edges.
    """
    rows = nearest_indices(image.shape[0], height)
    columns = nearest_indices(image.shape[1], width)
    # Quantising the blocks before sampling keeps the per-pixel work to uint8 lookups.
    levels = replace(values, blocks=overlay_level_index(values.blocks)).sample(rows, columns)
    return blend_levels(image[rows][:, columns], levels, cmap)


@dataclass(frozen=True)
class OverlayScale:
    """The colour bar of an overlay: the quantity shown and how it maps to 0..1 levels.

    `norm` maps the quantity to the overlay level in 0..1 that `panel_map` returns, and
    `ticks` are colour-bar ticks in units of the quantity, labelled with `tick_format`.
    """

    label: str
    norm: Normalize
    ticks: Optional[Sequence[float]] = None
    tick_format: str = "{:g}"


@dataclass(frozen=True)
class PanelGrid:
    """Pixel geometry of a grid of equal panels, measured from the figure's top-left corner."""

    left: int
    top: int
    width: int
    height: int
    step_x: int
    step_y: int

    def box(self, row: int, column: int) -> Tuple[int, int]:
        """Return the (left, top) pixel of a panel."""
        return self.left + column * self.step_x, self.top + row * self.step_y


# Widest panel, in inches. A landscape image (a knee view, a wrong file) then gets low panels
# instead of a figure metres wide with unreadable text.
MAX_PANEL_WIDTH = 4.0


def draw_image_panels(
    image: np.ndarray,
    panel_map: Callable[[int, int], BlockMap],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    panel_notes: Sequence[Sequence[str]],
    markers: Sequence[Optional[LandmarkMarker]],
    title: str,
    subtitle: str,
    colorbar: Union[str, OverlayScale],
    dpi: int,
    cmap: str = OVERLAY_CMAP,
    panel_height: float = 3.6,
) -> PixelLayout:
    """Draw attention maps over a radiograph in rows x columns panels with one colour bar.

    `image` is the radiograph [h, w, 3] uint8. `panel_map(row, column)` returns that panel's
    map in 0..1 over the same pixels. `markers` has one entry per column, in image
    pixels; one outside the image is drawn on its edge. `colorbar` is the colour-bar label
    of levels 0..1, or an `OverlayScale`. All panels are composed into one image in numpy,
    which matplotlib draws unscaled; matplotlib adds the text, the markers and the colour bar.
    """
    rows, columns = len(row_labels), len(column_labels)
    image_h, image_w = image.shape[:2]
    if isinstance(colorbar, str):
        colorbar = OverlayScale(colorbar, Normalize(0, 1))
    markers = [
        clamp_marker(marker, image_w, image_h) if marker is not None else None for marker in markers
    ]
    panel_width = min(max(0.9, panel_height * image_w / image_h), MAX_PANEL_WIDTH)
    panel_height = panel_width * image_h / image_w
    notes_lines = max(note.count("\n") + 1 for line in panel_notes for note in line)
    left_room, gap_x, gap_y = 0.35, 0.18, 0.1
    note_room = 0.06 + 0.105 * notes_lines
    column_title, colorbar_room = 0.3, 1.05
    grid_width = left_room + columns * (panel_width + gap_x)
    width = max(grid_width + colorbar_room, 6.5)
    header = Header.fit(title, subtitle, width, legend=True)
    row_step = note_room + panel_height + gap_y
    layout = PixelLayout(width, header.height + column_title + rows * row_step, dpi)
    # The panels and the colour bar are centred together, so that a figure widened for its
    # header leaves no gap between the last panel and the colour bar.
    block_left = (width - grid_width - colorbar_room) / 2
    grid_left = block_left + left_room
    grid = PanelGrid(
        left=layout.px(grid_left),
        top=layout.px(header.height + column_title + note_room),
        width=layout.px(panel_width),
        height=layout.px(panel_height),
        step_x=layout.px(panel_width + gap_x),
        step_y=layout.px(row_step),
    )

    for row in range(rows):
        for column in range(columns):
            left, top = grid.box(row, column)
            panel = compose_panel(image, panel_map(row, column), grid.height, grid.width, cmap)
            layout.place_image(panel, left, top)
            draw_frame(layout.background, left, top, grid.width, grid.height)

    figure = layout.figure
    scale_x, scale_y = grid.width / image_w, grid.height / image_h
    for row in range(rows):
        for column in range(columns):
            left, top = grid.box(row, column)
            layout.text(
                left + grid.width / 2,
                top - 3,
                panel_notes[row][column],
                va="bottom",
                fontsize=6.5,
                linespacing=1.1,
            )
            marker = markers[column]
            if marker is not None:
                style = marker_style(marker)
                dx, dy = inward_shift(marker, style["markersize"] * dpi / 72.0)
                layout.marker(left + marker.x * scale_x + dx, top + marker.y * scale_y + dy, style)
        left, top = grid.box(row, 0)
        layout.text(
            left - 6, top + grid.height / 2, row_labels[row], ha="right", rotation=90, fontsize=8.5
        )
    for column, label in enumerate(column_labels):
        left, top = grid.box(0, column)
        layout.text(
            left + grid.width / 2,
            top - layout.px(note_room + 0.04),
            label,
            va="bottom",
            fontsize=8,
            weight="bold",
        )

    mappable = ScalarMappable(norm=colorbar.norm, cmap=cmap)
    bar_top = header.height + column_title + note_room
    bar_height = min(rows, 2) * panel_height * 0.8
    bar = add_colorbar(
        layout, mappable, colorbar.label, block_left + grid_width + 0.15, bar_top, bar_height
    )
    if colorbar.ticks is not None:
        bar.set_ticks(
            list(colorbar.ticks),
            labels=[colorbar.tick_format.format(tick) for tick in colorbar.ticks],
        )
        bar.ax.minorticks_off()
    header.draw(figure, marker_legend_handles(markers))
    return layout


def draw_frame(canvas: np.ndarray, left: int, top: int, width: int, height: int) -> None:
    """Draw a 1-pixel black frame just outside a panel's box on an RGB canvas."""
    x0, y0 = max(left - 1, 0), max(top - 1, 0)
    x1, y1 = min(left + width, canvas.shape[1] - 1), min(top + height, canvas.shape[0] - 1)
    canvas[y0, x0 : x1 + 1] = 0
    canvas[y1, x0 : x1 + 1] = 0
    canvas[y0 : y1 + 1, x0] = 0
    canvas[y0 : y1 + 1, x1] = 0
