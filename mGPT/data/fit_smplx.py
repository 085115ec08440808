"""Fit SMPL-X poses to 2D MediaPipe landmarks: one batched torch optimisation over all frames of many clips.

Unknowns, per frame: the global orientation, the ten upper-body joints the 133-dim feature keeps (SMPL-X
joints 12..21: neck, collars, head, shoulders, elbows, wrists), both hands (15 joints each) and the body's
position in the camera. Per signer (the clip id's prefix before "_"): one shape (10 betas). Per clip: a
pinhole camera with the principal point at the image centre and a fixed focal length (phones: about 0.72x
the long image side); the camera's rotation is absorbed by the global orientation. The spine, legs, jaw
and expression stay at zero: the feature drops the spine and legs, and the lips are not fitted.

The objective (`objective`), minimised in two stages (`stages`: the body, then everything) by Gauss-Newton
with analytic Jacobians (mGPT.data.fit_gauss_newton) after L-BFGS has placed the body on keyframes, or by
L-BFGS alone (`FitSettings.solver="lbfgs"`, the first solver, over unknowns scaled by `pixel_levers`):
- the 2D reprojection error of every visible landmark, robust (pseudo-Huber, quadratic below ~10 px, linear
  above), so a wrong MediaPipe point pulls far less than it would squared;
- where the input has it, the hands' relative depth (.pose hands: z relative to the wrist, in units of
  the image width, SPEC 9) against the fit's wrist-relative depth seen through the same camera;
- bone lengths are not a loss: they come from the skeleton (mannequin-x's SMPL-X-calibrated rest joints,
  linear in the betas), so only the shape prior and the 2D points choose them;
- joint limits: anatomical ranges per axis-angle component (elbows and fingers bend one way). mannequin-x
  0.3.0 ships `actuated_joint_limits`, but every range in it is [-pi, pi], so the ranges are ours, below;
- temporal smoothness: the squared acceleration of every pose number, weighted by how far that joint swings
  the skeleton (`PoseModel.swing`), and of the body position;
- small priors: pose near rest, hands near SMPL-X's mean hand, betas near zero, and the depth priors of
  signing: a wrist is not behind the chest (hands work in front of the torso), elbows bend one way.

MediaPipe landmarks are not SMPL-X joints, and the difference is modelled, not ignored (mGPT.data.mediapipe):
- finger MCP/PIP/DIP landmarks stand for SMPL-X's finger1/2/3 joints (thumb: CMC/MCP/IP);
- fingertips are surface points and the skeleton has no tips: each finger gets a tip joint hanging off
  its last joint, along that finger's last bone, `TIP_RATIO` times as long, so the tip constrains the
  last joint's bend, which no joint landmark does;
- a shoulder landmark sits on the acromion: the fit places it 4 cm above and 2 cm outside the shoulder
  joint centre, in the collar's frame; hips 3 cm outside the hip joints; face points (nose, eyes, ears,
  mouth corners) are fixed offsets of an average head in the head joint's frame;
- the hand's own wrist landmark outranks the pose's wrist landmark (half weight).
Missing points (zeros, NaN, outside the image) are masked out of the loss; frames where a whole hand is
missing get that hand's pose interpolated from the nearest frames that saw it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from smplx.lbs import batch_rodrigues
from torch import Tensor

from mGPT.data.mediapipe import FITTED_INDEX, LANDMARKS, LEFT_HAND, RIGHT_HAND
from mGPT.kinematics import Kinematics, SkeletonKinematics
from mGPT.layout import FRAME_DIMS, SMPLX_SLICES

UPPER_BODY = ("Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow",
              "L_Wrist", "R_Wrist")  # SMPL-X joints 12..21, the body_pose entries 11..20
FINGERS = ("Index", "Middle", "Pinky", "Ring", "Thumb")  # SMPL-X hand pose order
TIP_RATIO = {"Index": 0.85, "Middle": 0.9, "Pinky": 0.9, "Ring": 0.9, "Thumb": 0.85}
LEGS = ("L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "L_Foot", "R_Foot")
# SMPL-X to camera: the figure faces +z with y up; the camera looks along +z with y down.
FLIP = torch.tensor([1.0, -1.0, -1.0])
PHONE_FOCAL = 0.72  # focal length in units of the long image side (a phone's ~26 mm-equivalent lens)
# landmarks on the body's surface, whose place on a signer a per-signer calibration may shift; the hands'
# are joints (and tips, whose length the shape already moves)
CALIBRATED_PARTS = ("body", "face")
SHOULDER_LANDMARK_WIDTH = 0.35  # metres between MediaPipe's shoulder landmarks, for the depth guess

# Joint ranges of the signer's left side, per axis-angle component (x, y, z), radians; the right side is
# the mirror image (y and z negated). Hands: the total rotation (pose numbers + SMPL-X's mean hand).
_LEFT_RANGES = {
    "Neck": ((-0.6, 0.6), (-0.6, 0.6), (-0.5, 0.5)),
    "Collar": ((-0.35, 0.35), (-0.5, 0.5), (-0.5, 0.5)),
    "Head": ((-0.8, 0.8), (-0.9, 0.9), (-0.5, 0.5)),
    "Shoulder": ((-2.3, 2.3), (-2.0, 2.0), (-2.3, 1.2)),
    "Elbow": ((-1.6, 1.6), (-2.7, 0.1), (-0.6, 0.6)),
    "Wrist": ((-1.3, 1.3), (-0.8, 0.8), (-1.4, 1.4)),
    "Finger1": ((-0.7, 0.45), (-0.55, 0.55), (-2.3, 0.4)),
    "Finger2": ((-0.6, 0.4), (-0.35, 0.35), (-2.4, 0.3)),
    "Finger3": ((-0.6, 0.4), (-0.35, 0.35), (-1.9, 0.3)),
    "Thumb": ((-1.3, 1.3), (-1.3, 1.3), (-1.3, 1.3)),
}


@dataclass
class FitSettings:
    """Weights and schedule; the defaults are the ones bench/bench_fit.py measured."""

    solver: str = "gauss-newton"  # or "lbfgs", the first solver (bench/bench_fit.py compares the two)
    body_iterations: int = 150  # L-BFGS steps for the body alone (on every keyframe_step-th frame), then
    iterations: int = 20  # Gauss-Newton iterations for everything (L-BFGS steps with solver="lbfgs")
    keyframe_step: int = 8  # Gauss-Newton: the body is first placed on every k-th frame (4 measured worse on
    #                         real recordings: docs/fitting.md)
    # Gauss-Newton: each finger is also started bent this much (x fit_gauss_newton.FIST_BEND) and keeps the
    # best start; () starts from the mean hand only. 1.5 (a tight fist) measured better on 6 x 64 round-trip clips
    finger_curls: tuple[float, ...] = (1.0, 1.5)
    history: int = 20  # L-BFGS
    huber_px: float = 10.0
    smooth: float = 1.0e3  # per (metre / frame^2)^2 of joint acceleration
    limits: float = 1.0e3
    body_prior: float = 30.0  # neck, collars, head near rest: they trade off against the shoulders
    hand_prior: float = 30.0  # a fit that converges needs it: the 2D points leave the finger depths open
    shape_prior: float = 5.0
    # Gauss-Newton: the prior of each signer's landmark calibration (body and face landmarks shifted off the
    # model's offsets, one shift per signer, as MoSh calibrates markers); 0: none (docs/fitting.md)
    mark_prior: float = 3.0e4
    in_front: float = 1.0e4
    front_margin: float = -0.02  # metres a wrist is held in front of the chest (negative: may be behind)
    depth: float = 0.05  # per px^2 of relative hand depth
    focal: float = PHONE_FOCAL
    precondition: float = 0.5  # exponent of the pixel levers the unknowns are scaled by; 0: unscaled


@dataclass
class ClipKeypoints:
    """One clip's input: 86-point layout (mGPT.data.mediapipe)."""

    clip_id: str
    points: np.ndarray  # (T, 86, 2) pixels, x right, y down
    visible: np.ndarray  # (T, 86) bool
    image_size: tuple[int, int]  # (width, height)
    signer: str
    depth: np.ndarray | None = None  # (T, 86) relative z in pixels (hands only), or None


@dataclass
class ClipFit:
    clip_id: str
    params: np.ndarray  # (T, 179) SMPL-X frames
    translation: np.ndarray  # (T, 3) camera-space position of SMPL-X's origin, metres
    focal: float
    reprojection_px: dict[str, float] = field(default_factory=dict)  # RMS per part over visible points
    mark_shift: np.ndarray | None = None  # (L, 3) the signer's landmark calibration (FitSettings.mark_prior)


def _ranges(name: str) -> np.ndarray:
    """(3, 2) range of one free joint."""
    side, base = (name[:2], name[2:]) if name[:2] in ("L_", "R_") else ("", name)
    if base in ("Neck", "Head"):
        left = _LEFT_RANGES[base]
    elif base.startswith("Thumb"):
        left = _LEFT_RANGES["Thumb"]
    elif base[-1].isdigit():
        left = _LEFT_RANGES[f"Finger{base[-1]}"]
    else:
        left = _LEFT_RANGES[base]
    ranges = np.array(left, dtype=np.float32)
    if side == "R_":
        ranges = np.stack([ranges[0], -ranges[1, ::-1], -ranges[2, ::-1]])
    return ranges


# SMPL-X joints 0..21 and 25..54 are the skeleton's joints (SMPL-X's jaw and eyes are not)
SMPLX_TO_SKELETON = [*range(22), *range(25, 55)]


def smplx_calibration(body_model: torch.nn.Module) -> tuple[Tensor, Tensor, Tensor, dict]:
    """The skeleton's calibration read off an smplx SMPL-X layer: rest joints (52, 3) and their shape
    directions (52, 3, 10) through the joint regressor, the mean hand (90,), and per (side, finger) the tip
    vertex's rest place (3,) and shape directions (3, 10). All are linear in the betas, as SMPL-X is."""
    from smplx.vertex_ids import vertex_ids

    regressor = body_model.J_regressor.float()  # (55, V)
    template, shapes = body_model.v_template.float(), body_model.shapedirs[:, :, :10].float()  # (V, 3), (V, 3, 10)
    rest = (regressor @ template)[SMPLX_TO_SKELETON]
    dirs = torch.einsum("jv,vkc->jkc", regressor, shapes)[SMPLX_TO_SKELETON]
    hand_mean = torch.cat([body_model.left_hand_mean, body_model.right_hand_mean]).float()
    tips = {}
    for side in ("L", "R"):
        for finger in FINGERS:
            vertex = vertex_ids["smplx"][f"{side.lower()}{finger.lower()}"]
            tips[side, finger] = (template[vertex], shapes[vertex])
    return rest, dirs, hand_mean, tips


class PoseModel(torch.nn.Module):
    """Forward kinematics of the fitted joints: (root, body, hands, betas) -> joints, frames and landmarks.

    Only the joints that matter are posed (legs dropped), plus one tip per finger; joints of equal depth
    in the tree are posed together, so a pass is ~12 batched steps, not one per joint.

    `kinematics`: the smplx layer (mGPT.kinematics.SmplxKinematics, the user's licensed SMPL-X files) takes
    the rest joints, their shape directions, the mean hand and the fingertips (SMPL-X's tip vertices) from
    the SMPL-X model itself; None or the skeleton backend uses mannequin-x's calibration, with each tip
    `TIP_RATIO` times the last finger bone beyond the last joint.
    """

    def __init__(self, kinematics: Kinematics | None = None):
        super().__init__()
        skeleton = SkeletonKinematics()
        names, parents = skeleton.joint_names, skeleton.parents
        joint_rest, joint_dirs, hand_mean = skeleton.joint_rest, skeleton.joint_dirs, skeleton.hand_mean
        vertex_tips = None
        self.backend = "skeleton"
        if kinematics is not None and kinematics.backend == "smplx":
            joint_rest, joint_dirs, hand_mean, vertex_tips = smplx_calibration(kinematics.body_model)
            self.backend = "smplx"
        kept = [j for j, name in enumerate(names) if name not in LEGS]
        self.names = [names[j] for j in kept]
        index = {old: new for new, old in enumerate(kept)}
        self.parents = [-1 if parents[j] < 0 else index[parents[j]] for j in kept]
        rest = joint_rest[kept]  # (J, 3)
        dirs = joint_dirs[kept]  # (J, 3, 10)
        # tips: one joint beyond each finger's last joint
        tip_rest, tip_dirs = [], []
        for side in ("L", "R"):
            for finger in FINGERS:
                last, before = self.names.index(f"{side}_{finger}3"), self.names.index(f"{side}_{finger}2")
                if vertex_tips is not None:
                    tip_rest.append(vertex_tips[side, finger][0])
                    tip_dirs.append(vertex_tips[side, finger][1])
                else:  # along the last bone
                    ratio = TIP_RATIO[finger]
                    tip_rest.append(rest[last] + ratio * (rest[last] - rest[before]))
                    tip_dirs.append(dirs[last] + ratio * (dirs[last] - dirs[before]))
                self.names.append(f"{side}_{finger}Tip")
                self.parents.append(last)
        self.register_buffer("rest", torch.cat([rest, torch.stack(tip_rest)]), persistent=False)  # (J, 3)
        self.register_buffer("dirs", torch.cat([dirs, torch.stack(tip_dirs)]), persistent=False)  # (J, 3, 10)
        self.register_buffer("hand_mean", hand_mean.reshape(30, 3).clone(), persistent=False)

        # free joints: root, the ten upper-body joints, 30 finger joints
        hand_joints = [f"{side}_{finger}{k}" for side in ("L", "R") for finger in FINGERS for k in (1, 2, 3)]
        self.free = ["Pelvis", *UPPER_BODY, *hand_joints]
        self.free_index = [self.names.index(name) for name in self.free]
        self.register_buffer("free_joints", torch.tensor(self.free_index), persistent=False)  # (41,)
        ranges = np.stack([_ranges(name) for name in self.free[1:]])  # (40, 3, 2)
        self.register_buffer("low", torch.as_tensor(ranges[..., 0]), persistent=False)
        self.register_buffer("high", torch.as_tensor(ranges[..., 1]), persistent=False)

        depth = [0] * len(self.names)
        for j, parent in enumerate(self.parents):
            depth[j] = 0 if parent < 0 else depth[parent] + 1
        self.levels = [[j for j in range(len(self.names)) if depth[j] == d] for d in range(max(depth) + 1)]
        self.level_parent_pos = []  # per level: index of each joint's parent within the previous level
        for d in range(1, len(self.levels)):
            previous = self.levels[d - 1]
            self.level_parent_pos.append([previous.index(self.parents[j]) for j in self.levels[d]])
        # the same as index tensors, for pose() and shape_jacobian(): on a CPU, index_select is ~5x faster than
        # indexing by a list
        self.level_bounds = np.cumsum([0, *map(len, self.levels)]).tolist()
        by_level = [j for level in self.levels for j in level]
        slot_of = {joint: slot for slot, joint in enumerate(self.free_index)}  # a joint not free: the identity
        self.register_buffer("level_joint", torch.tensor(by_level), persistent=False)  # (J,)
        self.register_buffer("level_slot", torch.tensor([slot_of.get(j, len(self.free)) for j in by_level]),
                             persistent=False)  # (J,) each joint's rotation among the free ones, identity last
        self.register_buffer("level_parent", torch.tensor([p for level in self.level_parent_pos for p in level]),
                             persistent=False)  # (J - 1,) each joint's parent within the level above
        self.register_buffer("level_order", torch.as_tensor(np.argsort(by_level)),
                             persistent=False)  # (J,) level order back to joint order
        self.register_buffer("parent_index", torch.tensor([max(p, 0) for p in self.parents]), persistent=False)

        self.mark_joint = [self.names.index(mark.joint) for mark in LANDMARKS]
        self.mark_frame = [self.names.index(mark.frame or mark.joint) for mark in LANDMARKS]
        self.register_buffer("mark_joint_index", torch.tensor(self.mark_joint), persistent=False)
        self.register_buffer("mark_frame_index", torch.tensor(self.mark_frame), persistent=False)
        self.register_buffer("mark_offset", torch.tensor([mark.offset for mark in LANDMARKS]), persistent=False)
        self.joint_index = {name: j for j, name in enumerate(self.names)}
        # per free joint: the mean over all joints of the squared distance it swings them per radian, at rest
        carried = torch.zeros(len(self.free), len(self.names))
        for slot, free_joint in enumerate(self.free_index):
            for joint in range(len(self.names)):
                above = self.parents[joint]
                while above >= 0 and above != free_joint:
                    above = self.parents[above]
                if above == free_joint:
                    carried[slot, joint] = (self.rest[joint] - self.rest[free_joint]).pow(2).sum()
        self.register_buffer("swing", carried.sum(1) / len(self.names), persistent=False)  # (41,) m^2

    def forward(self, root: Tensor, body: Tensor, hands: Tensor, betas: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """root (N, 3), body (N, 10, 3), hands (N, 30, 3) as SMPL-X numbers, betas (N, 10)
        -> joints (N, J, 3), landmarks (N, L, 3) in SMPL-X coordinates about the pelvis, limit excess (N,)."""
        joints, _, marks = self.pose(root, body, hands, betas)
        angles = torch.cat([body, hands + self.hand_mean], dim=1)  # (N, 40, 3)
        excess = (torch.relu(self.low - angles) + torch.relu(angles - self.high)).pow(2).sum(dim=(1, 2))
        return joints, marks, excess

    def pose(self, root: Tensor, body: Tensor, hands: Tensor, betas: Tensor, mark_shift: Tensor | None = None
             ) -> tuple[Tensor, Tensor, Tensor]:
        """-> joints (N, J, 3), global rotations (N, J, 3, 3) and landmarks (N, L, 3), about the pelvis.
        `mark_shift` (N, L, 3), metres in each landmark's frame, moves the landmarks off the model's offsets."""
        n = root.shape[0]
        hands_total = hands + self.hand_mean  # flat_hand_mean False: zeros mean the relaxed hand
        local_free = torch.cat([root[:, None], body, hands_total], dim=1)  # (N, 41, 3)
        rot_free = batch_rodrigues(local_free.reshape(-1, 3)).reshape(n, -1, 3, 3)
        eye = torch.eye(3, dtype=root.dtype, device=root.device).expand(n, 1, 3, 3)
        # every joint's local rotation, level by level: a free joint's, or the identity
        local = torch.cat([rot_free, eye], dim=1).index_select(1, self.level_slot)  # (N, J, 3, 3)
        rest = self.rest + torch.einsum("jkc,nc->njk", self.dirs, betas)  # (N, J, 3)
        offsets = (rest - rest.index_select(1, self.parent_index)).index_select(1, self.level_joint)  # bones

        bounds = self.level_bounds
        rot_levels = [local[:, :1]]  # the root's global rotation
        pos_levels = [rest[:, self.levels[0]]]  # the pelvis stays at its rest place, as in mGPT.kinematics
        for d in range(1, len(self.levels)):
            start, stop = bounds[d], bounds[d + 1]
            parent_pos = self.level_parent[start - 1:stop - 1]
            parent_rot = rot_levels[-1].index_select(1, parent_pos)  # (N, k, 3, 3)
            pos = pos_levels[-1].index_select(1, parent_pos) + (parent_rot @ offsets[:, start:stop, :, None])[..., 0]
            rot_levels.append(parent_rot @ local[:, start:stop])
            pos_levels.append(pos)
        rotations = torch.cat(rot_levels, dim=1).index_select(1, self.level_order)  # (N, J, 3, 3)
        joints = torch.cat(pos_levels, dim=1).index_select(1, self.level_order)  # (N, J, 3)
        offsets = self.mark_offset if mark_shift is None else self.mark_offset + mark_shift  # (L, 3) or (N, L, 3)
        marks = joints.index_select(1, self.mark_joint_index) + (
            rotations.index_select(1, self.mark_frame_index) @ offsets[..., None])[..., 0]  # (N, L, 3)
        return joints, rotations, marks

    def shape_jacobian(self, rotations: Tensor) -> Tensor:
        """(N, J, 3, 3) global rotations -> (N, J, 3, 10): how each joint moves per unit of each beta.
        The rest skeleton is linear in the betas, so a joint moves by its parent's move plus the parent's
        rotation of its bone's change."""
        dirs = self.dirs.to(rotations)  # (J, 3, 10)
        bone_dirs = dirs - dirs[self.parent_index]  # (J, 3, 10)
        levels = [dirs[self.levels[0]].expand(rotations.shape[0], -1, -1, -1)]
        for d, parent_pos in enumerate(self.level_parent_pos, start=1):
            joints = self.levels[d]
            parent_rot = rotations[:, [self.parents[j] for j in joints]]  # (N, k, 3, 3)
            levels.append(levels[-1][:, parent_pos] + parent_rot @ bone_dirs[joints])
        return torch.cat(levels, dim=1).index_select(1, self.level_order)

    def pixel_levers(self, px_per_metre: float) -> dict[str, Tensor]:
        """How many pixels each unknown moves its landmarks per unit, at rest and `px_per_metre` (focal /
        depth): a joint's lever is its reach to the farthest landmark it carries. Shapes as fit_clips's
        unknowns: root (3,), body (10, 3), hands (30, 3), translation (3,), betas (10,)."""
        rest = self.rest.cpu()
        marks = rest[self.mark_joint] + self.mark_offset  # (L, 3), offsets taken as at rest
        carried = torch.zeros(len(self.names), len(LANDMARKS), dtype=torch.bool)  # joint -> marks below it
        for mark, joint in enumerate(self.mark_joint):
            while joint >= 0:
                carried[joint, mark] = True
                joint = self.parents[joint]
        reach = torch.where(carried, (marks[None] - rest[:, None]).norm(dim=-1), torch.zeros(())).amax(dim=1)
        free = reach[self.free_index].clamp(min=0.01) * px_per_metre  # (41,) px per radian
        beta_reach = self.dirs.cpu()[self.mark_joint].norm(dim=1).amax(dim=0)  # (10,) metres per unit beta
        return {"root": free[0].expand(3), "body": free[1:11, None].expand(10, 3),
                "hands": free[11:, None].expand(30, 3),
                # sideways the image moves px_per_metre per metre; in depth only by the figure's ~0.3 m
                # size times the relative change, ~px_per_metre * 0.3 / depth
                "translation": torch.tensor([1.0, 1.0, 0.15]) * px_per_metre,
                "betas": (beta_reach * px_per_metre).clamp(min=1.0)}

    def inside_limits(self, body: Tensor, hands: Tensor, tolerance: float = 0.02) -> Tensor:
        """(N,) bool: every fitted joint within its range (to `tolerance` radians)."""
        angles = torch.cat([body, hands + self.hand_mean], dim=1)
        return ((angles >= self.low - tolerance) & (angles <= self.high + tolerance)).all(dim=(1, 2))


def to_smplx(root: Tensor, body: Tensor, hands: Tensor, betas: Tensor) -> Tensor:
    """(N, 3), (N, 10, 3), (N, 30, 3), (N, 10) -> (N, 179) SMPL-X frames (spine, legs, jaw, expression 0)."""
    n = root.shape[0]
    frame = torch.zeros(n, FRAME_DIMS, dtype=root.dtype, device=root.device)
    frame[:, SMPLX_SLICES["smplx_root_pose"]] = root
    body_pose = torch.zeros(n, 21, 3, dtype=root.dtype, device=root.device)
    body_pose[:, 11:21] = body
    frame[:, SMPLX_SLICES["smplx_body_pose"]] = body_pose.reshape(n, 63)
    frame[:, SMPLX_SLICES["smplx_lhand_pose"]] = hands[:, :15].reshape(n, 45)
    frame[:, SMPLX_SLICES["smplx_rhand_pose"]] = hands[:, 15:].reshape(n, 45)
    frame[:, SMPLX_SLICES["smplx_shape"]] = betas
    return frame


def from_smplx(frames: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(N, 179) -> root (N, 3), body (N, 10, 3), hands (N, 30, 3), betas (N, 10); the inverse of to_smplx
    on the joints it fits (spine and legs are dropped)."""
    n = frames.shape[0]
    body = frames[:, SMPLX_SLICES["smplx_body_pose"]].reshape(n, 21, 3)[:, 11:21]
    hands = torch.cat([frames[:, SMPLX_SLICES["smplx_lhand_pose"]], frames[:, SMPLX_SLICES["smplx_rhand_pose"]]],
                      dim=1).reshape(n, 30, 3)
    return frames[:, SMPLX_SLICES["smplx_root_pose"]], body, hands, frames[:, SMPLX_SLICES["smplx_shape"]]


def project(points_smplx: Tensor, translation: Tensor, focal: Tensor, centre: Tensor) -> tuple[Tensor, Tensor]:
    """(N, L, 3) SMPL-X points, (N, 3) camera position of SMPL-X's origin, (N,) focal, (N, 2) principal point
    -> (N, L, 2) pixels and (N, L) camera depth."""
    camera = points_smplx * FLIP.to(points_smplx) + translation[:, None]
    depth = camera[..., 2].clamp(min=0.05)
    return focal[:, None, None] * camera[..., :2] / depth[..., None] + centre[:, None], depth


def _initial_translation(points: np.ndarray, visible: np.ndarray, focal: float,
                         centre: np.ndarray) -> np.ndarray:
    """(3,) a clip's pelvis position from the median shoulder landmarks: depth from their width."""
    left, right = 61 + 11, 61 + 12
    both = visible[:, left] & visible[:, right]
    if both.any():
        l_pt, r_pt = np.median(points[both, left], axis=0), np.median(points[both, right], axis=0)
    else:  # no shoulders: guess the signer fills the frame's middle
        l_pt, r_pt = centre + [0.15 * centre[0], 0.0], centre - [0.15 * centre[0], 0.0]
    width = max(float(np.linalg.norm(l_pt - r_pt)), 1.0)
    depth = focal * SHOULDER_LANDMARK_WIDTH / width
    middle = (l_pt + r_pt) / 2
    # the translation is the camera position of SMPL-X's origin; the shoulder landmarks sit ~0.12 m above
    # it (y up in SMPL-X, down in the camera)
    return np.array([(middle[0] - centre[0]) * depth / focal, (middle[1] - centre[1]) * depth / focal + 0.12,
                     depth], dtype=np.float32)


# A resting start: arms down and slightly forward, elbows a little bent, hands relaxed.
_START = {"L_Shoulder": (0.0, 0.0, -1.1), "R_Shoulder": (0.0, 0.0, 1.1), "L_Elbow": (0.0, -0.6, 0.0),
          "R_Elbow": (0.0, 0.6, 0.0)}


def _interpolate_missing(values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(T, D) values, (T,) bool -> values with unseen rows linearly interpolated (held at the ends)."""
    if seen.all() or not seen.any():
        return values
    frames = np.arange(len(values))
    out = values.copy()
    for d in range(values.shape[1]):
        out[~seen, d] = np.interp(frames[~seen], frames[seen], values[seen, d])
    return out


@dataclass
class FitProblem:
    """All clips' observations, frames stacked (N in all), as both solvers see them."""

    observed: Tensor  # (N, L, 2) px
    weight: Tensor  # (N, L) landmark weight, 0 where not seen
    fingers: Tensor  # (L,) bool: finger landmarks, fitted in the second stage only
    focal: Tensor  # (N,) px
    centre: Tensor  # (N, 2) principal point, px
    depth_in: Tensor | None  # (N, L) the input's relative hand depth, px; None: no clip has depth
    depth_ok: Tensor | None  # (N, L) bool: hand points with an input depth
    wrist_mark: Tensor  # (L,) each hand landmark's wrist landmark (0 for the others)
    middle: Tensor  # (M,) frames with a neighbour on each side in their clip (the smoothness windows)
    signer_index: Tensor  # (N,) into the shapes
    calibrated: Tensor  # (L,) bool: landmarks a signer's calibration may shift (FitSettings.mark_prior)
    start: dict[str, Tensor]  # the first guess: root (N, 3), body (N, 10, 3), hands (N, 30, 3),
    #                           translation (N, 3), betas (S, 10)
    px_per_metre: float  # median focal / depth, for pixel_levers
    chest: int  # joint index of Spine3
    wrists: tuple[int, int]  # joint indices of the wrists


def build_problem(clips: list[ClipKeypoints], settings: FitSettings, model: PoseModel,
                  device: torch.device) -> FitProblem:
    lengths = [len(clip.points) for clip in clips]
    n = sum(lengths)
    signer_names = sorted({clip.signer for clip in clips})
    frame_signer = np.concatenate([[signer_names.index(clip.signer)] * len(clip.points) for clip in clips])
    as_float = lambda x: torch.as_tensor(x, dtype=torch.float32, device=device)  # noqa: E731
    observed = as_float(np.nan_to_num(np.concatenate([c.points[:, FITTED_INDEX] for c in clips])))
    visible = torch.as_tensor(np.concatenate([c.visible[:, FITTED_INDEX] for c in clips]), device=device)
    weight = torch.tensor([mark.weight for mark in LANDMARKS], device=device) * visible
    focal_per_clip = [settings.focal * max(c.image_size) for c in clips]
    centres = np.concatenate([np.repeat([[c.image_size[0] / 2, c.image_size[1] / 2]], len(c.points), 0)
                              for c in clips])
    depth_in = depth_ok = None
    if any(c.depth is not None for c in clips):
        depth_in = as_float(np.concatenate([
            c.depth[:, FITTED_INDEX] if c.depth is not None else np.zeros((len(c.points), len(LANDMARKS)))
            for c in clips]))
        hand_marks = torch.tensor([mark.part in ("lhand", "rhand") for mark in LANDMARKS], device=device)
        depth_ok = visible & hand_marks & torch.as_tensor(np.concatenate([
            np.full((len(c.points), len(LANDMARKS)), c.depth is not None) for c in clips]), device=device)
    starts = np.cumsum([0, *lengths[:-1]])
    middle = np.concatenate([np.arange(s + 1, s + t - 1) for s, t in zip(starts, lengths, strict=True) if t >= 3]
                            or [np.zeros(0, dtype=int)]).astype(np.int64)
    translation0 = np.concatenate([np.repeat(_initial_translation(c.points, c.visible, f, np.array(
        [c.image_size[0] / 2, c.image_size[1] / 2]))[None], len(c.points), 0)
        for c, f in zip(clips, focal_per_clip, strict=True)])
    body0 = torch.zeros(n, len(UPPER_BODY), 3)
    for name, value in _START.items():
        body0[:, UPPER_BODY.index(name)] = torch.tensor(value)
    wrist_of = {"lhand": LEFT_HAND.start, "rhand": RIGHT_HAND.start}
    return FitProblem(
        observed=observed, weight=weight,
        fingers=torch.tensor([mark.part in ("lhand", "rhand") and not mark.joint.endswith("Wrist")
                              for mark in LANDMARKS], device=device),
        focal=as_float(np.repeat(focal_per_clip, lengths)), centre=as_float(centres),
        depth_in=depth_in, depth_ok=depth_ok,
        wrist_mark=torch.tensor([list(FITTED_INDEX).index(wrist_of[mark.part]) if mark.part in wrist_of else 0
                                 for mark in LANDMARKS], device=device),
        middle=torch.as_tensor(middle, device=device), signer_index=torch.as_tensor(frame_signer, device=device),
        calibrated=torch.tensor([mark.part in CALIBRATED_PARTS for mark in LANDMARKS], device=device),
        start={"root": torch.zeros(n, 3, device=device), "body": body0.to(device),
               "hands": torch.zeros(n, 30, 3, device=device), "translation": as_float(translation0),
               "betas": torch.zeros(len(signer_names), 10, device=device)},
        px_per_metre=float(np.median(np.repeat(focal_per_clip, lengths) / translation0[:, 2])),
        chest=model.joint_index["Spine3"], wrists=(model.joint_index["L_Wrist"], model.joint_index["R_Wrist"]))


def pose_state(model: PoseModel, problem: FitProblem, state: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """model.pose at `state`: each frame with its signer's shape, and its signer's landmark shifts where the
    state has them ("marks", (S, L, 3))."""
    signer = problem.signer_index
    shift = state["marks"][signer] if "marks" in state else None
    return model.pose(state["root"], state["body"], state["hands"], state["betas"][signer], shift)


def mark_prior(problem: FitProblem, settings: FitSettings, marks: Tensor) -> Tensor:
    """(S,) each signer's calibration prior, for landmark shifts `marks` (S, L, 3)."""
    return mark_stiffness(problem, settings, marks.shape[0]) * marks.pow(2).sum(dim=(1, 2))


def mark_stiffness(problem: FitProblem, settings: FitSettings, signers: int) -> float:
    """The calibration prior's weight per squared metre of shift, normalised as the shape prior is."""
    return settings.mark_prior / max(signers * int(problem.calibrated.sum()) * 3, 1)


def robust(squared_px: Tensor, huber_px: float) -> Tensor:
    """Pseudo-Huber of squared pixel distances: quadratic below ~huber_px, linear above."""
    h2 = huber_px ** 2
    return h2 * (torch.sqrt(1 + squared_px / h2) - 1)


def frame_losses(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor],
                 stage_weight: Tensor, posed: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
    """(N,) the objective's terms that belong to one frame each: the 2D points, relative hand depth, joint
    limits, pose priors and the in-front prior. `posed` is model.pose's output for `state`, if at hand."""
    n = stage_weight.shape[0]
    body, hands = state["body"], state["hands"]
    joints, _, marks = posed or pose_state(model, problem, state)
    pixels, cam_depth = project(marks, state["translation"], problem.focal, problem.centre)
    squared = (pixels - problem.observed).pow(2).sum(-1)  # (N, L) px^2
    loss = (stage_weight * robust(squared, settings.huber_px)).sum(1) / stage_weight.sum().clamp(min=1)
    angles = torch.cat([body, hands + model.hand_mean], dim=1)  # (N, 40, 3)
    excess = angles - torch.maximum(torch.minimum(angles, model.high), model.low)
    loss = loss + settings.limits / n * excess.pow(2).sum(dim=(1, 2))
    loss = loss + settings.body_prior / (n * 12) * body[:, :4].pow(2).sum(dim=(1, 2))
    loss = loss + settings.hand_prior / (n * 90) * hands.pow(2).sum(dim=(1, 2))
    # a wrist is not behind the chest (SMPL-X z points forward, out of the chest)
    behind = joints[:, list(problem.wrists), 2] - joints[:, problem.chest, 2, None]  # (N, 2)
    loss = loss + settings.in_front / (n * 2) * torch.relu(settings.front_margin - behind).pow(2).sum(1)
    if problem.depth_in is not None:
        # relative depth of hand points: fit (metres -> pixels at the wrist's depth) against the input
        wrist_depth = cam_depth[:, problem.wrist_mark]
        rel_fit = (cam_depth - wrist_depth) * problem.focal[:, None] / wrist_depth
        rel_in = problem.depth_in - problem.depth_in[:, problem.wrist_mark]
        ok = problem.depth_ok
        loss = loss + settings.depth * ((rel_fit - rel_in).pow(2) * ok).sum(1) / ok.sum().clamp(min=1)
    return loss


def second_difference(values: Tensor, middle: Tensor) -> Tensor:
    """(N, ...) per-frame values -> (M, ...) their acceleration at the `middle` frames."""
    return values[middle + 1] - 2 * values[middle] + values[middle - 1]


def objective(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor],
              stage_weight: Tensor) -> Tensor:
    """The whole objective: the per-frame terms, temporal smoothness and the shape prior."""
    loss = frame_losses(model, problem, settings, state, stage_weight).sum()
    loss = loss + settings.shape_prior * state["betas"].pow(2).mean()
    if "marks" in state:
        loss = loss + mark_prior(problem, settings, state["marks"]).sum()
    return loss + smoothness(model, problem, settings, state).sum()


def smoothness(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor]) -> Tensor:
    """(M,) per window of three frames: the squared acceleration of every pose number, each weighted by how
    far its joint swings the skeleton (PoseModel.swing, the diagonal of the joints' squared acceleration),
    and of the body position. Linear in the unknowns, so the Gauss-Newton solver's coupled system stays
    exact and cheap."""
    if not len(problem.middle):
        return state["translation"].new_zeros(0)
    angles = torch.cat([state["root"][:, None], state["body"], state["hands"]], dim=1)  # (N, 41, 3)
    accel = second_difference(angles, problem.middle).pow(2).sum(-1)  # (M, 41)
    trans_accel = second_difference(state["translation"], problem.middle).pow(2).sum(-1)  # (M,)
    return settings.smooth / len(problem.middle) * (accel @ model.swing + trans_accel)


def stages(problem: FitProblem, settings: FitSettings) -> list[tuple[tuple[str, ...], Tensor, int]]:
    """(unknowns, landmark weights, steps) per stage. Stage 1 places the body (arms, head, camera, shape) on
    the body points and the wrists; stage 2 adds the fingers. Fitting fingers to hands that sit in the wrong
    place only twists the wrists."""
    body_stage = ("root", "body", "translation", "betas")
    return [(body_stage, problem.weight * ~problem.fingers, settings.body_iterations),
            ((*body_stage, "hands"), problem.weight, settings.iterations)]


def _solve_lbfgs(model: PoseModel, problem: FitProblem, settings: FitSettings,
                 trace: list | None) -> dict[str, Tensor]:
    # L-BFGS works on each unknown times its pixel lever (see pixel_levers) to the power
    # settings.precondition: a finger joint moves its landmarks ~20 px per radian and a shoulder ~400, a
    # spread of curvatures L-BFGS's few history vectors cannot learn over thousands of frames. The full
    # power (1) lets the stiff joint-limit penalty dominate the fingers; 0.5 measured best (docs/fitting.md).
    levers = {key: value.to(problem.observed.device) ** settings.precondition
              for key, value in model.pixel_levers(problem.px_per_metre).items()}
    scaled = {key: (value * levers[key]).requires_grad_(True) for key, value in problem.start.items()}
    for names, stage_weight, steps in stages(problem, settings):
        if steps <= 0:
            continue
        optimiser = torch.optim.LBFGS([scaled[k] for k in names], lr=1.0, max_iter=steps,
                                      history_size=settings.history, tolerance_grad=1e-9, tolerance_change=1e-12,
                                      line_search_fn="strong_wolfe")

        def closure(optimiser=optimiser, stage_weight=stage_weight) -> Tensor:
            optimiser.zero_grad(set_to_none=True)
            loss = objective(model, problem, settings, {k: v / levers[k] for k, v in scaled.items()}, stage_weight)
            loss.backward()
            if trace is not None:
                trace.append(float(loss.detach()))
            return loss

        optimiser.step(closure)
    return {key: (value / levers[key]).detach() for key, value in scaled.items()}


def _place_body(clips: list[ClipKeypoints], settings: FitSettings, model: PoseModel, problem: FitProblem,
                device: torch.device, trace: list | None) -> dict[str, Tensor]:
    """Stage 1 by L-BFGS on every `keyframe_step`-th frame, interpolated to all frames: the body's first
    placement, from the resting start, is where the fit must find the right one of several 2D-equivalent
    poses, and L-BFGS's gradual path from the start finds it where Gauss-Newton's long steps often did not.
    The body moves smoothly, so an eighth of the frames place it as well as all of them, and better on real
    recordings than a quarter (docs/fitting.md)."""
    step = max(settings.keyframe_step, 1)
    keyframes = [ClipKeypoints(c.clip_id, c.points[::step], c.visible[::step], c.image_size, c.signer,
                               None if c.depth is None else c.depth[::step]) for c in clips]
    # accelerations over `step` frames are step^2 larger for the same motion
    key_settings = replace(settings, iterations=0, smooth=settings.smooth / step ** 4)
    key_problem = build_problem(keyframes, key_settings, model, device)
    placed = _solve_lbfgs(model, key_problem, key_settings, trace)
    out = {"betas": placed["betas"], "hands": problem.start["hands"]}
    key_starts = np.cumsum([0, *[len(c.points) for c in keyframes[:-1]]])
    for name in ("root", "body", "translation"):
        values = placed[name].cpu().numpy()
        full = []
        for clip, start, key in zip(clips, key_starts, keyframes, strict=True):
            frames = np.arange(len(clip.points))
            rows = values[start:start + len(key.points)].reshape(len(key.points), -1)
            full.append(np.stack([np.interp(frames, frames[::step], column) for column in rows.T], axis=1))
        out[name] = torch.as_tensor(np.concatenate(full), dtype=torch.float32, device=device).reshape(
            problem.start[name].shape)
    return out


def fit_clips(clips: list[ClipKeypoints], settings: FitSettings | None = None, device: str | torch.device = "cpu",
              model: PoseModel | None = None, trace: list | None = None) -> list[ClipFit]:
    """Fit all clips together (one optimisation, shapes shared per signer) -> one ClipFit per clip.

    `trace`, when given, receives the objective per L-BFGS evaluation and per Gauss-Newton iteration.
    """
    settings = settings or FitSettings()
    device = torch.device(device)
    model = (model or PoseModel()).to(device)
    problem = build_problem(clips, settings, model, device)
    if settings.solver == "lbfgs":
        state = _solve_lbfgs(model, problem, settings, trace)
    elif settings.solver == "gauss-newton":
        from mGPT.data.fit_gauss_newton import solve
        placed = _place_body(clips, settings, model, problem, device, trace)
        state = solve(model, replace(problem, start=placed), replace(settings, body_iterations=0), trace)
    else:
        raise ValueError(f"FitSettings.solver: {settings.solver!r}; use 'gauss-newton' or 'lbfgs'")

    with torch.no_grad():
        betas = state["betas"][problem.signer_index]
        _, _, marks = pose_state(model, problem, state)
        pixels, _ = project(marks, state["translation"], problem.focal, problem.centre)
        error = (pixels - problem.observed).pow(2).sum(-1).cpu().numpy()  # (N, L)
        frames = to_smplx(state["root"], state["body"], state["hands"], betas).cpu().numpy()
        translation = state["translation"].cpu().numpy()
        shifts = state["marks"][problem.signer_index].cpu().numpy() if "marks" in state else None
    seen = (problem.weight > 0).cpu().numpy()
    parts = np.array([mark.part for mark in LANDMARKS])
    fits, start = [], 0
    for clip in clips:
        rows = slice(start, start + len(clip.points))
        start += len(clip.points)
        params = frames[rows].copy()
        for side, block in (("smplx_lhand_pose", LEFT_HAND), ("smplx_rhand_pose", RIGHT_HAND)):
            hand_seen = clip.visible[:, block].sum(axis=1) >= 10
            params[:, SMPLX_SLICES[side]] = _interpolate_missing(params[:, SMPLX_SLICES[side]], hand_seen)
        rms = {}
        for part in ("body", "face", "lhand", "rhand"):
            mask = seen[rows] & (parts == part)
            rms[part] = float(np.sqrt(error[rows][mask].mean())) if mask.any() else float("nan")
        fits.append(ClipFit(clip.clip_id, params.astype(np.float32), translation[rows],
                            float(problem.focal[rows.start]), rms,
                            None if shifts is None else shifts[rows.start]))
    return fits


def group_by_signer(clips: list[ClipKeypoints], max_frames: int) -> list[list[ClipKeypoints]]:
    """Batches of at most ~max_frames frames, each signer's clips kept together where they fit."""
    by_signer: dict[str, list[ClipKeypoints]] = defaultdict(list)
    for clip in clips:
        by_signer[clip.signer].append(clip)
    batches, current, size = [], [], 0
    for signer in sorted(by_signer):
        for clip in by_signer[signer]:
            if current and size + len(clip.points) > max_frames:
                batches.append(current)
                current, size = [], 0
            current.append(clip)
            size += len(clip.points)
    if current:
        batches.append(current)
    return batches
