"""MediaPipe landmarks as SaSOKE reads them: the Isharah 86-point layout, and the SMPL-X points they stand for.

Every input (the Isharah pose pickle, a `.pose` file) is brought into the Isharah layout (SPEC 9):

    0-20   right hand, 21 MediaPipe hand landmarks     21-41  left hand
    42-60  19 lip points (FaceMesh LIP_FACEMESH)       61-85  MediaPipe Pose landmarks 0..24

"Left" and "right" are the signer's. MediaPipe landmarks are not SMPL-X joints; `LANDMARKS` says which
SMPL-X point each fitted landmark stands for (see mGPT.data.fit_smplx for how the difference is handled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_POINTS = 86
RIGHT_HAND = slice(0, 21)
LEFT_HAND = slice(21, 42)
LIPS = slice(42, 61)
POSE = slice(61, 86)
POSE_POINTS = 25  # Pose landmarks 0..24 (the legs are dropped)
LIP_FACEMESH = (0, 17, 37, 39, 40, 61, 84, 91, 146, 181, 185, 267, 269, 270, 291, 314, 321, 375, 405)

# MediaPipe hand landmark -> SMPL-X finger joint (finger1/2/3 ~ MCP/PIP/DIP; thumb1/2/3 ~ CMC/MCP/IP).
# Tips (4, 8, 12, 16, 20) are surface points: the fitter's tip model stands in for the missing joint.
_HAND_JOINTS = {0: "Wrist", 1: "Thumb1", 2: "Thumb2", 3: "Thumb3", 4: "ThumbTip",
                5: "Index1", 6: "Index2", 7: "Index3", 8: "IndexTip",
                9: "Middle1", 10: "Middle2", 11: "Middle3", 12: "MiddleTip",
                13: "Ring1", 14: "Ring2", 15: "Ring3", 16: "RingTip",
                17: "Pinky1", 18: "Pinky2", 19: "Pinky3", 20: "PinkyTip"}


@dataclass(frozen=True)
class Landmark:
    """One fitted MediaPipe point: the skeleton point `joint` plus `offset` (metres, in that joint's frame)."""

    index: int  # in the 86-point layout
    joint: str  # skeleton joint name (or <side>_<Finger>Tip)
    offset: tuple[float, float, float]
    weight: float
    part: str  # "body", "lhand", "rhand", "face"
    frame: str | None = None  # the joint whose rotation carries the offset; None: `joint` itself


def _landmarks() -> list[Landmark]:
    marks = []
    for side, block in (("R", RIGHT_HAND), ("L", LEFT_HAND)):
        for point, name in _HAND_JOINTS.items():
            marks.append(Landmark(block.start + point, f"{side}_{name}", (0.0, 0.0, 0.0), 1.0,
                                  "rhand" if side == "R" else "lhand"))
    pose = POSE.start
    # Face points ride on the head joint (the skull centre): fixed offsets of an average SMPL-X head.
    # SMPL-X's +x is the signer's left, +y up, +z forward.
    face = {0: (0.0, -0.01, 0.105), 2: (0.032, 0.025, 0.085), 5: (-0.032, 0.025, 0.085),
            7: (0.075, 0.0, 0.0), 8: (-0.075, 0.0, 0.0), 9: (0.024, -0.045, 0.085), 10: (-0.024, -0.045, 0.085)}
    for point, offset in face.items():
        marks.append(Landmark(pose + point, "Head", offset, 0.5, "face"))
    # The shoulder landmark sits on the acromion, above and outside the joint centre.
    marks.append(Landmark(pose + 11, "L_Shoulder", (0.02, 0.04, 0.0), 1.0, "body", "L_Collar"))
    marks.append(Landmark(pose + 12, "R_Shoulder", (-0.02, 0.04, 0.0), 1.0, "body", "R_Collar"))
    marks.append(Landmark(pose + 13, "L_Elbow", (0.0, 0.0, 0.0), 1.0, "body"))
    marks.append(Landmark(pose + 14, "R_Elbow", (0.0, 0.0, 0.0), 1.0, "body"))
    marks.append(Landmark(pose + 15, "L_Wrist", (0.0, 0.0, 0.0), 0.5, "body"))  # the hand's wrist is better
    marks.append(Landmark(pose + 16, "R_Wrist", (0.0, 0.0, 0.0), 0.5, "body"))
    # MediaPipe's hips sit wider than SMPL-X's hip joints; often out of a phone's frame anyway.
    marks.append(Landmark(pose + 23, "L_Hip", (0.03, 0.0, 0.0), 0.3, "body", "Pelvis"))
    marks.append(Landmark(pose + 24, "R_Hip", (-0.03, 0.0, 0.0), 0.3, "body", "Pelvis"))
    return marks


LANDMARKS = _landmarks()
FITTED_INDEX = np.array([mark.index for mark in LANDMARKS])  # (L,) into the 86 points
