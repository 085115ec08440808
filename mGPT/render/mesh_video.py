"""Signing avatars as shaded 3D meshes: generated and reference side by side, magnified hands, caption.

The frame's layout is the stick figure's (frame_layout.py): each clip gets a panel framing its upper
body over the whole clip (head to waist, both hands, fixed so the figure never jumps), and under it
two insets of the right and left hand, each following its palm, at one scale for the clip and every
panel. An inset draws that hand's faces alone, so the other hand or the body never hides it.

Frames come one at a time (`iter_mesh_frames`), so a long clip is written to video without holding
all of its frames in memory.
"""

from collections.abc import Iterator

import numpy as np
from matplotlib.colors import to_rgb
from tqdm import tqdm

from mGPT.render.avatar import MeshAvatar, PosedClip
from mGPT.render.frame_layout import INSET_FACE, clip_limits, frame_layout, hand_limits
from mGPT.render.mesh_renderer import VIEWS, MeshRenderer

FRAMING_STRIDE = 4  # every 4th upper-body vertex finds the clip's extent to a few millimetres
HAND_STRIDE = 4


def _project(points: np.ndarray, view: str) -> np.ndarray:
    """(T, N, 3) SMPL-X coordinates -> (T, N, 2) screen coordinates of `view`."""
    right, up = (np.array(axis, dtype=np.float32) for axis in VIEWS[view])
    return np.stack([points @ right, points @ up], axis=-1)


def _shrink(box: tuple[slice, slice], pixels: int) -> tuple[slice, slice]:
    rows, columns = box
    return slice(rows.start + pixels, rows.stop - pixels), slice(columns.start + pixels, columns.stop - pixels)


def _size(box: tuple[slice, slice]) -> tuple[int, int]:
    rows, columns = box
    return columns.stop - columns.start, rows.stop - rows.start  # (W, H)


def iter_mesh_frames(
    avatar: MeshAvatar,
    clips: list[PosedClip],
    caption: str | None = None,
    labels: tuple[str, ...] = ("generated", "reference"),
    size: tuple[int, int] = (480, 480),
    view: str = "front",
    hand_insets: bool = True,
    renderer: MeshRenderer | None = None,
) -> Iterator[np.ndarray]:
    """Frames (H', W', 3) uint8 of posed clips side by side, as many as the longest clip has.

    `size` is (W, H) of one panel; the layout is `skeleton_video.render_frames`'s: with more than one
    clip each panel is titled from `labels`, and a shorter clip holds its last frame. Raises
    mesh_renderer.GLUnavailable when no offscreen GL context can be made (before any frame).
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {sorted(VIEWS)}, got {view!r}")
    renderer = renderer or MeshRenderer(avatar)
    page = frame_layout(len(clips), size, caption, labels[: len(clips)] if len(clips) > 1 else None, hand_insets)

    framing = avatar.upper_body_vertices[::FRAMING_STRIDE]
    body_points = [_project(avatar.points(clip, framing), view) for clip in clips]  # each (T, N, 2)
    limits = clip_limits(body_points, aspect=page.panel_aspect)
    panel_boxes = [page.pixel_box(ax) for ax in page.panels]

    inset_boxes, anchors, side_limits = [], [], {}
    if page.insets:
        sides = {side for _, side, _ in page.insets}
        hand_points, hands, start = [[] for _ in clips], {}, 0
        for side in sorted(sides):
            palm, hand = avatar.palm_vertices[side], avatar.hand_vertices[side][::HAND_STRIDE]
            for k, clip in enumerate(clips):
                points = _project(avatar.points(clip, np.concatenate([palm, hand])), view)  # (T, P + H, 2)
                hand_points[k].append(np.concatenate([points[:, : len(palm)].mean(axis=1, keepdims=True),
                                                      points[:, len(palm):]], axis=1))  # palm centre first
            hands[side] = np.arange(start, start + 1 + len(hand))
            start += 1 + len(hand)
        hand_points = [np.concatenate(points, axis=1) for points in hand_points]  # each (T, N, 2)
        side_limits = hand_limits(hand_points, hands, aspect=page.inset_aspect)
        for panel, side, ax in page.insets:
            inset_boxes.append((panel, side, _shrink(page.pixel_box(ax), 1)))  # keep the inset's frame line
            anchors.append(hand_points[panel][:, hands[side][0]])  # (T, 2) palm centre

    still = page.still()  # (H', W', 3)
    tag_boxes = page.tag_boxes()
    meshes = [renderer.load(clip.skin) for clip in clips]
    white, inset_face = (1.0, 1.0, 1.0), to_rgb(INSET_FACE)
    num_frames = max(len(clip) for clip in clips)
    for t in tqdm(range(num_frames), desc="rendering", unit="frame", leave=False, disable=None):
        frame = still.copy()
        for k, (clip, mesh) in enumerate(zip(clips, meshes, strict=True)):
            at = min(t, len(clip) - 1)
            renderer.pose(mesh, clip, at)
            frame[panel_boxes[k]] = renderer.draw(mesh, "body", view, limits, _size(panel_boxes[k]), white)
            for (panel, side, box), anchor in zip(inset_boxes, anchors, strict=True):
                if panel == k:
                    inset_limits = side_limits[side] + anchor[at][:, None]
                    frame[box] = renderer.draw(mesh, side, view, inset_limits, _size(box), inset_face)
        for box in tag_boxes:
            frame[box] = still[box]
        yield frame
