"""Forward kinematics: 179 SMPL-X numbers per frame -> 3D joint positions in metres.

Two backends give the same interface (`Kinematics`):
- "skeleton" (default): the SMPL-X-calibrated skeleton shipped in the Apache-2.0 package mannequin-x
  (rest joints linear in the 10 betas, plus SMPL-X's mean hand pose), posed with batched forward
  kinematics. Needs no licensed files. Hands = wrist + 15 finger joints.
- "smplx": the official SMPL-X layer with the user's licensed SMPLX_NEUTRAL.npz. Hands also get the
  5 fingertip vertices and the body gets nose, eyes and ears, like SOKE's metric.
Both pose the body about the pelvis with the root pose and no translation (eye poses zero), so the
joints are in SMPL-X coordinates: y up, the figure faces +z. Scores from the two backends are not
comparable; score files record `Kinematics.backend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import smplx
import torch
from mannequin import Mannequin
from smplx.joint_names import JOINT_NAMES as SMPLX_JOINT_NAMES
from smplx.lbs import batch_rigid_transform, batch_rodrigues
from torch import Tensor

from mGPT.errors import ConfigError
from mGPT.layout import FRAME_DIMS, SMPLX_SLICES

BACKENDS = ("skeleton", "smplx")
FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # SMPL-X hand pose order, 3 joints each
TIPS = ("thumb", "index", "middle", "ring", "pinky")  # smplx's fingertip vertex order


@dataclass(frozen=True)
class PartJoints:
    """Joint indices of one part for the metric; `root` anchors the root alignment."""

    root: int
    joints: list[int]

    def local(self, joints: Tensor) -> Tensor:
        """(..., J, 3) joints -> (..., K, 3): this part's joints relative to its root, as the metric compares them."""
        return joints[..., self.joints, :] - joints[..., self.root : self.root + 1, :]


def _part(joint_names: list[str], root: str, joints: list[str]) -> PartJoints:
    return PartJoints(root=joint_names.index(root), joints=[joint_names.index(name) for name in joints])


class Kinematics(torch.nn.Module):
    """(..., 179) SMPL-X parameters -> (..., J, 3) joints in metres; subclasses pose flat batches."""

    backend: str
    joint_names: list[str]
    parents: list[int]
    parts: dict[str, PartJoints]

    def forward(self, params179: Tensor) -> Tensor:
        if params179.shape[-1] != FRAME_DIMS:
            raise ValueError(f"kinematics needs {FRAME_DIMS} SMPL-X numbers per frame, got shape "
                             f"{tuple(params179.shape)}")
        leading = params179.shape[:-1]
        joints = self._pose(params179.reshape(-1, FRAME_DIMS))  # (N, J, 3)
        return joints.reshape(*leading, len(self.joint_names), 3)

    def _pose(self, params: Tensor) -> Tensor:
        raise NotImplementedError


def _split(params: Tensor) -> dict[str, Tensor]:
    """(N, 179) -> {smplx key: (N, size)}."""
    return {key: params[:, part] for key, part in SMPLX_SLICES.items()}


class SkeletonKinematics(Kinematics):
    """mannequin-x's SMPL-X skeleton: joints 0..21, then 15 left and 15 right finger joints (52)."""

    def __init__(self):
        super().__init__()
        mannequin = Mannequin("convex")
        names, parents = list(mannequin.joint_names), list(mannequin.parents)
        resource = files("mannequin") / "assets" / "smplx_calibration.npz"
        with resource.open("rb") as archive, np.load(archive, allow_pickle=False) as calibration:
            joint_rest = calibration["joint_rest"]  # (54, 3) at zero betas
            joint_dirs = calibration["joint_dirs"]  # (54, 3, 10) per beta
            hand_mean = calibration["hand_mean"]  # (30, 3) left then right

        # L_Hand / R_Hand sit exactly on the wrists (zero-length bones SMPL-X does not have): drop them
        # and hang the fingers off the wrists, which leaves the SMPL-X joint order of the pose numbers.
        helpers = {names.index(name): parents[names.index(name)] for name in ("L_Hand", "R_Hand")}
        kept = [j for j in range(len(names)) if j not in helpers]
        new_index = {old: new for new, old in enumerate(kept)}
        self.backend = "skeleton"
        self.joint_names = [names[j] for j in kept]
        self.parents = [-1 if parents[j] < 0 else new_index[helpers.get(parents[j], parents[j])]
                        for j in kept]
        self.register_buffer("joint_rest", torch.as_tensor(joint_rest[kept], dtype=torch.float32),
                             persistent=False)
        self.register_buffer("joint_dirs", torch.as_tensor(joint_dirs[kept], dtype=torch.float32),
                             persistent=False)
        self.register_buffer("hand_mean", torch.as_tensor(hand_mean.reshape(-1), dtype=torch.float32),
                             persistent=False)
        self.register_buffer("parent_index", torch.as_tensor(self.parents), persistent=False)

        def hand(side: str) -> PartJoints:
            fingers = [f"{side}_{finger.capitalize()}{k}" for finger in FINGERS for k in (1, 2, 3)]
            return _part(self.joint_names, f"{side}_Wrist", [f"{side}_Wrist", *fingers])

        body = ["Neck", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist"]
        self.parts = {"body": _part(self.joint_names, "Pelvis", body), "lhand": hand("L"), "rhand": hand("R")}

    def _pose(self, params: Tensor) -> Tensor:
        p = _split(params)
        frames, dtype = params.shape[0], params.dtype
        # flat_hand_mean False: zero hand numbers mean SMPL-X's relaxed hand, as in the smplx layer
        hands = torch.cat([p["smplx_lhand_pose"], p["smplx_rhand_pose"]], dim=-1) + self.hand_mean.to(dtype)
        axis_angles = torch.cat([p["smplx_root_pose"], p["smplx_body_pose"], hands], dim=-1)  # (N, 156)
        rotations = batch_rodrigues(axis_angles.reshape(-1, 3))
        rotations = rotations.reshape(frames, len(self.parents), 3, 3)  # (N, 52, 3, 3)
        rest = self.joint_rest.to(dtype) + torch.einsum(
            "jkc,nc->njk", self.joint_dirs.to(dtype), p["smplx_shape"])  # (N, 52, 3)
        posed, _ = batch_rigid_transform(rotations, rest, self.parent_index, dtype=dtype)  # (N, 52, 3)
        return posed


class SmplxKinematics(Kinematics):
    """The official SMPL-X layer: 55 skeleton joints + nose, eyes, ears + 10 fingertips (70 joints)."""

    FACE = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
    FRAMES_PER_CALL = 256  # bounds the per-vertex skinning transforms (frames, 10475, 4, 4) in memory

    def __init__(self, model_file: Path):
        super().__init__()
        self.backend = "smplx"
        self.body_model = smplx.create(str(model_file), model_type="smplx", gender="neutral", use_pca=False,
                                       flat_hand_mean=False, num_betas=10, num_expression_coeffs=10,
                                       use_face_contour=False)
        skeleton_parents = self.body_model.parents.tolist()  # (55,)
        tips = [f"{side}_{tip}" for side in ("left", "right") for tip in TIPS]
        # smplx returns the 55 skeleton joints, then joints read off vertices, then face landmarks
        self.joint_names = [*SMPLX_JOINT_NAMES[: len(skeleton_parents)], *self.FACE, *tips]
        self.output_index = [SMPLX_JOINT_NAMES.index(name) for name in self.joint_names]
        head = SMPLX_JOINT_NAMES.index("head")
        self.parents = [*skeleton_parents, *[head] * len(self.FACE),
                        *[SMPLX_JOINT_NAMES.index(f"{tip}3") for tip in tips]]  # a tip hangs off its finger

        def hand(side: str) -> PartJoints:
            fingers = [f"{side}_{finger}{k}" for finger in FINGERS for k in (1, 2, 3)]
            tip_names = [f"{side}_{tip}" for tip in TIPS]
            return _part(self.joint_names, f"{side}_wrist", [f"{side}_wrist", *fingers, *tip_names])

        body = ["neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                "right_wrist", *self.FACE]
        self.parts = {"body": _part(self.joint_names, "pelvis", body), "lhand": hand("left"),
                      "rhand": hand("right")}

    def _pose(self, params: Tensor) -> Tensor:
        model_dtype = self.body_model.shapedirs.dtype
        joints = []
        for chunk in params.to(model_dtype).split(self.FRAMES_PER_CALL):
            p = _split(chunk)
            zeros = torch.zeros(chunk.shape[0], 3, dtype=model_dtype, device=chunk.device)
            out = self.body_model(betas=p["smplx_shape"], global_orient=p["smplx_root_pose"],
                                  body_pose=p["smplx_body_pose"], left_hand_pose=p["smplx_lhand_pose"],
                                  right_hand_pose=p["smplx_rhand_pose"], jaw_pose=p["smplx_jaw_pose"],
                                  expression=p["smplx_expr"], leye_pose=zeros, reye_pose=zeros, transl=zeros,
                                  return_shaped=False)
            joints.append(out.joints[:, self.output_index])  # (n, 70, 3)
        return torch.cat(joints).to(params.dtype)


def smplx_model_file(model_dir: str | Path) -> Path:
    """SMPLX_NEUTRAL.npz under KINEMATICS.SMPLX_DIR (<deps>/smpl_models, or its smplx/ folder itself)."""
    folder = Path(model_dir)
    for candidate in (folder / "smplx" / "SMPLX_NEUTRAL.npz", folder / "SMPLX_NEUTRAL.npz"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"KINEMATICS.BACKEND is smplx but {folder / 'smplx' / 'SMPLX_NEUTRAL.npz'} does not "
                      "exist: run notebook 1 to download the SMPL-X model files into KINEMATICS.SMPLX_DIR, "
                      "or set KINEMATICS.BACKEND: skeleton")


def build_kinematics(backend: str = "skeleton", model_dir: str | None = None) -> Kinematics:
    """The configured forward kinematics; `model_dir` (KINEMATICS.SMPLX_DIR) is used only by smplx."""
    if backend == "skeleton":
        return SkeletonKinematics()
    if backend == "smplx":
        if model_dir is None:
            raise ConfigError("KINEMATICS.BACKEND is smplx but KINEMATICS.SMPLX_DIR is not set: point it "
                              "at the folder holding smplx/SMPLX_NEUTRAL.npz, or set KINEMATICS.BACKEND: "
                              "skeleton")
        return SmplxKinematics(smplx_model_file(model_dir))
    raise ConfigError(f"KINEMATICS.BACKEND must be one of {list(BACKENDS)}, got {backend!r}")
