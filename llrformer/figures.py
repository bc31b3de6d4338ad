"""Drawing of the attention figures with matplotlib, headless.

Figures are built as `matplotlib.figure.Figure` objects on the Agg canvas, without pyplot, so
nothing opens a window or blocks and nothing stays registered after saving. Axes are placed in
inches, so tick labels, titles and colour bars keep their room at any number of panels.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from .fileio import atomic_path  # noqa: E402
from .keypoints import NUM_KEYPOINTS, REGIONS  # noqa: E402

JPEG_QUALITY = 92
TICK_FONT = 6.5
TITLE_FONT = 8.5
# Dark colours that stay readable as small text on white: one per anatomical region.
REGION_COLORS = {
    "hip": "#1f4e9c",
    "femoral shaft": "#1d7a3a",
    "knee": "#b0202a",
    "tibial shaft": "#7a3fa8",
    "ankle": "#9a6a00",
}


def region_color(index: int) -> str:
    """Return the text colour of a landmark's region, black outside the 36 canonical ones."""
    for name, first, last in REGIONS:
        if first <= index <= last:
            return REGION_COLORS[name]
    return "black"


def region_boundaries(indices: Sequence[int]) -> List[float]:
    """Return the positions between neighbouring rows whose landmarks lie in different regions.

    Only contiguous ascending canonical indices of a 36-keypoint model get boundaries.
    """
    indices = list(indices)
    if not indices or max(indices) >= NUM_KEYPOINTS:
        return []
    if indices != list(range(indices[0], indices[0] + len(indices))):
        return []
    ends = {last for _, _, last in REGIONS}
    return [position + 0.5 for position, index in enumerate(indices[:-1]) if index in ends]


def text_width_inches(texts: Sequence[str], size: float) -> float:
    """Estimate the width of the longest text at `size` points (about 0.6 em per character)."""
    longest = max((len(text) for text in texts), default=0)
    return longest * 0.6 * size / 72.0


def region_legend_handles(indices: Sequence[int]) -> List[Line2D]:
    """Return legend handles for the regions that `indices` touch, in anatomical order."""
    present = {region_color(index) for index in indices}
    return [
        Line2D([], [], marker="s", linestyle="", color=color, markersize=6, label=name)
        for name, color in REGION_COLORS.items()
        if color in present
    ]


class PixelLayout:
    """A figure whose parts are placed in inches or pixels from its top-left corner.

    Positions are snapped to whole pixels, which keeps images and pre-rendered label strips
    aligned pixel for pixel. `background` is an optional RGB image [height_px, width_px, 3]
    that `save_figure` puts under the figure: large raster content goes there, because
    numpy composes it much faster than matplotlib's image pipeline draws it.
    """

    def __init__(self, width: float, height: float, dpi: int) -> None:
        self.dpi = dpi
        self.width_px = self.px(width)
        self.height_px = self.px(height)
        self.figure = Figure(figsize=(self.width_px / dpi, self.height_px / dpi), dpi=dpi)
        self.background: Optional[np.ndarray] = None

    def render(self) -> np.ndarray:
        """Draw the figure over the background (white if none); return RGB [h, w, 3] uint8."""
        from PIL import Image

        self.figure.patch.set_alpha(0.0)
        canvas = FigureCanvasAgg(self.figure)
        canvas.draw()
        # Agg's buffer contains straight (not premultiplied) RGBA, as PIL's RGBA mode does.
        overlay = Image.frombuffer(
            "RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1
        )
        if self.background is None:
            base = Image.new("RGBA", overlay.size, (255, 255, 255, 255))
        else:
            base = Image.fromarray(self.background).convert("RGBA")
        return np.asarray(Image.alpha_composite(base, overlay).convert("RGB"))

    def px(self, inches: float) -> int:
        """Return a length in inches as whole pixels."""
        return int(round(inches * self.dpi))

    def add_axes(self, left: float, top: float, width: float, height: float):
        """Add axes whose box starts `left` and `top` inches from the top-left corner."""
        return self.add_axes_px(self.px(left), self.px(top), self.px(width), self.px(height))

    def add_axes_px(self, left: int, top: int, width: int, height: int):
        """Add axes at a pixel box measured from the top-left corner."""
        bottom = self.height_px - top - height
        return self.figure.add_axes(
            [
                left / self.width_px,
                bottom / self.height_px,
                width / self.width_px,
                height / self.height_px,
            ]
        )

    def place_image(self, pixels: np.ndarray, left: int, top: int) -> None:
        """Paint an RGB or RGBA image [h, w, 3 or 4] unscaled onto the background.

        Its top-left corner goes to a pixel position measured from the figure's top-left
        corner; an alpha channel blends it over the background pixels there.
        """
        if self.background is None:
            self.background = np.full((self.height_px, self.width_px, 3), 255, dtype=np.uint8)
        height, width = pixels.shape[:2]
        target = self.background[top : top + height, left : left + width]
        if pixels.shape[2] == 4:
            alpha = pixels[..., 3:].astype(np.float32) / 255.0
            mixed = target * (1.0 - alpha) + pixels[..., :3] * alpha
            target[...] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
        else:
            target[...] = pixels

    def text(self, x: float, y: float, text: str, **options) -> None:
        """Write text at a pixel position measured from the top-left corner.

        Alignment defaults to horizontally centred and vertically centred.
        """
        options.setdefault("ha", "center")
        options.setdefault("va", "center")
        self.figure.text(x / self.width_px, 1 - y / self.height_px, text, **options)

    def marker(self, x: float, y: float, style: dict) -> None:
        """Draw one marker at a pixel position measured from the top-left corner."""
        self.figure.add_artist(
            Line2D(
                [x / self.width_px],
                [1 - y / self.height_px],
                linestyle="",
                transform=self.figure.transFigure,
                **style,
            )
        )


def render_matrix_labels(
    names: Sequence[str], indices: Sequence[int], side_px: int, label_px: int, dpi: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Render the tick labels of a square [n, n] matrix panel once, for reuse on every panel.

    Returns RGBA images with a transparent background: the row labels with their tick marks
    [side_px, label_px, 4], to go left of the panel, and the column labels
    [label_px, side_px, 4], to go below it. Matplotlib lays out every text separately
    (about 2.5 ms each with matplotlib 3.11 on one CPU core), so drawing 72 names once
    instead of once per panel saves most of a figure's drawing time.
    """
    count = len(names)
    layout = PixelLayout((label_px + side_px) / dpi, (side_px + label_px) / dpi, dpi)
    layout.figure.patch.set_alpha(0.0)
    axes = layout.add_axes_px(label_px, 0, side_px, side_px)
    axes.patch.set_alpha(0.0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.set_xlim(-0.5, count - 0.5)
    axes.set_ylim(count - 0.5, -0.5)
    positions = np.arange(count)
    axes.set_xticks(positions)
    axes.set_yticks(positions)
    axes.set_xticklabels(names, rotation=90, fontsize=TICK_FONT)
    axes.set_yticklabels(names, fontsize=TICK_FONT)
    axes.tick_params(length=1.5, width=0.5, pad=1.5)
    for labels in (axes.get_xticklabels(), axes.get_yticklabels()):
        for label, index in zip(labels, indices):
            label.set_color(region_color(index))

    canvas = FigureCanvasAgg(layout.figure)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())
    row_labels = pixels[:side_px, :label_px].copy()
    column_labels = pixels[side_px:, label_px:].copy()
    return row_labels, column_labels


@dataclass(frozen=True)
class MatrixScale:
    """Colour scale of a matrix figure: limits, colour map and colour-bar label.

    `separator_color` draws the region separator lines, which must stand out against the
    colour map.
    """

    vmin: float
    vmax: float
    cmap: str
    label: str
    separator_color: str = "white"


def draw_matrix_panels(
    matrices: Sequence[np.ndarray],
    panel_titles: Sequence[str],
    names: Sequence[str],
    indices: Sequence[int],
    scales: Sequence[MatrixScale],
    title: str,
    subtitle: str,
    dpi: int,
    columns: int = 3,
    separators: bool = True,
) -> PixelLayout:
    """Draw square [n, n] matrices in a grid, with landmark names on both axes of each.

    Rows of a matrix are drawn top to bottom and columns left to right in the order of
    `names`. The canonical landmark `indices` choose the label colours and the region
    separators. With one scale, all panels share it and one colour bar stands at the right;
    otherwise each panel has its own scale and colour bar.
    """
    count = len(matrices)
    shared = len(scales) == 1
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    side = max(2.4, 0.095 * len(names))
    label = text_width_inches(names, TICK_FONT) + 0.12
    panel_titles = [wrap_text(text, side + 0.3, TITLE_FONT) for text in panel_titles]
    title_lines = max(text.count("\n") + 1 for text in panel_titles)
    gap, panel_title = 0.3, 0.2 + 0.14 * title_lines
    panel_colorbar = 0.0 if shared else 0.95
    # A shared colour bar is placed 0.15 inches right of the last panel. Its ticks and label
    # need about 0.9 inches more. No gap is left after the last column or row.
    colorbar_room = 1.05 if shared else 0.1
    cell_w = label + side + panel_colorbar + gap
    cell_h = panel_title + side + label + gap
    width = 0.25 + columns * cell_w - gap + colorbar_room
    header = Header.fit(title, subtitle, width, legend=True)
    layout = PixelLayout(width, header.height + rows * cell_h - gap + 0.1, dpi)
    side_px, label_px = layout.px(side), layout.px(label)
    row_labels, column_labels = render_matrix_labels(names, indices, side_px, label_px, dpi)

    for number, matrix in enumerate(matrices):
        scale = scales[0] if shared else scales[number]
        row, column = divmod(number, columns)
        left_px = layout.px(0.25 + column * cell_w + label)
        top_px = layout.px(header.height + row * cell_h + panel_title)
        axes = layout.add_axes_px(left_px, top_px, side_px, side_px)
        image = axes.imshow(
            matrix,
            cmap=scale.cmap,
            norm=Normalize(scale.vmin, scale.vmax),
            interpolation="nearest",
        )
        axes.set_xticks([])
        axes.set_yticks([])
        if separators:
            for boundary in region_boundaries(indices):
                axes.axhline(boundary, color=scale.separator_color, linewidth=0.8)
                axes.axvline(boundary, color=scale.separator_color, linewidth=0.8)
        axes.set_title(panel_titles[number], fontsize=TITLE_FONT, pad=3)
        layout.place_image(row_labels, left_px - label_px, top_px)
        layout.place_image(column_labels, left_px, top_px + side_px)
        if not shared:
            left = (left_px + side_px) / dpi + 0.12
            add_colorbar(layout, image, scale.label, left, top_px / dpi, side)

    if shared:
        top = header.height + panel_title
        bottom = header.height + (rows - 1) * cell_h + panel_title + side
        left = 0.25 + columns * cell_w - gap + 0.15
        add_colorbar(layout, image, scales[0].label, left, top, bottom - top)
    header.draw(layout.figure, region_legend_handles(indices))
    return layout


def add_colorbar(layout: PixelLayout, mappable, label: str, left: float, top: float, height: float):
    """Add a labelled vertical colour bar 0.14 inches wide; positions in inches from top-left."""
    axes = layout.add_axes(left, top, 0.14, height)
    colorbar = layout.figure.colorbar(mappable, cax=axes)
    colorbar.set_label(label, fontsize=TITLE_FONT - 0.5)
    colorbar.ax.tick_params(labelsize=TICK_FONT + 0.5)
    return colorbar


def wrap_text(text: str, width: float, size: float) -> str:
    """Wrap each line of `text` to fit `width` inches at `size` points (estimated widths)."""
    characters = max(20, int(width * 72 / (0.55 * size)))
    return "\n".join(textwrap.fill(line, characters) if line else line for line in text.split("\n"))


TITLE_LINE = 0.21
SUBTITLE_LINE = 0.165
LEGEND_ROOM = 0.3


@dataclass(frozen=True)
class Header:
    """The title, explanatory subtitle and optional legend row at the top of a figure.

    Both texts are wrapped to the figure width; `height` is the room they need in inches.
    """

    title: str
    subtitle: str
    legend: bool

    @classmethod
    def fit(cls, title: str, subtitle: str, width: float, legend: bool) -> Header:
        """Wrap the texts for a figure `width` inches wide."""
        return cls(
            wrap_text(title, width - 0.3, 11 * 1.15), wrap_text(subtitle, width - 0.3, 8), legend
        )

    def lines(self, text: str) -> int:
        return text.count("\n") + 1

    @property
    def subtitle_top(self) -> float:
        return 0.12 + TITLE_LINE * self.lines(self.title) + 0.06

    @property
    def height(self) -> float:
        legend = LEGEND_ROOM if self.legend else 0.0
        return self.subtitle_top + SUBTITLE_LINE * self.lines(self.subtitle) + legend + 0.15

    def draw(self, figure: Figure, legend_handles: Sequence = ()) -> None:
        """Write the texts, and the legend when handles are given, at the top of `figure`."""
        height = figure.get_size_inches()[1]
        figure.text(
            0.5, 1 - 0.12 / height, self.title, ha="center", va="top", fontsize=11, weight="bold"
        )
        figure.text(
            0.5,
            1 - self.subtitle_top / height,
            self.subtitle,
            ha="center",
            va="top",
            fontsize=8,
            linespacing=1.3,
        )
        if legend_handles:
            legend_top = self.subtitle_top + SUBTITLE_LINE * self.lines(self.subtitle) + 0.05
            figure.legend(
                handles=list(legend_handles),
                loc="upper center",
                bbox_to_anchor=(0.5, 1 - legend_top / height),
                ncol=len(legend_handles),
                fontsize=7,
                frameon=False,
                handletextpad=0.2,
                columnspacing=1.2,
            )


def save_figure(layout: PixelLayout, path: Path) -> None:
    """Write a figure atomically as PNG, or as JPEG (quality 92) for .jpg and .jpeg names."""
    from PIL import Image

    image = Image.fromarray(layout.render())
    jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
    with atomic_path(path) as temporary:
        if jpeg:
            image.save(temporary, format="JPEG", quality=JPEG_QUALITY, dpi=(layout.dpi,) * 2)
        else:
            image.save(temporary, format="PNG", dpi=(layout.dpi,) * 2)
