"""Mesh avatars: SMPL-X parameters (T, 179) -> posed vertices (T, V, 3) of a triangle mesh.

Two avatars give the same interface (`MeshAvatar`), one per kinematics backend:
- the mannequin (default): mannequin-x's skinned "wooden" mannequin, Apache-2.0, no licensed files,
  with articulated fingers. mannequin-x's own `vertices()` skins one frame in numpy in some 80 ms;
  here its joint transforms (batched, cheap) drive linear blend skinning as one matrix product in
  torch, which gives the same vertices (tests check) at about a millisecond a frame.
- SMPL-X (`KINEMATICS.BACKEND: smplx`): the official mesh of the user's licensed model, with face and
  jaw, from the smplx layer that the kinematics already holds.
Both take the root pose about the pelvis with no translation, like the kinematics, so vertices are in
SMPL-X coordinates (y up, the figure faces +z), and zero hand numbers mean the relaxed mean hand.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from mannequin import Mannequin

from mGPT.kinematics import Kinematics, SmplxKinematics
from mGPT.layout import FRAME_DIMS, SMPLX_SLICES

SIDES = ("left", "right")


@dataclass(frozen=True)
class Skin:
    """A mesh at rest, ready for linear blend skinning: 4 joints and weights per vertex."""

    rest: np.ndarray  # (V, 3) float32
    normals: np.ndarray  # (V, 3) float32
    joints: np.ndarray  # (V, 4) int32
    weights: np.ndarray  # (V, 4) float32, summing to 1


@dataclass(frozen=True)
class PosedClip:
    """A clip of one avatar: its skin with per-frame joint matrices, or (CPU-posed) per-frame vertices."""

    skin: Skin
    bones: np.ndarray | None  # (T, J, 3, 4) float32: [R | t] per joint, rest vertex -> posed vertex
    vertices: np.ndarray | None  # (T, V, 3) float32

    def __len__(self) -> int:
        return len(self.bones if self.bones is not None else self.vertices)


class MeshAvatar(Protocol):
    """What the mesh renderer needs of an avatar."""

    name: str
    faces: np.ndarray  # (F, 3) int32, the whole mesh
    panel_faces: np.ndarray  # (F', 3) int32, what a body panel draws: all but the shins and feet
    hand_faces: dict[str, np.ndarray]  # "left" / "right" -> (F_hand, 3) int32, that hand alone, for its inset
    palm_vertices: dict[str, np.ndarray]  # side -> (N,) int: moved by the wrist alone; an inset follows them
    hand_vertices: dict[str, np.ndarray]  # side -> (N,) int: what an inset must hold
    upper_body_vertices: np.ndarray  # (N,) int, everything but the legs: what the camera frames

    def pose(self, params179: np.ndarray) -> PosedClip:  # (T, 179) SMPL-X parameters
        ...

    def points(self, clip: PosedClip, vertices: np.ndarray) -> np.ndarray:  # (N,) -> (T, N, 3) on the CPU
        ...


def rest_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V, 3) of a mesh at rest."""
    corners = vertices[faces]  # (F, 3, 3)
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return (normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _descendants(parents: list[int], roots: list[int]) -> set[int]:
    below = set(roots)
    for joint, parent in enumerate(parents):  # parents come before children in SMPL-X style trees
        if parent in below:
            below.add(joint)
    return below


def _regions(dominant: np.ndarray, faces: np.ndarray, parents: list[int], names: list[str],
             wrists: dict[str, str], legs: list[str], knees: list[str]) -> tuple[dict, dict, dict, np.ndarray,
                                                                                np.ndarray]:
    """Hand faces, palm, hand and upper-body vertices, and the panel's faces, from each vertex's most
    weighted joint (V,)."""
    hand_faces, palm_vertices, hand_vertices = {}, {}, {}
    for side, wrist in wrists.items():
        joints = _descendants(parents, [names.index(wrist)])
        in_hand = np.isin(dominant, sorted(joints))  # (V,)
        hand_vertices[side] = np.flatnonzero(in_hand)
        palm_vertices[side] = np.flatnonzero(dominant == names.index(wrist))
        hand_faces[side] = faces[in_hand[faces].all(axis=1)].astype(np.int32)
    leg_joints = _descendants(parents, [names.index(name) for name in legs])
    upper_body = np.flatnonzero(~np.isin(dominant, sorted(leg_joints)))
    # the panel frames the upper body, so shins and feet are never in view: not drawing them saves
    # a fifth of the vertex work, which is most of a frame's cost on a software rasteriser
    below_knees = np.isin(dominant, sorted(_descendants(parents, [names.index(name) for name in knees])))
    panel_faces = faces[~below_knees[faces].all(axis=1)].astype(np.int32)
    return hand_faces, palm_vertices, hand_vertices, upper_body, panel_faces


def _split(params179: np.ndarray) -> dict[str, np.ndarray]:
    params = np.asarray(params179, dtype=np.float32)
    if params.ndim != 2 or params.shape[1] != FRAME_DIMS:
        raise ValueError(f"an avatar is posed with SMPL-X parameters of shape (T, {FRAME_DIMS}), got {params.shape}")
    return {key: params[:, part] for key, part in SMPLX_SLICES.items()}


class MannequinAvatar:
    """mannequin-x's wooden mannequin (24,256 vertices, 54 joints), skinned from mannequin-x's own data.

    mannequin-x skins v = sum_k w_k (R_jk (v_rest - b_jk) + t_jk) over 4 joints j_k per vertex, with
    bind orientations at identity, so each joint's matrix [R | t - R b] carries a rest vertex to its
    posed place; the renderer's shader blends them. The mannequin has one body shape at a time: a
    clip is posed with its mean shape (a generated clip's 10 betas are SOKE's fixed shape anyway).
    Jaw and expression have nothing to move.
    """

    name = "mannequin"

    def __init__(self) -> None:
        self.mannequin = Mannequin("wooden", flat_hand_mean=False)
        names, parents = list(self.mannequin.joint_names), list(self.mannequin.parents)
        self.faces = np.asarray(self.mannequin.faces, dtype=np.int32)
        self.joints = np.asarray(self.mannequin._skin_joint_indices, dtype=np.int32)  # (V, 4)
        self.weights = np.asarray(self.mannequin._skin_weights, dtype=np.float32)  # (V, 4)
        dense = np.zeros((len(self.joints), len(names)), dtype=np.float32)
        np.add.at(dense, (np.arange(len(self.joints))[:, None], self.joints), self.weights)
        self.dense_weights = torch.from_numpy(dense)  # (V, J), for skinning a few vertices on the CPU
        self._skins: dict[bytes, tuple[Skin, np.ndarray]] = {}
        (self.hand_faces, self.palm_vertices, self.hand_vertices, self.upper_body_vertices,
         self.panel_faces) = _regions(dense.argmax(axis=1), self.faces, parents, names,
                                      {"left": "L_Wrist", "right": "R_Wrist"}, ["L_Hip", "R_Hip"],
                                      ["L_Knee", "R_Knee"])

    def _skin(self, shape: np.ndarray) -> tuple[Skin, np.ndarray]:
        """The rest mesh and bind joints (J, 3) of one body shape (reshaping takes some 0.1 s: cached)."""
        key = np.round(shape, 6).astype(np.float32).tobytes()
        if key not in self._skins:
            self.mannequin.reshape(shape)
            identity = self.mannequin._identity
            rest = np.asarray(identity["skin_vertices"], dtype=np.float32)
            skin = Skin(rest, rest_normals(rest, self.faces), self.joints, self.weights)
            self._skins[key] = (skin, np.asarray(identity["skin_bind_positions"], dtype=np.float32))
        return self._skins[key]

    def pose(self, params179: np.ndarray) -> PosedClip:
        p = _split(params179)
        shape = p["smplx_shape"].mean(axis=0)  # (10,)
        skin, bind = self._skin(shape)
        frames = len(p["smplx_shape"])
        pose = {"body_pose": p["smplx_body_pose"].reshape(frames, 21, 3),
                "hand_pose": np.concatenate([p["smplx_lhand_pose"], p["smplx_rhand_pose"]], 1).reshape(frames, 30, 3),
                "head_pose": np.zeros((frames, 3, 3), np.float32),
                "pelvis_rotation": p["smplx_root_pose"]}  # about the pelvis, as SMPL-X's global_orient
        transforms = np.asarray(self.mannequin.forward_skeleton(**pose, shape=shape),
                                dtype=np.float32)  # (T, J, 4, 4)
        rotations, translations = transforms[..., :3, :3], transforms[..., :3, 3]
        offsets = translations - np.einsum("tjab,jb->tja", rotations, bind)
        return PosedClip(skin, np.concatenate([rotations, offsets[..., None]], axis=-1), None)

    def points(self, clip: PosedClip, vertices: np.ndarray) -> np.ndarray:
        bones = torch.from_numpy(clip.bones).reshape(len(clip), -1, 12)  # (T, J, 12)
        rest = torch.from_numpy(clip.skin.rest[vertices])  # (N, 3)
        blended = (self.dense_weights[vertices] @ bones).reshape(len(clip), len(vertices), 3, 4)  # (T, N, 3, 4)
        return (torch.einsum("tnab,nb->tna", blended[..., :3], rest) + blended[..., 3]).numpy()


class SmplxAvatar:
    """The official SMPL-X mesh (10,475 vertices) from the smplx layer of the smplx kinematics.

    Posed on the CPU (or the kinematics' device) by smplx itself, pose blend shapes included.
    """

    name = "smplx"

    def __init__(self, kinematics: SmplxKinematics) -> None:
        self.kinematics = kinematics
        body_model = kinematics.body_model
        self.faces = np.asarray(body_model.faces, dtype=np.int32)
        parents = [int(parent) for parent in body_model.parents.tolist()]
        names = kinematics.joint_names[: len(parents)]
        dominant = body_model.lbs_weights.argmax(dim=1).cpu().numpy()  # (V,)
        (self.hand_faces, self.palm_vertices, self.hand_vertices, self.upper_body_vertices,
         self.panel_faces) = _regions(dominant, self.faces, parents, names,
                                      {"left": "left_wrist", "right": "right_wrist"}, ["left_hip", "right_hip"],
                                      ["left_knee", "right_knee"])

    def pose(self, params179: np.ndarray) -> PosedClip:
        _split(params179)  # checks the shape
        body_model = self.kinematics.body_model
        dtype, device = body_model.shapedirs.dtype, body_model.shapedirs.device
        vertices = []
        for chunk in torch.as_tensor(np.asarray(params179), dtype=dtype).split(SmplxKinematics.FRAMES_PER_CALL):
            p = {key: chunk[:, part].to(device) for key, part in SMPLX_SLICES.items()}
            zeros = torch.zeros(len(chunk), 3, dtype=dtype, device=device)
            with torch.no_grad():
                out = body_model(betas=p["smplx_shape"], global_orient=p["smplx_root_pose"],
                                 body_pose=p["smplx_body_pose"], left_hand_pose=p["smplx_lhand_pose"],
                                 right_hand_pose=p["smplx_rhand_pose"], jaw_pose=p["smplx_jaw_pose"],
                                 expression=p["smplx_expr"], leye_pose=zeros, reye_pose=zeros, transl=zeros)
            vertices.append(out.vertices.float().cpu())
        posed = torch.cat(vertices).numpy()  # (T, 10475, 3)
        count = posed.shape[1]
        # the shader skins with one identity bone; positions and normals are uploaded every frame
        skin = Skin(posed[0], rest_normals(posed[0], self.faces), np.zeros((count, 4), np.int32),
                    np.tile(np.array([1, 0, 0, 0], np.float32), (count, 1)))
        return PosedClip(skin, None, posed)

    def points(self, clip: PosedClip, vertices: np.ndarray) -> np.ndarray:
        return clip.vertices[:, vertices]


@functools.cache
def mannequin_avatar() -> MannequinAvatar:
    """One mannequin per process: loading it takes some 0.3 s."""
    return MannequinAvatar()


def build_avatar(kinematics: Kinematics | None) -> MeshAvatar:
    """The avatar that goes with the configured kinematics: SMPL-X's mesh with smplx, else the mannequin."""
    if isinstance(kinematics, SmplxKinematics):
        return SmplxAvatar(kinematics)
    return mannequin_avatar()
