"""The one way the project turns SMPL-X parameters into a video: every caller goes through here.

`render_video` writes a clip (and its reference, side by side) to .mp4 / .gif; `render_video_frames`
returns the frames instead (TensorBoard). `avatar` picks the look (RENDER.AVATAR):
- "mesh" (default): the shaded 3D avatar, the mannequin or, with the smplx kinematics, SMPL-X's mesh;
- "skeleton": the stick figure of the kinematics' joints.
When no offscreen OpenGL context can be created, "mesh" falls back to "skeleton" and says so once.
"""

from __future__ import annotations

import sys
import weakref
from pathlib import Path

import numpy as np
import torch

from mGPT.errors import DataError
from mGPT.kinematics import Kinematics, SmplxKinematics
from mGPT.layout import FRAME_DIMS
from mGPT.render.avatar import MeshAvatar, build_avatar
from mGPT.render.mesh_renderer import GLUnavailable, MeshRenderer
from mGPT.render.mesh_video import iter_mesh_frames
from mGPT.render.skeleton_video import _joints_from_params, _video_extension, render_frames, save_video

AVATARS = ("mesh", "skeleton")
LABELS = ("generated", "reference")

_SMPLX_MESHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # kinematics -> (avatar, renderer)
_MANNEQUIN_MESH: list[tuple[MeshAvatar, MeshRenderer]] = []
_GL_FAILURE: list[str] = []  # why GL failed in this process, once known: it is tried and reported only once


def _mesh(kinematics: Kinematics) -> tuple[MeshAvatar, MeshRenderer] | None:
    """The avatar and its renderer for this kinematics, made once; None (reported once) without GL."""
    if _GL_FAILURE:
        return None
    cache_hit = _SMPLX_MESHES.get(kinematics) if isinstance(kinematics, SmplxKinematics) else \
        (_MANNEQUIN_MESH[0] if _MANNEQUIN_MESH else None)
    if cache_hit is not None:
        return cache_hit
    avatar = build_avatar(kinematics)
    try:
        mesh = (avatar, MeshRenderer(avatar))
    except GLUnavailable as error:
        _GL_FAILURE.append(str(error))
        print(f"RENDER.AVATAR mesh: no offscreen OpenGL context ({error}); drawing the skeleton instead "
              "(install EGL and Mesa, e.g. apt-get install libegl1 libgl1-mesa-dri, or set RENDER.AVATAR: "
              "skeleton to silence this)", file=sys.stderr)
        return None
    if isinstance(kinematics, SmplxKinematics):
        _SMPLX_MESHES[kinematics] = mesh
    else:
        _MANNEQUIN_MESH.append(mesh)
    return mesh


def _params(params: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(params, torch.Tensor):
        params = params.detach().cpu().numpy()
    params = np.asarray(params, dtype=np.float32)
    if params.ndim != 2 or params.shape[1] != FRAME_DIMS or len(params) == 0:
        raise DataError(
            f"{name} must hold SMPL-X parameters of shape (T, {FRAME_DIMS}) (root, body, hands, jaw, shape, "
            f"expression per frame), got {params.shape}; convert 133-dim features back to SMPL-X first"
        )
    return params


def _frames(params179, kinematics: Kinematics, caption: str | None, reference_params, avatar: str,
            size: tuple[int, int], view: str):
    """Frames of the clip and its reference: an iterator (mesh) or a (T, H, W, 3) array (skeleton)."""
    if avatar not in AVATARS:
        raise ValueError(f"RENDER.AVATAR must be one of {list(AVATARS)}, got {avatar!r}")
    clips = [_params(params179, "params179")]
    if reference_params is not None:
        clips.append(_params(reference_params, "reference_params"))
    mesh = _mesh(kinematics) if avatar == "mesh" else None
    if mesh is not None:
        mesh_avatar, renderer = mesh
        return iter_mesh_frames(mesh_avatar, [mesh_avatar.pose(clip) for clip in clips], caption=caption,
                                labels=LABELS, size=size, view=view, renderer=renderer)
    names = ("params179", "reference_params")[: len(clips)]
    joints = [_joints_from_params(clip, kinematics, name) for clip, name in zip(clips, names, strict=True)]
    return render_frames(joints[0], kinematics.parents, caption=caption,
                         reference=joints[1] if len(joints) > 1 else None, labels=LABELS, size=size, view=view)


def render_video(
    params179: np.ndarray | torch.Tensor,
    path: str | Path,
    *,
    kinematics: Kinematics,
    caption: str | None = None,
    reference_params: np.ndarray | torch.Tensor | None = None,
    fps: float = 24,
    avatar: str = "mesh",
    size: tuple[int, int] = (512, 512),
    view: str = "front",
) -> Path:
    """Render SMPL-X parameters (T, 179), and the reference (T', 179) beside them, to .mp4 or .gif.

    `size` (W, H) is one panel; the magnified hands and the caption go under it. `kinematics` is the
    run's (build_kinematics): it picks the mesh (smplx: SMPL-X's, else the mannequin) and poses the
    skeleton. Frames are written as they are drawn.
    """
    path = Path(path)
    _video_extension(path)  # fail before the work, not after it
    frames = _frames(params179, kinematics, caption, reference_params, avatar, tuple(size), view)
    return save_video(frames, path, fps=fps)


def render_video_frames(
    params179: np.ndarray | torch.Tensor,
    *,
    kinematics: Kinematics,
    caption: str | None = None,
    reference_params: np.ndarray | torch.Tensor | None = None,
    avatar: str = "mesh",
    size: tuple[int, int] = (320, 240),
    view: str = "front",
) -> np.ndarray:
    """The frames `render_video` would write, as one (T, H, W, 3) uint8 array (for TensorBoard)."""
    return np.stack(list(_frames(params179, kinematics, caption, reference_params, avatar, tuple(size), view)))
