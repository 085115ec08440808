"""Known truth for the fitter: SMPL-X clips seen through a simulated phone, as MediaPipe would report them.

`phone_keypoints` projects a (T, 179) clip through a portrait phone camera that is slightly off-axis,
adds pixel noise and drops a hand in a few percent of frames. Its landmark model is the fitter's, with
each clip's surface offsets and fingertip lengths perturbed (3 mm, 5% by default), so a fit is never
scored on exactly the model it assumes. bench/bench_fit.py and tests/test_fit_smplx.py use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from mGPT.data.fit_smplx import FLIP, ClipKeypoints, PoseModel, from_smplx
from mGPT.data.mediapipe import FITTED_INDEX, LANDMARKS, LEFT_HAND, N_POINTS, RIGHT_HAND


@dataclass(frozen=True)
class PhoneCamera:
    image_size: tuple[int, int] = (1080, 1920)  # portrait
    focal: float = 1500.0  # px; the fitter assumes 0.72 x 1920 = 1382
    yaw: float = 0.12  # radians off-axis
    pitch: float = -0.08
    distance: float = 1.9  # metres to the pelvis
    principal_offset: tuple[float, float] = (12.0, -20.0)


def phone_keypoints(clip_id: str, frames: np.ndarray, rng: np.random.Generator, camera: PhoneCamera = PhoneCamera(),
                    noise_px: float = 1.5, drop_hand: float = 0.04, model: PoseModel | None = None,
                    signer: str | None = None, offset_jitter: float = 0.003,
                    tip_stretch: float = 0.05) -> ClipKeypoints:
    """(T, 179) truth -> the 86-point 2D input a phone + MediaPipe would give (hips may fall outside)."""
    model = model or PoseModel()
    with torch.no_grad():
        root, body, hands, betas = from_smplx(torch.as_tensor(frames, dtype=torch.float32))
        joints, _, _ = model(root, body, hands, betas)
        rotations = _global_rotations(model, root, body, hands)
        offsets = model.mark_offset.numpy() + rng.normal(0, offset_jitter, (len(LANDMARKS), 3)) * (
            model.mark_offset.numpy() != 0).any(axis=1, keepdims=True)
        marks = joints[:, model.mark_joint].numpy() + np.einsum(
            "nlij,lj->nli", rotations[:, model.mark_frame], offsets)  # (T, L, 3)
    # tips: stretch each finger's last segment by up to 10%
    for mark_i, mark in enumerate(LANDMARKS):
        if mark.joint.endswith("Tip"):
            parent = model.parents[model.names.index(mark.joint)]
            stretch = rng.uniform(1 - tip_stretch, 1 + tip_stretch)
            marks[:, mark_i] = joints[:, parent].numpy() + stretch * (marks[:, mark_i] - joints[:, parent].numpy())
    turn = Rotation.from_euler("yx", [camera.yaw, camera.pitch]).as_matrix()
    cam = (marks * FLIP.numpy()) @ turn.T + np.array([0.0, 0.1, camera.distance])
    width, height = camera.image_size
    centre = np.array([width / 2 + camera.principal_offset[0], height / 2 + camera.principal_offset[1]])
    pixels = camera.focal * cam[..., :2] / cam[..., 2:] + centre
    pixels = pixels + rng.normal(0, noise_px, pixels.shape)
    points = np.zeros((len(frames), N_POINTS, 2), dtype=np.float32)
    points[:, FITTED_INDEX] = pixels
    visible = np.zeros((len(frames), N_POINTS), dtype=bool)
    visible[:, FITTED_INDEX] = True
    inside = (points[..., 0] >= 0) & (points[..., 0] < width) & (points[..., 1] >= 0) & (points[..., 1] < height)
    visible &= inside
    for block in (LEFT_HAND, RIGHT_HAND):
        dropped = rng.random(len(frames)) < drop_hand
        visible[dropped, block] = False
    points[~visible] = 0.0  # what MediaPipe writes for a missed point
    return ClipKeypoints(clip_id, points, visible, camera.image_size, signer or clip_id.split("_")[0])


def _global_rotations(model: PoseModel, root, body, hands) -> np.ndarray:
    """(T, J, 3, 3) global joint rotations of the fitter's model (for landmark offsets)."""
    from smplx.lbs import batch_rodrigues

    n = root.shape[0]
    local = torch.eye(3).expand(n, len(model.names), 3, 3).clone()
    free = torch.cat([root[:, None], body, hands + model.hand_mean], dim=1)
    local[:, model.free_index] = batch_rodrigues(free.reshape(-1, 3)).reshape(n, -1, 3, 3)
    glob = [None] * len(model.names)
    for j, parent in enumerate(model.parents):
        glob[j] = local[:, j] if parent < 0 else glob[parent] @ local[:, j]
    return torch.stack(glob, dim=1).numpy()
