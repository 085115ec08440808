"""The layout of a video frame, shared by both avatars: one panel per clip (generated, then reference),
a strip of magnified hands under each panel, panel titles above, and the Arabic caption at the bottom.

`frame_layout` draws the still parts (caption, titles, inset frames and their R / L labels) into a
matplotlib figure and hands back the axes where each avatar draws: the skeleton draws lines in them,
the mesh pastes rendered images into their pixel boxes. The framing helpers (`fit_limits`,
`clip_limits`, `hand_limits`) turn screen-space points into axis limits that stay fixed over a clip.
"""

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from mGPT.render.caption import caption_font, displayable_caption

DPI = 100
LEFT_ARM_COLOUR, RIGHT_ARM_COLOUR = "#1f77b4", "#d62728"
SIDE_COLOURS = {"left": LEFT_ARM_COLOUR, "right": RIGHT_ARM_COLOUR}
HAND_INSETS = (("right", "R"), ("left", "L"))  # inset order from the viewer's left, and their labels
INSET_FACE, INSET_EDGE = "#f4f4f4", "#c8c8c8"

PixelBox = tuple[slice, slice]  # (rows, columns) of a frame


@dataclass
class FrameLayout:
    """A figure with its still parts drawn; `panels[k]` is clip k's axes, `insets` its hands' axes."""

    figure: Figure
    canvas: FigureCanvasAgg
    width: int
    height: int
    scale: float  # panel height / 480: line widths and fonts are tuned for a 480-pixel panel
    panels: list[Axes]
    insets: list[tuple[int, str, Axes]]  # (panel, side, axes), right hand first in each panel
    tags: list[Text]  # the insets' R / L labels

    @property
    def panel_aspect(self) -> float:
        """Width / height in pixels of a body panel's axes."""
        box = self.panels[0].bbox
        return box.width / box.height

    @property
    def inset_aspect(self) -> float:
        box = self.insets[0][2].bbox
        return box.width / box.height

    def pixel_box(self, ax: Axes) -> PixelBox:
        return pixel_box(ax.bbox, self.height)

    def tag_boxes(self) -> list[PixelBox]:
        """The inset corners up to each label's patch: copied back over anything drawn there, so a
        forearm running through a corner does not hide the label, for far less than drawing text."""
        boxes = []
        for tag in self.tags:
            patch, inset = tag.get_bbox_patch().get_window_extent(), tag.axes.bbox
            boxes.append(pixel_box(Bbox.from_extents(inset.x0, patch.y0, patch.x1, inset.y1), self.height))
        return boxes

    def still(self) -> np.ndarray:
        """The figure drawn as it is: (H, W, 3) uint8."""
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def pixel_box(extent: Bbox, frame_height: int) -> PixelBox:
    """(rows, columns) of the image that cover a display-space box (y up, from the bottom)."""
    x0, y0, x1, y1 = extent.extents
    rows = slice(max(frame_height - math.ceil(y1), 0), frame_height - math.floor(y0))
    return rows, slice(max(math.floor(x0), 0), math.ceil(x1))


def inset_height(panel_width: int, panel_height: int) -> int:
    """Pixel height of the strip of hand insets under a panel: half the panel, rounded to even."""
    return 2 * round(min(panel_width, panel_height) / 4)


def frame_layout(num_panels: int, size: tuple[int, int], caption: str | None, labels: tuple[str, ...] | None,
                 hand_insets: bool) -> FrameLayout:
    """Lay out `num_panels` panels of `size` (W, H) side by side; titles only with `labels`."""
    panel_width, panel_height = (int(n) for n in size)
    strip = inset_height(panel_width, panel_height) if hand_insets else 0
    frame_width, frame_height = panel_width * num_panels, panel_height + strip
    scale = panel_height / 480
    fig = Figure(figsize=(frame_width / DPI, frame_height / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)

    # Rows from the bottom, in pixels: caption, hand insets, body, panel titles.
    caption_height = 0.0
    if caption and caption.strip():
        font_points = max(15 * scale, 8.0)  # below 8 points Arabic letters blur together
        char_pixels = 0.55 * font_points * DPI / 72  # average Arabic glyph advance
        text = displayable_caption(caption, int(0.92 * frame_width / char_pixels))
        line_pixels = 1.45 * font_points * DPI / 72
        caption_height = min((text.count("\n") + 1) * line_pixels + 8 * scale, 0.4 * panel_height)
        font = caption_font(text).copy()
        font.set_size(font_points)
        fig.text(0.5, caption_height / 2 / frame_height, text, ha="center", va="center", fontproperties=font,
                 multialignment="center")
    title_height = 0.0
    if labels is not None:
        title_height = 26 * scale
        for panel, label in zip(range(num_panels), labels, strict=True):
            fig.text((panel + 0.5) / num_panels, 1 - title_height / 2 / frame_height, label, ha="center",
                     va="center", fontsize=12 * scale, color="#333333")

    body_bottom = caption_height + strip
    body_height = frame_height - title_height - body_bottom
    panels = []
    for panel in range(num_panels):
        ax = fig.add_axes((panel / num_panels, body_bottom / frame_height, 1 / num_panels,
                           body_height / frame_height))
        ax.set_axis_off()
        panels.append(ax)

    insets, tags = [], []
    if hand_insets:
        gap = max(round(4 * scale), 2)  # whole pixels around each inset, so every panel's insets look alike
        inset_box = (panel_width // 2 - 2 * gap, strip - 2 * gap)  # (width, height) in pixels
        for panel in range(num_panels):
            for slot, (side, label) in enumerate(HAND_INSETS):
                left = panel * panel_width + slot * (panel_width // 2) + gap
                ax = fig.add_axes((left / frame_width, (caption_height + gap) / frame_height,
                                   inset_box[0] / frame_width, inset_box[1] / frame_height))
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_facecolor(INSET_FACE)
                for spine in ax.spines.values():
                    spine.set_edgecolor(INSET_EDGE)
                tags.append(ax.text(0.04, 0.96, label, transform=ax.transAxes, ha="left", va="top",
                                    fontweight="bold", fontsize=max(12 * scale, 7.0), color=SIDE_COLOURS[side],
                                    bbox={"boxstyle": "square,pad=0.25", "facecolor": INSET_FACE,
                                          "edgecolor": "none"}))
                insets.append((panel, side, ax))
    return FrameLayout(fig, canvas, frame_width, frame_height, scale, panels, insets, tags)


def bounds(clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """Lowest and highest finite screen coordinates, each (2,), over all points of all clips."""
    stacked = np.concatenate([clip.reshape(-1, 2) for clip in clips])  # (N, 2)
    finite = stacked[np.isfinite(stacked).all(axis=1)]
    return (finite.min(axis=0), finite.max(axis=0)) if len(finite) else None


def fit_limits(low: np.ndarray, high: np.ndarray, aspect: float, span: np.ndarray | None = None,
               margin: float = 0.08) -> np.ndarray:
    """Limits (low, high) per screen axis, (2, 2), around the box `low`..`high` with a margin.

    The box is widened about its centre (to `span`, when given, which must hold the box) and then to
    the axes' `aspect` (width / height in pixels), so one metre is as long across as it is up and the
    axes need no adjusting of their own.
    """
    span = np.maximum(high - low if span is None else span, 1e-3) * (1 + 2 * margin)
    span = np.maximum(span, [span[1] * aspect, span[0] / aspect])
    centre = (low + high) / 2
    return np.stack([centre - span / 2, centre + span / 2], axis=1)


def clip_limits(clips: list[np.ndarray], aspect: float) -> np.ndarray:
    """Limits (2, 2) over all frames of all clips (T, N, 2), so the figure never jumps."""
    found = bounds(clips)
    if found is None:
        raise ValueError("the points to render contain no finite coordinates")
    return fit_limits(*found, aspect)


def hand_limits(clips: list[np.ndarray], hands: dict[str, np.ndarray], aspect: float) -> dict[str, np.ndarray]:
    """Inset limits (2, 2) per side, relative to each hand's anchor, over all frames of all clips (T, N, 2).

    `hands[side]` indexes the points of that hand, its anchor (the wrist) first. Every inset gets the
    same span, the largest a hand needs, so all hands are drawn at one scale; each is centred on where
    its own hand lies around the anchor, which is not the same for both.
    """
    boxes = {}
    for side, points in hands.items():
        relative = [clip[:, points] - clip[:, points[:1]] for clip in clips]  # each (T, N, 2)
        boxes[side] = bounds(relative) or (np.zeros(2), np.zeros(2))  # a hand never seen is drawn nowhere
    span = np.max([high - low for low, high in boxes.values()], axis=0)  # (2,)
    return {side: fit_limits(low, high, aspect, span=span, margin=0.06) for side, (low, high) in boxes.items()}
