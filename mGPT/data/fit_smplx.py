"""Fit SMPL-X poses to 2D MediaPipe landmarks: one batched torch optimisation over all frames of many clips.

Unknowns, per frame: the global orientation, the ten upper-body joints the 133-dim feature keeps (SMPL-X
joints 12..21: neck, collars, head, shoulders, elbows, wrists), both hands (15 joints each) and the body's
position in the camera. Per signer (the clip id's prefix before "_"): one shape (10 betas). Per clip: a
pinhole camera with the principal point at the image centre and a fixed focal length (phones: about 0.72x
the long image side); the camera's rotation is absorbed by the global orientation. The spine, legs, jaw
and expression stay at zero: the feature drops the spine and legs, and the lips are not fitted.

The objective, minimised with L-BFGS over unknowns scaled by how far they move the image (`pixel_levers`):
- the 2D reprojection error of every visible landmark, robust (pseudo-Huber, quadratic below ~10 px, linear
  above), so a wrong MediaPipe point pulls far less than it would squared;
- where the input has it, the hands' relative depth (.pose hands: z relative to the wrist, in units of
  the image width, SPEC 9) against the fit's wrist-relative depth seen through the same camera;
- bone lengths are not a loss: they come from the skeleton (mannequin-x's SMPL-X-calibrated rest joints,
  linear in the betas), so only the shape prior and the 2D points choose them;
- joint limits: anatomical ranges per axis-angle component (elbows and fingers bend one way). mannequin-x
  0.3.0 ships `actuated_joint_limits`, but every range in it is [-pi, pi], so the ranges are ours, below;
- temporal smoothness: the squared 3D acceleration of every joint and of the body position;
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
from dataclasses import dataclass, field

import numpy as np
import torch
from smplx.lbs import batch_rodrigues
from torch import Tensor

from mGPT.data.mediapipe import FITTED_INDEX, LANDMARKS, LEFT_HAND, RIGHT_HAND
from mGPT.kinematics import SkeletonKinematics
from mGPT.layout import FRAME_DIMS, SMPLX_SLICES

UPPER_BODY = ("Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow",
              "L_Wrist", "R_Wrist")  # SMPL-X joints 12..21, the body_pose entries 11..20
FINGERS = ("Index", "Middle", "Pinky", "Ring", "Thumb")  # SMPL-X hand pose order
TIP_RATIO = {"Index": 0.85, "Middle": 0.9, "Pinky": 0.9, "Ring": 0.9, "Thumb": 0.85}
LEGS = ("L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "L_Foot", "R_Foot")
# SMPL-X to camera: the figure faces +z with y up; the camera looks along +z with y down.
FLIP = torch.tensor([1.0, -1.0, -1.0])
PHONE_FOCAL = 0.72  # focal length in units of the long image side (a phone's ~26 mm-equivalent lens)
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

    body_iterations: int = 100  # L-BFGS steps for the body alone, then
    iterations: int = 200  # steps for everything
    history: int = 20
    huber_px: float = 10.0
    smooth: float = 1.0e3  # per (metre / frame^2)^2 of joint acceleration
    limits: float = 1.0e3
    body_prior: float = 30.0  # neck, collars, head near rest: they trade off against the shoulders
    hand_prior: float = 0.5
    shape_prior: float = 5.0
    in_front: float = 1.0e4
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


class PoseModel(torch.nn.Module):
    """Forward kinematics of the fitted joints: (root, body, hands, betas) -> joints, frames and landmarks.

    Only the joints that matter are posed (legs dropped), plus one tip per finger; joints of equal depth
    in the tree are posed together, so a pass is ~12 batched steps, not one per joint.
    """

    def __init__(self):
        super().__init__()
        skeleton = SkeletonKinematics()
        names, parents = skeleton.joint_names, skeleton.parents
        kept = [j for j, name in enumerate(names) if name not in LEGS]
        self.names = [names[j] for j in kept]
        index = {old: new for new, old in enumerate(kept)}
        self.parents = [-1 if parents[j] < 0 else index[parents[j]] for j in kept]
        rest = skeleton.joint_rest[kept]  # (J, 3)
        dirs = skeleton.joint_dirs[kept]  # (J, 3, 10)
        # tips: one joint beyond each finger's last joint, along the last bone
        tip_rest, tip_dirs = [], []
        for side in ("L", "R"):
            for finger in FINGERS:
                last, before = self.names.index(f"{side}_{finger}3"), self.names.index(f"{side}_{finger}2")
                ratio = TIP_RATIO[finger]
                tip_rest.append(rest[last] + ratio * (rest[last] - rest[before]))
                tip_dirs.append(dirs[last] + ratio * (dirs[last] - dirs[before]))
                self.names.append(f"{side}_{finger}Tip")
                self.parents.append(last)
        self.register_buffer("rest", torch.cat([rest, torch.stack(tip_rest)]), persistent=False)  # (J, 3)
        self.register_buffer("dirs", torch.cat([dirs, torch.stack(tip_dirs)]), persistent=False)  # (J, 3, 10)
        self.register_buffer("hand_mean", skeleton.hand_mean.reshape(30, 3).clone(), persistent=False)

        # free joints: root, the ten upper-body joints, 30 finger joints
        hand_joints = [f"{side}_{finger}{k}" for side in ("L", "R") for finger in FINGERS for k in (1, 2, 3)]
        self.free = ["Pelvis", *UPPER_BODY, *hand_joints]
        self.free_index = [self.names.index(name) for name in self.free]
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
        self.order = torch.as_tensor(np.argsort([j for level in self.levels for j in level]))

        self.mark_joint = [self.names.index(mark.joint) for mark in LANDMARKS]
        self.mark_frame = [self.names.index(mark.frame or mark.joint) for mark in LANDMARKS]
        self.register_buffer("mark_offset", torch.tensor([mark.offset for mark in LANDMARKS]), persistent=False)
        self.joint_index = {name: j for j, name in enumerate(self.names)}

    def forward(self, root: Tensor, body: Tensor, hands: Tensor, betas: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """root (N, 3), body (N, 10, 3), hands (N, 30, 3) as SMPL-X numbers, betas (N, 10)
        -> joints (N, J, 3), landmarks (N, L, 3) in SMPL-X coordinates about the pelvis, limit excess (N,)."""
        n = root.shape[0]
        hands_total = hands + self.hand_mean  # flat_hand_mean False: zeros mean the relaxed hand
        local_free = torch.cat([root[:, None], body, hands_total], dim=1)  # (N, 41, 3)
        rot_free = batch_rodrigues(local_free.reshape(-1, 3)).reshape(n, -1, 3, 3)
        rest = self.rest + torch.einsum("jkc,nc->njk", self.dirs, betas)  # (N, J, 3)
        eye = torch.eye(3, dtype=root.dtype, device=root.device).expand(n, len(self.names), 3, 3)
        local = eye.clone()
        local[:, self.free_index] = rot_free  # (N, J, 3, 3)
        parents = torch.as_tensor([max(p, 0) for p in self.parents], device=root.device)
        offsets = rest - rest[:, parents]  # (N, J, 3) bone vectors at rest

        rot_levels = [local[:, self.levels[0]]]  # the root's global rotation
        pos_levels = [rest[:, self.levels[0]]]  # the pelvis stays at its rest place, as in mGPT.kinematics
        for d, parent_pos in enumerate(self.level_parent_pos, start=1):
            joints = self.levels[d]
            parent_rot = rot_levels[-1][:, parent_pos]  # (N, k, 3, 3)
            pos = pos_levels[-1][:, parent_pos] + (parent_rot @ offsets[:, joints, :, None])[..., 0]
            rot_levels.append(parent_rot @ local[:, joints])
            pos_levels.append(pos)
        order = self.order.to(root.device)
        rotations = torch.cat(rot_levels, dim=1)[:, order]  # (N, J, 3, 3)
        joints = torch.cat(pos_levels, dim=1)[:, order]  # (N, J, 3)

        marks = joints[:, self.mark_joint] + torch.einsum(
            "nlij,lj->nli", rotations[:, self.mark_frame], self.mark_offset)  # (N, L, 3)

        angles = torch.cat([body, hands_total], dim=1)  # (N, 40, 3)
        excess = (torch.relu(self.low - angles) + torch.relu(angles - self.high)).pow(2).sum(dim=(1, 2))
        return joints, marks, excess

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


def fit_clips(clips: list[ClipKeypoints], settings: FitSettings | None = None, device: str | torch.device = "cpu",
              model: PoseModel | None = None, trace: list | None = None) -> list[ClipFit]:
    """Fit all clips together (one optimisation, shapes shared per signer) -> one ClipFit per clip.

    `trace`, when given, receives (data term, total loss) per iteration, to watch convergence.
    """
    settings = settings or FitSettings()
    device = torch.device(device)
    model = (model or PoseModel()).to(device)
    lengths = [len(clip.points) for clip in clips]
    n = sum(lengths)
    signer_names = sorted({clip.signer for clip in clips})
    frame_signer = np.concatenate([[signer_names.index(clip.signer)] * len(clip.points) for clip in clips])

    observed = torch.as_tensor(np.nan_to_num(np.concatenate([c.points[:, FITTED_INDEX] for c in clips])),
                               dtype=torch.float32,
                               device=device)  # (N, L, 2)
    visible = torch.as_tensor(np.concatenate([c.visible[:, FITTED_INDEX] for c in clips]), device=device)
    weight = torch.tensor([mark.weight for mark in LANDMARKS], device=device) * visible  # (N, L)
    focal_per_clip = [settings.focal * max(c.image_size) for c in clips]
    focal = torch.as_tensor(np.repeat(focal_per_clip, lengths), dtype=torch.float32, device=device)
    centres = np.concatenate([np.repeat([[c.image_size[0] / 2, c.image_size[1] / 2]], len(c.points), 0)
                              for c in clips])
    centre = torch.as_tensor(centres, dtype=torch.float32, device=device)  # (N, 2)
    has_depth = any(c.depth is not None for c in clips)
    if has_depth:
        depth_in = torch.as_tensor(np.concatenate([
            c.depth[:, FITTED_INDEX] if c.depth is not None else np.zeros((len(c.points), len(LANDMARKS)))
            for c in clips]), dtype=torch.float32, device=device)
        depth_ok = visible & torch.as_tensor(np.concatenate([
            np.full((len(c.points), len(LANDMARKS)), c.depth is not None) for c in clips]), device=device)
    # consecutive frames of one clip, for the smoothness terms
    starts = np.cumsum([0, *lengths[:-1]])
    middle = np.concatenate([np.arange(s + 1, s + t - 1) for s, t in zip(starts, lengths, strict=True) if t >= 3]
                            or [np.zeros(0, dtype=int)]).astype(np.int64)
    middle = torch.as_tensor(middle, device=device)

    translation0 = np.concatenate([np.repeat(_initial_translation(c.points, c.visible, f, np.array(
        [c.image_size[0] / 2, c.image_size[1] / 2]))[None], len(c.points), 0)
        for c, f in zip(clips, focal_per_clip, strict=True)])
    body0 = torch.zeros(n, len(UPPER_BODY), 3)
    for name, value in _START.items():
        body0[:, UPPER_BODY.index(name)] = torch.tensor(value)
    # The optimiser works on each unknown times its pixel lever (see pixel_levers) to the power
    # settings.precondition: a finger joint moves its landmarks ~20 px per radian and a shoulder ~400, a
    # spread of curvatures L-BFGS's few history vectors cannot learn over thousands of frames. The full
    # power (1) lets the stiff joint-limit penalty dominate the fingers; 0.5 measured best (docs/fitting.md).
    px_per_metre = float(np.median(np.repeat(focal_per_clip, lengths) / translation0[:, 2]))
    levers = {key: value.to(device) ** settings.precondition
              for key, value in model.pixel_levers(px_per_metre).items()}
    root_u = torch.zeros(n, 3, device=device, requires_grad=True)
    body_u = (body0.to(device) * levers["body"]).requires_grad_(True)
    hands_u = torch.zeros(n, 30, 3, device=device, requires_grad=True)
    translation_u = (torch.as_tensor(translation0, device=device) * levers["translation"]).requires_grad_(True)
    betas_u = torch.zeros(len(signer_names), 10, device=device, requires_grad=True)

    def unknowns() -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return (root_u / levers["root"], body_u / levers["body"], hands_u / levers["hands"],
                translation_u / levers["translation"], betas_u / levers["betas"])
    signer_index = torch.as_tensor(frame_signer, device=device)

    # L-BFGS with a line search: the objective is smooth and least-squares-like, where it converges in a
    # few dozen steps what Adam needs many hundreds for
    chest = model.joint_index["Spine3"]
    wrists = [model.joint_index["L_Wrist"], model.joint_index["R_Wrist"]]
    hand_marks = torch.tensor([mark.part in ("lhand", "rhand") for mark in LANDMARKS], device=device)
    wrist_mark = torch.tensor([list(FITTED_INDEX).index(LEFT_HAND.start if mark.part == "lhand" else RIGHT_HAND.start)
                               if mark.part in ("lhand", "rhand") else 0 for mark in LANDMARKS], device=device)
    fingers = torch.tensor([mark.part in ("lhand", "rhand") and not mark.joint.endswith("Wrist")
                            for mark in LANDMARKS], device=device)

    def loss_of(stage_weight: Tensor) -> Tensor:
        root, body, hands, translation, betas = unknowns()
        joints, marks, excess = model(root, body, hands, betas[signer_index])
        pixels, cam_depth = project(marks, translation, focal, centre)
        residual = (pixels - observed).pow(2).sum(-1)  # (N, L) px^2
        h2 = settings.huber_px ** 2
        data = (stage_weight * h2 * (torch.sqrt(1 + residual / h2) - 1)).sum() / stage_weight.sum().clamp(min=1)
        loss = data + settings.limits * excess.mean()
        loss = loss + settings.body_prior * body[:, :4].pow(2).mean() + settings.hand_prior * hands.pow(2).mean()
        loss = loss + settings.shape_prior * betas.pow(2).mean()
        if len(middle):
            accel = joints[middle + 1] - 2 * joints[middle] + joints[middle - 1]
            trans_accel = translation[middle + 1] - 2 * translation[middle] + translation[middle - 1]
            loss = loss + settings.smooth * (accel.pow(2).sum(-1).mean() + trans_accel.pow(2).sum(-1).mean())
        # a wrist is not behind the chest (SMPL-X z points forward, out of the chest)
        behind = joints[:, wrists, 2] - joints[:, chest, 2, None]
        loss = loss + settings.in_front * torch.relu(-behind - 0.02).pow(2).mean()
        if has_depth:
            # relative depth of hand points: fit (metres -> pixels at the wrist's depth) against the input
            wrist_depth = cam_depth.gather(1, wrist_mark[None].expand(n, -1))
            rel_fit = (cam_depth - wrist_depth) * focal[:, None] / wrist_depth
            rel_in = depth_in - depth_in.gather(1, wrist_mark[None].expand(n, -1))
            ok = depth_ok & hand_marks
            loss = loss + settings.depth * ((rel_fit - rel_in).pow(2) * ok).sum() / ok.sum().clamp(min=1)
        if trace is not None:
            trace.append((float(data.detach()), float(loss.detach())))
        return loss

    # Stage 1 places the body (arms, head, camera, shape) on the body points and the wrists; stage 2 adds
    # the fingers. Fitting fingers to hands that sit in the wrong place only twists the wrists.
    for stage_params, stage_weight, steps in (
            ([root_u, body_u, translation_u, betas_u], weight * ~fingers, settings.body_iterations),
            ([root_u, body_u, hands_u, translation_u, betas_u], weight, settings.iterations)):
        if steps <= 0:
            continue
        optimiser = torch.optim.LBFGS(stage_params, lr=1.0, max_iter=steps, history_size=settings.history,
                                      tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

        def closure(optimiser=optimiser, stage_weight=stage_weight) -> Tensor:
            optimiser.zero_grad(set_to_none=True)
            loss = loss_of(stage_weight)
            loss.backward()
            return loss

        optimiser.step(closure)

    with torch.no_grad():
        root, body, hands, translation, betas = unknowns()
        _, marks, _ = model(root, body, hands, betas[signer_index])
        pixels, _ = project(marks, translation, focal, centre)
        error = (pixels - observed).pow(2).sum(-1)  # (N, L)
        frames = to_smplx(root, body, hands, betas[signer_index]).cpu().numpy()
    error, visible_np = error.cpu().numpy(), visible.cpu().numpy()
    parts = np.array([mark.part for mark in LANDMARKS])
    fits = []
    for clip, start, length in zip(clips, starts, lengths, strict=True):
        rows = slice(start, start + length)
        params = frames[rows].copy()
        for side, block in (("smplx_lhand_pose", LEFT_HAND), ("smplx_rhand_pose", RIGHT_HAND)):
            seen = clip.visible[:, block].sum(axis=1) >= 10
            params[:, SMPLX_SLICES[side]] = _interpolate_missing(params[:, SMPLX_SLICES[side]], seen)
        rms = {}
        for part in ("body", "face", "lhand", "rhand"):
            mask = visible_np[rows] & (parts == part)
            rms[part] = float(np.sqrt(error[rows][mask].mean())) if mask.any() else float("nan")
        fits.append(ClipFit(clip.clip_id, params.astype(np.float32), translation[rows].detach().cpu().numpy(),
                            float(focal_per_clip[len(fits)]), rms))
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
