"""Signing avatars as stick-figure videos: upper body and both hands, with an Arabic caption.

Joints are drawn in SMPL-X coordinates (y up, the figure faces +z, x to the figure's left). The
front view looks at the signer from +z, so the signer's left hand appears on the viewer's right,
as when facing a person; the side view looks from the signer's right side (they face right).

At the size of a whole upper body a hand is some 20 pixels, too small to read a handshape, so
under each figure a strip shows both hands magnified: each inset follows its wrist, at one scale
for the whole clip and every panel, so hands can be compared and never zoom in and out. The
right hand's inset is on the left, under where that hand appears in the front view.

Speed comes from blitting: the figure, caption and titles are drawn once, then every frame
restores that background and redraws only the skeleton lines.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import imageio.v2 as imageio
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from tqdm import tqdm

from mGPT.errors import DataError
from mGPT.layout import FRAME_DIMS
from mGPT.render.frame_layout import (
    INSET_FACE,  # noqa: F401  (part of this module's interface)
    LEFT_ARM_COLOUR,
    RIGHT_ARM_COLOUR,
    SIDE_COLOURS,
    clip_limits,
    frame_layout,
    hand_limits,
)

# SMPL-X joint order, shared by every kinematics backend for the first 22 joints.
SMPLX_BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
LOWER_BODY_JOINTS = (1, 2, 4, 5, 7, 8, 10, 11)  # hips, knees, ankles, feet: signing happens above them
LEFT_COLLAR, RIGHT_COLLAR = 13, 14
LEFT_WRIST, RIGHT_WRIST = 20, 21

VIEW_AXES = {"front": (0, 1), "side": (2, 1)}  # which joint coordinates become (horizontal, vertical)
VIDEO_EXTENSIONS = (".mp4", ".gif")
# x264's preset for every .mp4: the encoder shares the CPU with the renderer, and x264's default, "medium",
# takes twice as long for a file of the same size (bench/bench_render.py prints both)
ENCODER_PRESET = "veryfast"

TORSO_COLOUR = "#4a4a4a"
FINGER_COLOURS = ("#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")  # one per finger, both hands
INSET_LINE_SCALE = 1.6  # hand lines are drawn thicker in the insets than on the body


class PosesJoints(Protocol):
    """What `render_params` needs of a kinematics backend (mGPT.kinematics.Kinematics fits)."""

    parents: Sequence[int]

    def forward(self, params179: torch.Tensor) -> torch.Tensor:  # (T, 179) -> (T, J, 3) metres
        ...


@dataclass(frozen=True)
class BoneGroup:
    """Bones drawn with one line style: bone i runs from joint `starts[i]` to joint `ends[i]`."""

    starts: np.ndarray  # (N,) int
    ends: np.ndarray  # (N,) int
    colour: str
    width: float  # line width in points on a 480-pixel-high panel
    dot: float  # size of the joint dots in points on a 480-pixel-high panel
    zorder: float


@dataclass(frozen=True)
class SkeletonLayout:
    """What to draw of a skeleton: bone groups, and the joints they touch (legs are left out).

    `hands` maps "left" / "right" to that hand's joints, wrist first (the joints of
    `Kinematics.parts["lhand"]` / `["rhand"]`, found from the tree).
    """

    groups: tuple[BoneGroup, ...]
    drawn_joints: np.ndarray  # (N,) int
    hands: dict[str, np.ndarray]  # side -> (1 + fingers,) int


def _descendants(parents: Sequence[int], root: int) -> set[int]:
    below = {root}
    for joint, parent in enumerate(parents):  # parents come before children in SMPL-X style trees
        if parent in below:
            below.add(joint)
    return below


def skeleton_layout(parents: Sequence[int]) -> SkeletonLayout:
    """Split an SMPL-X-ordered kinematic tree into torso, arms, palms and fingers; drop the legs.

    Fingers are found from the tree, not from names: below a wrist, a joint whose parent branches
    starts a finger, and everything hanging from it belongs to that finger. This works whether the
    fingers hang off the wrist directly (SMPL-X) or off an extra palm joint (mannequin-x).
    """
    parents = [int(parent) for parent in parents]
    if tuple(parents[: len(SMPLX_BODY_PARENTS)]) != SMPLX_BODY_PARENTS:
        raise ValueError(
            "the skeleton is not in SMPL-X joint order: its first 22 parents are "
            f"{parents[: len(SMPLX_BODY_PARENTS)]}, expected {list(SMPLX_BODY_PARENTS)}"
        )
    if any(parent >= joint for joint, parent in enumerate(parents)):
        raise ValueError("every joint's parent must come before it in the joint list")

    legs = set().union(*(_descendants(parents, joint) for joint in LOWER_BODY_JOINTS))
    hands = {side: _descendants(parents, wrist) - {wrist} for side, wrist in (("left", LEFT_WRIST),
                                                                             ("right", RIGHT_WRIST))}
    left_arm = _descendants(parents, LEFT_COLLAR) - hands["left"]
    right_arm = _descendants(parents, RIGHT_COLLAR) - hands["right"]
    children_count = np.bincount([parent for parent in parents if parent >= 0], minlength=len(parents))

    def finger_base(joint: int, wrist: int) -> int | None:
        while joint != wrist:
            if children_count[parents[joint]] > 1:
                return joint
            joint = parents[joint]
        return None  # a palm joint between the wrist and the fingers

    # Group name -> (colour, line width, dot size, zorder): thin hand lines over thick body lines.
    styles = {"torso": (TORSO_COLOUR, 4.0, 5.0, 1.0), "left arm": (LEFT_ARM_COLOUR, 3.0, 4.5, 2.0),
              "right arm": (RIGHT_ARM_COLOUR, 3.0, 4.5, 2.0), "left palm": (LEFT_ARM_COLOUR, 1.4, 2.6, 3.0),
              "right palm": (RIGHT_ARM_COLOUR, 1.4, 2.6, 3.0)}
    styles.update({f"finger {k}": (colour, 1.8, 2.6, 3.5) for k, colour in enumerate(FINGER_COLOURS)})
    bones: dict[str, list[tuple[int, int]]] = {name: [] for name in styles}
    for side, wrist in (("left", LEFT_WRIST), ("right", RIGHT_WRIST)):
        bases = sorted({finger_base(joint, wrist) for joint in hands[side]} - {None})
        for joint in sorted(hands[side]):
            base = finger_base(joint, wrist)
            if base is None or base == joint:  # wrist to palm, palm to finger base
                bones[f"{side} palm"].append((parents[joint], joint))
            else:
                bones[f"finger {bases.index(base) % len(FINGER_COLOURS)}"].append((parents[joint], joint))
    hand_joints = hands["left"] | hands["right"]
    for joint, parent in enumerate(parents):
        if parent < 0 or joint in legs or joint in hand_joints:
            continue
        group = "left arm" if joint in left_arm else "right arm" if joint in right_arm else "torso"
        bones[group].append((parent, joint))

    groups = tuple(
        BoneGroup(np.array([a for a, _ in pairs], dtype=int), np.array([b for _, b in pairs], dtype=int),
                  *styles[name])
        for name, pairs in bones.items()
        if pairs
    )
    drawn = sorted({joint for group in groups for joint in (*group.starts, *group.ends)})
    hand_joints = {side: np.array([wrist, *sorted(hands[side])], dtype=int)
                   for side, wrist in (("left", LEFT_WRIST), ("right", RIGHT_WRIST))}
    return SkeletonLayout(groups, np.array(drawn, dtype=int), hand_joints)


def hand_groups(layout: SkeletonLayout, parents: Sequence[int], side: str) -> tuple[BoneGroup, ...]:
    """The bones of one hand for its inset, drawn thicker, with the forearm leading into the wrist.

    The forearm mostly runs out of the inset; the stub that is left shows where the arm comes from.
    """
    wrist, *fingers = layout.hands[side].tolist()
    forearm = BoneGroup(np.array([parents[wrist]]), np.array([wrist]), SIDE_COLOURS[side], 3.0, 5.0, 1.0)
    groups = [forearm]
    for group in layout.groups:
        keep = np.isin(group.ends, fingers)
        if keep.any():
            groups.append(replace(group, starts=group.starts[keep], ends=group.ends[keep],
                                  width=group.width * INSET_LINE_SCALE, dot=group.dot * INSET_LINE_SCALE))
    return tuple(groups)


def _segments(points: np.ndarray, group: BoneGroup) -> np.ndarray:
    """Bones as one polyline broken by NaN rows, so a whole group is a single Line2D: (3N, 2)."""
    segments = np.full((len(group.starts), 3, 2), np.nan)
    segments[:, 0] = points[group.starts]
    segments[:, 1] = points[group.ends]
    return segments.reshape(-1, 2)


class _SkeletonPanel:
    """The line artists of some bone groups in one axes, updated in place frame after frame.

    With an `anchor` joint the points are drawn relative to it (a hand inset follows its wrist).
    """

    def __init__(self, ax: Axes, groups: tuple[BoneGroup, ...], scale: float, anchor: int | None = None) -> None:
        self.ax = ax
        self.groups = groups
        self.anchor = anchor
        # One Line2D per group; markers sit on every bone end, so each joint gets a dot in its colour.
        self.lines = [
            ax.add_line(Line2D([], [], color=group.colour, linewidth=group.width * scale, marker="o",
                               markersize=group.dot * scale, markeredgewidth=0, zorder=group.zorder,
                               solid_capstyle="round", solid_joinstyle="round", animated=True))
            for group in groups
        ]

    def draw(self, points: np.ndarray) -> None:
        """Draw one frame's projected joints (J, 2) over the restored background."""
        if self.anchor is not None:
            points = points - points[self.anchor]
        for line, group in zip(self.lines, self.groups, strict=True):
            segments = _segments(points, group)  # (3N, 2)
            line.set_data(segments[:, 0], segments[:, 1])
            self.ax.draw_artist(line)


def _check_joints(joints: np.ndarray, num_joints: int, name: str) -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (num_joints, 3) or len(joints) == 0:
        raise ValueError(f"{name} must have shape (T>0, {num_joints}, 3) to match parents, got {joints.shape}")
    return joints


def render_frames(
    joints: np.ndarray,
    parents: Sequence[int],
    caption: str | None = None,
    reference: np.ndarray | None = None,
    labels: tuple[str, str] = ("generated", "reference"),
    size: tuple[int, int] = (480, 480),
    view: str = "front",
    hand_insets: bool = True,
) -> np.ndarray:
    """Draw a joint sequence (T, J, 3) as stick-figure frames (T, H', W', 3) uint8.

    `size` is (W, H) of one panel. With `reference` (T', J, 3) the reference is drawn in a second
    panel to the right (frames are 2W wide), both panels share limits, and the shorter clip holds
    its last frame. With `hand_insets` a strip of two magnified hands, right then left, is added
    under each panel, `inset_height(W, H)` pixels high (H / 2 for square panels; H' = H without
    insets). `caption` (Arabic, logical order as typed) goes in a strip at the bottom.
    """
    if view not in VIEW_AXES:
        raise ValueError(f"view must be one of {sorted(VIEW_AXES)}, got {view!r}")
    layout = skeleton_layout(parents)
    clips = [_check_joints(joints, len(parents), "joints")]
    if reference is not None:
        clips.append(_check_joints(reference, len(parents), "reference"))
    projected = [clip[..., VIEW_AXES[view]] for clip in clips]  # each (T, J, 2)
    page = frame_layout(len(clips), size, caption, labels if reference is not None else None, hand_insets)
    limits = clip_limits([points[:, layout.drawn_joints] for points in projected], aspect=page.panel_aspect)
    panels = []
    for panel, ax in enumerate(page.panels):
        ax.set_xlim(limits[0])
        ax.set_ylim(limits[1])
        panels.append((_SkeletonPanel(ax, layout.groups, page.scale), panel))
    if page.insets:
        limits_per_side = hand_limits(projected, layout.hands, aspect=page.inset_aspect)
        for panel, side, ax in page.insets:
            ax.set_xlim(limits_per_side[side][0])
            ax.set_ylim(limits_per_side[side][1])
            wrist = int(layout.hands[side][0])
            panels.append((_SkeletonPanel(ax, hand_groups(layout, parents, side), page.scale, anchor=wrist),
                           panel))

    still = page.still()  # (H', W', 3)
    background = page.canvas.copy_from_bbox(page.figure.bbox)
    tag_boxes = page.tag_boxes()
    num_frames = max(len(points) for points in projected)
    frames = np.empty((num_frames, page.height, page.width, 3), dtype=np.uint8)
    for t in tqdm(range(num_frames), desc="rendering", unit="frame", leave=False, disable=None):
        page.canvas.restore_region(background)
        for skeleton, panel in panels:
            points = projected[panel]
            skeleton.draw(points[min(t, len(points) - 1)])
        frames[t] = np.asarray(page.canvas.buffer_rgba())[..., :3]
        for box in tag_boxes:
            frames[t][box] = still[box]
    return frames


def _video_extension(path: Path) -> str:
    extension = path.suffix.lower()
    if extension not in VIDEO_EXTENSIONS:
        raise ValueError(
            f"cannot write video {path}: unknown extension {path.suffix!r}; use one of {', '.join(VIDEO_EXTENSIONS)}"
        )
    return extension


def save_video(frames: np.ndarray | Iterable[np.ndarray], path: str | Path, fps: float = 24,
               preset: str = ENCODER_PRESET) -> Path:
    """Write frames (T, H, W, 3) uint8 to .mp4 (H.264, yuv420p) or .gif, chosen by the extension.

    `frames` may be an array or any iterable of (H, W, 3) frames, written to .mp4 as they come; `preset`
    is x264's speed/size trade-off.
    """
    path = Path(path)
    extension = _video_extension(path)
    frames = iter(frames)
    first = next(frames, None)

    def checked(frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8 or frame.shape != first.shape:
            raise ValueError(f"frames must be (H, W, 3) uint8 frames of one size, got {frame.shape} {frame.dtype}"
                             + ("" if frame is first else f" after {first.shape}"))
        return frame

    if first is None:
        raise ValueError("frames must hold at least one frame, got none")
    first = np.asarray(first)
    first = checked(first)
    path.parent.mkdir(parents=True, exist_ok=True)
    if extension == ".gif":
        imageio.mimsave(path, [first, *(checked(frame) for frame in frames)], duration=1000 / fps, loop=0)
        return path
    # yuv420p stores colour at half resolution, so H.264 needs even sizes: pad by repeating the edge.
    height, width = first.shape[:2]
    padding = ((0, height % 2), (0, width % 2), (0, 0))
    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=1, ffmpeg_log_level="error", output_params=["-preset", preset]) as writer:
        writer.append_data(np.pad(first, padding, mode="edge"))
        for frame in frames:
            writer.append_data(np.pad(checked(frame), padding, mode="edge"))
    return path


def _joints_from_params(params: np.ndarray, kinematics: PosesJoints, name: str) -> np.ndarray:
    params = np.asarray(params, dtype=np.float32)
    if params.ndim != 2 or params.shape[1] != FRAME_DIMS or len(params) == 0:
        raise DataError(
            f"{name} must hold SMPL-X parameters of shape (T, 179) (root, body, hands, jaw, shape, "
            f"expression per frame), got {params.shape}; convert 133-dim features back to SMPL-X first"
        )
    buffer = next(kinematics.buffers(), None) if isinstance(kinematics, torch.nn.Module) else None
    device = torch.device("cpu") if buffer is None else buffer.device
    with torch.no_grad():
        joints = kinematics.forward(torch.from_numpy(params).to(device))  # (T, J, 3)
    return joints.detach().cpu().numpy()


def render_params(
    params179: np.ndarray,
    kinematics: PosesJoints,
    path: str | Path,
    caption: str | None = None,
    reference_params: np.ndarray | None = None,
    fps: float = 24,
    view: str = "front",
    size: tuple[int, int] = (480, 480),
    hand_insets: bool = True,
) -> Path:
    """Pose SMPL-X parameters (T, 179) with `kinematics`, draw them and write the video to `path`.

    The frames are as `render_frames` draws them: `size` is one panel without the hand insets.
    """
    path = Path(path)
    _video_extension(path)  # fail before the work, not after it
    joints = _joints_from_params(params179, kinematics, "params179")
    reference = None if reference_params is None else _joints_from_params(reference_params, kinematics,
                                                                          "reference_params")
    frames = render_frames(joints, kinematics.parents, caption=caption, reference=reference, size=size, view=view,
                           hand_insets=hand_insets)
    return save_video(frames, path, fps=fps)
