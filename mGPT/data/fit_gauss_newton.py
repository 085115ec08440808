"""Levenberg-Marquardt for fit_smplx's objective, with analytic Jacobians: the fitter's default solver.

fit_smplx places the body first (L-BFGS on keyframes, from the resting start, where Gauss-Newton's long
steps often found a wrong one of several 2D-equivalent poses); `solve` then fits everything. The objective
(fit_smplx.objective) is a sum of squares, apart from the robust 2D term, which is iteratively reweighted
(weights from the pseudo-Huber's derivative at the current residuals). Each iteration:

1. Pose the model and differentiate the landmarks by hand. A point p carried by free joint f moves by
   -[p - o_f]x G_f J_r(theta_f) per unit of f's axis-angle theta_f, where o_f is the joint's place, G_f its
   global rotation and J_r SO(3)'s right Jacobian (so the pose numbers stay plain axis-angle, and the joint
   limits stay boxes). The pinhole camera maps that to pixels.
2. Sum each frame's normal equations (126 unknowns: root, ten body joints, body position, 30 finger joints)
   by chains: the body points touch only the 36 body unknowns, and a finger's points only the 18 of its arm
   and position and its own 9, so the sums are small dense products, and the system keeps an arrow shape
   (fingers never couple to each other) that is solved by the body's Schur complement. A joint limit's
   curvature is counted from LIMIT_NEAR inside it, so that steps do not cross limits the model cannot see.
3. Temporal smoothness couples the frames of a clip; it is linear in the unknowns, so the coupled system is
   solved by a few conjugate-gradient steps, preconditioned by each frame's own system.
   Marquardt's damping is per frame, and each frame keeps its step where its share of the objective (its own
   terms and the smoothness window centred on it) went down.
4. Every SHAPE_EVERY iterations the shape, shared by a signer's frames, gets its own damped step, frames held,
   and so does each signer's landmark calibration (FitSettings.mark_prior > 0): a shift of every body and face
   landmark off the model's offsets, in its joint's frame. With the frames held each landmark's shift is its
   own 3 x 3 system summed over the signer's frames.

bench/bench_fit.py compares it with L-BFGS side by side (docs/fitting.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mGPT.data.fit_smplx import (
    FINGERS,
    FLIP,
    frame_losses,
    mark_prior,
    mark_stiffness,
    objective,
    pose_state,
    project,
    robust,
    smoothness,
    stages,
)
from mGPT.data.mediapipe import LANDMARKS

if TYPE_CHECKING:
    from mGPT.data.fit_smplx import FitProblem, FitSettings, PoseModel

# the unknowns of one frame, in the order of the solver's columns
COLUMNS = {"root": slice(0, 3), "body": slice(3, 33), "translation": slice(33, 36), "hands": slice(36, 126)}
N_COLUMNS = 126
BODY_SLOTS = 11  # free joints 0..10: the root and the ten upper-body joints
LAMBDA_MIN, LAMBDA_MAX = 1e-7, 1e7
LAMBDA_START = 1e-2
DAMPING_FLOOR = 1e-2  # of the mean curvature, under Marquardt's diagonal scaling
MAX_TURN = 0.5  # radians per joint and step
LIMIT_NEAR = 0.1  # radians
CG_STEPS = 3
# choose_finger_starts: FitSettings.finger_curls are tried besides the hand the fit arrived with
FINGER_START_ITERATIONS = 4
FINGER_START_AFTER = 6  # joint iterations first: the wrists must face the hand's points before fingers are
#                         fitted alone (from the body's placement, fingers fitted alone twisted into worse basins)
FIST_BEND = (1.2, 1.6, 1.0)  # radians
SHAPE_EVERY = 3  # iterations per shape step: the shape moves little once the body is placed
PER_SIGNER = ("betas", "marks")  # unknowns shared by a signer's frames, not picked per frame


def _skew_times(vectors: Tensor, matrices: Tensor) -> Tensor:
    """[v]x M for (..., 3) vectors and (..., 3, 3) matrices: the cross product of v with each column."""
    return torch.linalg.cross(vectors[..., :, None].expand_as(matrices), matrices, dim=-2)


def take(values: Tensor, index: Tensor) -> Tensor:
    """values (N, K, ...) at `index` (any shape) along dim 1 -> (N, *index.shape, ...). The same as
    values[:, index] (a negative index counts from the end), by index_select, which a CPU runs several times
    faster than advanced indexing."""
    picked = values.index_select(1, index.reshape(-1) % values.shape[1])
    return picked.reshape(values.shape[0], *index.shape, *values.shape[2:])


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """a x b over the last axis, broadcasting (torch.linalg.cross is several times slower on small shapes)."""
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim=-1)


def right_jacobian(theta: Tensor) -> Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) J_r: R(theta + d) = R(theta) exp([J_r d]x) to first order."""
    angle2 = theta.pow(2).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    angle = angle2.sqrt()
    small = angle < 1e-4
    safe = torch.where(small, torch.ones_like(angle), angle)
    a = torch.where(small, 0.5 - angle2 / 24, (1 - torch.cos(safe)) / safe.pow(2))
    b = torch.where(small, 1 / 6 - angle2 / 120, (safe - torch.sin(safe)) / safe.pow(3))
    eye = torch.eye(3, dtype=theta.dtype, device=theta.device).expand(theta.shape[:-1] + (3, 3))
    k = _skew_times(theta, eye)  # [theta]x
    return eye - a * k + b * (k @ k)


def _slot_columns(slot: int) -> list[int]:
    """The three solver columns of free joint `slot` (0 root, 1..10 body, 11..40 fingers)."""
    start = 3 * slot if slot < BODY_SLOTS else 36 + 3 * (slot - BODY_SLOTS)
    return [start, start + 1, start + 2]


@dataclass
class Group:
    """Points whose Jacobians live on the same few free joints: a batch of G chains, M points, K joints."""

    points: Tensor  # (G, M) landmark index, or -1 for the chest joint
    slots: Tensor  # (G, K) free joints
    carried: Tensor  # (G, M, K) bool: the joint moves the point
    pixel_weight: Tensor  # (G, M) 0 where the point is counted in another group (or is not a landmark)
    columns: Tensor  # (G, 3K + 3) solver columns: the body joints', the body position's, the fingers'
    hands: bool  # the finger groups: each chain's first point is its hand's wrist, and hands have depth
    front: list[int]  # the body group: where the two wrist landmarks are among the points (the chest last)
    body_columns: int  # how many of the columns are body joints' (before the body position's three)

    @property
    def position(self) -> bool:
        """Whether the body position's three columns follow the body joints' (3 per slot, else)."""
        return self.columns.shape[1] == 3 * self.slots.shape[1] + 3


def chain_groups(model: PoseModel) -> tuple[Group, Group]:
    """The body group (body and face landmarks, both wrists, the chest joint; the 11 body joints) and the ten
    finger groups (a hand's wrist landmark and the finger's four; root, collar, shoulder, elbow, wrist and
    the finger's three joints)."""
    free_slot = {joint: slot for slot, joint in enumerate(model.free_index)}

    def carriers(joint: int) -> set[int]:
        slots = set()
        while joint >= 0:
            if joint in free_slot:
                slots.add(free_slot[joint])
            joint = model.parents[joint]
        return slots

    def point_carriers(point: int) -> set[int]:  # a landmark is rigid in its frame joint
        return carriers(model.joint_index["Spine3"]) if point < 0 else carriers(model.mark_frame[point])

    def build(chains: list[tuple[list[int], list[int], list[float]]], hands: bool) -> Group:
        on_device = lambda values: torch.tensor(values, device=model.rest.device)  # noqa: E731
        carried = [[[slot in point_carriers(p) for slot in c[1]] for p in c[0]] for c in chains]
        # the body slots' columns, the body position's, then the finger's: the arm block is one slice
        columns = [sum((_slot_columns(k) for k in c[1] if k < BODY_SLOTS), []) + [33, 34, 35]
                   + sum((_slot_columns(k) for k in c[1] if k >= BODY_SLOTS), []) for c in chains]
        front = [] if hands else [chains[0][0].index(mark) for mark in wrists]
        body_columns = 3 * sum(k < BODY_SLOTS for k in chains[0][1])
        return Group(on_device([c[0] for c in chains]), on_device([c[1] for c in chains]), on_device(carried),
                     on_device([c[2] for c in chains]), on_device(columns), hands, front, body_columns)

    mark_of = {(mark.part, mark.joint): i for i, mark in enumerate(LANDMARKS)}
    body_marks = [i for i, mark in enumerate(LANDMARKS) if mark.part in ("body", "face")]
    wrists = [mark_of["lhand", "L_Wrist"], mark_of["rhand", "R_Wrist"]]
    body = build([(body_marks + wrists + [-1], list(range(BODY_SLOTS)),
                   [1.0] * (len(body_marks) + 2) + [0.0])], hands=False)
    fingers = []
    for side, part in (("L", "lhand"), ("R", "rhand")):  # the model's order: finger g owns hand columns 9g..9g+8
        arm = [free_slot[model.joint_index[f"{side}_{name}"]] for name in ("Collar", "Shoulder", "Elbow", "Wrist")]
        for finger in FINGERS:
            names = [f"{side}_{finger}{k}" for k in (1, 2, 3)]
            marks = [mark_of[part, f"{side}_Wrist"]] + [mark_of[part, n] for n in (*names, f"{side}_{finger}Tip")]
            fingers.append((marks, [0, *arm, *(free_slot[model.joint_index[n]] for n in names)],
                            [0.0, 1.0, 1.0, 1.0, 1.0]))  # the wrist landmark counts in the body group
    return body, build(fingers, hands=True)


@dataclass
class Posed:
    """The model at one state: what the objective and the Jacobians need."""

    joints: Tensor  # (N, J, 3)
    rotations: Tensor  # (N, J, 3, 3)
    marks: Tensor  # (N, L, 3)

    def as_tuple(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.joints, self.rotations, self.marks


def _pose(model: PoseModel, problem: FitProblem, state: dict[str, Tensor]) -> Posed:
    return Posed(*pose_state(model, problem, state))


def _camera(problem: FitProblem, marks: Tensor, translation: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """-> pixels (N, L, 2), camera depth (N, L), d pixels / d camera point (N, L, 2, 3)."""
    pixels, depth = project(marks, translation, problem.focal, problem.centre)
    camera = marks * FLIP.to(marks) + translation[:, None]
    f_over_z = problem.focal[:, None] / depth  # (N, L)
    d_pixels = marks.new_zeros(marks.shape[:2] + (2, 3))
    d_pixels[..., 0, 0] = f_over_z
    d_pixels[..., 1, 1] = f_over_z
    d_pixels[..., :, 2] = -f_over_z[..., None] * camera[..., :2] / depth[..., None]
    return pixels, depth, d_pixels


def _pixel_weights(problem: FitProblem, settings: FitSettings, pixels: Tensor, stage_weight: Tensor) -> Tensor:
    """(N, L) each landmark's weight in the reweighted least squares: its stage weight times the pseudo-Huber's
    d rho / d squared at its current residual, over the data term's normaliser."""
    squared = (pixels - problem.observed).pow(2).sum(-1)  # (N, L)
    return stage_weight * 0.5 / torch.sqrt(1 + squared / settings.huber_px ** 2) / stage_weight.sum().clamp(min=1)


def _relative_depth(focal: Tensor, depth: Tensor, wrist_depth: Tensor, depth_rows: Tensor, wrist_rows: Tensor,
                    depth_in: Tensor, wrist_in: Tensor) -> tuple[Tensor, Tensor]:
    """The hand-depth term's residual (...) and rows (..., C): the fit's depth relative to the wrist, seen in
    pixels at the wrist's depth ((z - z_w) f / z_w), against the input's; `focal` broadcasts like `depth`,
    `*_rows` are d z / d unknowns."""
    rows = (focal / wrist_depth)[..., None] * depth_rows - (focal * depth / wrist_depth.pow(2))[..., None] * wrist_rows
    return (depth - wrist_depth) * focal / wrist_depth - (depth_in - wrist_in), rows


@dataclass
class Linearised:
    """What every group's rows share at one state: the camera, the robust weights, the joints' frames."""

    pixels: Tensor  # (N, L, 2)
    depth: Tensor  # (N, L) camera depth
    row_axes: Tensor  # (N, L, 3, 3): per landmark, d (pixel x, pixel y, camera depth) / d SMPL-X point
    pixel_weight: Tensor  # (N, L) landmark weight x IRLS weight / normaliser
    frames: Tensor  # (N, 41, 3, 3) each free joint's global rotation times its right Jacobian
    origins: Tensor  # (N, 41, 3) each free joint's place
    points: Tensor  # (N, L + 1, 3) the landmarks, then the chest joint


def linearise(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor],
              posed: Posed, stage_weight: Tensor) -> Linearised:
    pixels, depth, d_pixels = _camera(problem, posed.marks, state["translation"])
    flip = FLIP.to(pixels)
    # d camera depth / d point is the flipped z axis
    depth_axis = torch.zeros(3, dtype=pixels.dtype, device=pixels.device)
    depth_axis[2] = flip[2]
    row_axes = torch.cat([d_pixels * flip, depth_axis.expand(pixels.shape[:2] + (1, 3))], dim=2)
    angles = torch.cat([state["root"][:, None], state["body"], state["hands"] + model.hand_mean], dim=1)
    return Linearised(pixels, depth, row_axes, _pixel_weights(problem, settings, pixels, stage_weight),
                      take(posed.rotations, model.free_joints) @ right_jacobian(angles),
                      take(posed.joints, model.free_joints),
                      torch.cat([posed.marks, posed.joints[:, problem.chest, None]], dim=1))


def _levers(frames: Tensor, origins: Tensor) -> Tensor:
    """frames (N, G, K, 3, 3) each chain's free joints' A_k = G_k J_r(theta_k), origins (N, G, K, 3) their places
    -> (N, G, 6, 3K) each joint's A_k over [o_k]x A_k.

    A turn d of joint k moves a point p by (A_k d) x (p - o_k), which a row axis a sees as
    (p x a) . A_k d + a . [o_k]x A_k d: one row [p x a, a] (6) times this lever, shared by every point the
    joint carries, instead of one cross product per point and joint."""
    n, g_count, k_count = frames.shape[:3]
    lever = torch.cat([frames, _skew_times(origins, frames)], dim=-2)  # (N, G, K, 6, 3)
    return lever.permute(0, 1, 3, 2, 4).reshape(n, g_count, 6, 3 * k_count)


def _turn_rows(points: Tensor, axes: Tensor, levers: Tensor, carried: Tensor) -> Tensor:
    """points (N, G, M, 3) taken about the levers' origin, row axes (N, G, M, R, 3), levers (N, G, 6, 3K),
    carried (G, M, K)
    -> (N, G, M, R, 3K): d (each point's coordinate along each row axis) / d (each joint's turn)."""
    n, g_count, m_count, r_count = axes.shape[:4]
    point_rows = torch.cat([_cross(points[:, :, :, None].expand_as(axes), axes), axes], dim=-1)  # (N, G, M, R, 6)
    rows = (point_rows.reshape(n, g_count, m_count * r_count, 6) @ levers).reshape(
        n, g_count, m_count, r_count, -1, 3)
    return (rows * carried[:, :, None, :, None]).reshape(n, g_count, m_count, r_count, -1)


def _group_system(group: Group, problem: FitProblem, settings: FitSettings, lin: Linearised,
                  translation: Tensor) -> tuple[Tensor, Tensor]:
    """One group's share of every frame's normal equations: H (N, G, C, C), g (N, G, C)."""
    n = lin.pixels.shape[0]
    with_depth = problem.depth_in is not None and group.hands
    if group.hands and not with_depth:  # a chain's wrist point is there only for the depth rows (weight 0)
        group = replace(group, points=group.points[:, 1:], carried=group.carried[:, 1:],
                        pixel_weight=group.pixel_weight[:, 1:])
    g_count, m_count = group.carried.shape[:2]
    marks = group.points.clamp(min=0)  # the chest (-1) has no pixel rows: its weight is 0
    points = take(lin.points, group.points)  # (N, G, M, 3)
    # the camera-depth row only where the input has relative depth: the rest is a third less work
    axes = take(lin.row_axes[:, :, :3 if with_depth else 2], marks)  # (N, G, M, R, 3), R = 3 or 2 rows
    # points and joints about each chain's last joint, so that a finger joint's short lever is not the
    # difference of two long ones in single precision
    origins = take(lin.origins, group.slots)  # (N, G, K, 3)
    reference = origins[:, :, -1:]  # (N, G, 1, 3)
    about = points - reference  # (N, G, M, 3)
    levers = _levers(take(lin.frames, group.slots), origins - reference)  # (N, G, 6, 3K)
    rows = _turn_rows(about, axes, levers, group.carried)  # (N, G, M, R, 3K)
    if group.position:  # body position: d point / d translation = flip
        rows = torch.cat([rows[..., :group.body_columns], axes * FLIP.to(axes), rows[..., group.body_columns:]],
                         dim=-1)

    jacobians = [rows[:, :, :, :2].reshape(n, g_count, 2 * m_count, -1)]
    weights = [(take(lin.pixel_weight, marks) * group.pixel_weight)[..., None].expand(-1, -1, -1, 2).reshape(
        n, g_count, -1)]
    residuals = [take(lin.pixels - problem.observed, marks).reshape(n, g_count, -1)]
    if with_depth:
        wrist = problem.wrist_mark[marks]  # (G, M); each chain's first point is its hand's wrist
        residual, depth_rows = _relative_depth(problem.focal[:, None, None], lin.depth[:, marks], lin.depth[:, wrist],
                                               rows[:, :, :, 2], rows[:, :, :1, 2], problem.depth_in[:, marks],
                                               problem.depth_in[:, wrist])
        jacobians.append(depth_rows)
        ok = problem.depth_ok[:, marks] * group.pixel_weight
        weights.append(settings.depth * ok / problem.depth_ok.sum().clamp(min=1))
        residuals.append(residual)
    if group.front:  # the body group: wrists in front of the chest, in SMPL-X's forward z
        forward = torch.zeros(3, device=points.device)
        forward[2] = 1.0
        ends = [*group.front, m_count - 1]  # the two wrists and the chest
        moves = _turn_rows(about[:, :1, ends], forward.expand(n, 1, 3, 1, 3), levers[:, :1],
                           group.carried[:1, ends])[:, 0, :, 0]  # (N, 3, 3K)
        behind = points[:, 0, group.front, 2] - points[:, 0, -1:, 2]  # (N, 2)
        behind_j = moves[:, :2] - moves[:, 2:]
        jacobians.append(-torch.cat([behind_j, behind_j.new_zeros(n, 2, 3)], dim=-1)[:, None])
        weights.append((settings.in_front / (n * 2) * (settings.front_margin - behind > 0))[:, None])
        residuals.append(torch.relu(settings.front_margin - behind)[:, None])
    jacobian = torch.cat(jacobians, dim=2)  # (N, G, R, C)
    weight, residual = torch.cat(weights, dim=2), torch.cat(residuals, dim=2)
    weighted = jacobian * weight[..., None]
    # a transposed view would be copied inside the batched product; einsum lays it out once
    return torch.einsum("ngrc,ngrd->ngcd", weighted, jacobian), (weighted * residual[..., None]).sum(2)


# Finger group columns: root (3), arm (12), body position (3), the finger's joints (9). Its arm part lands in
# the body block at System.chain; its own part is one 9-wide finger block.
GROUP_ARM = slice(0, 18)
GROUP_FINGER = slice(18, 27)


def fingers_alone(fingers: Group) -> Group:
    """The finger groups cut to each finger's own three joints (9 columns, no arm, no body position): what a
    finger fitted with the arms held needs, at a fraction of the whole group's cost."""
    arm_slots = fingers.body_columns // 3
    return replace(fingers, slots=fingers.slots[:, arm_slots:], carried=fingers.carried[:, :, arm_slots:],
                   columns=fingers.columns[:, GROUP_FINGER], body_columns=0)


@dataclass
class System:
    """Every frame's Gauss-Newton system, kept in its arrow shape: the 36 body unknowns (root, body, position)
    couple to each of the ten fingers' 9, and fingers never couple to each other."""

    body: Tensor  # (N, 36, 36)
    body_finger: Tensor  # (N, 10, 18, 9): a finger's arm columns (`chain`) against its own
    finger: Tensor  # (N, 10, 9, 9)
    gradient: Tensor  # (N, 126) in solver columns; the objective's gradient is 2x this
    chain: Tensor  # (10, 18) each finger's arm columns in the body block

    @cached_property
    def finger_body(self) -> Tensor:
        """(N, 10, 9, 18) body_finger transposed, laid out once: conjugate gradients multiply by it at every step,
        and a transposed view would be copied each time."""
        return self.body_finger.transpose(-1, -2).contiguous()

    def diagonal(self) -> Tensor:
        n = self.body.shape[0]
        return torch.cat([self.body.diagonal(dim1=-2, dim2=-1),
                          self.finger.diagonal(dim1=-2, dim2=-1).reshape(n, 90)], dim=1)

    def multiply(self, x: Tensor) -> Tensor:
        """(N, 126) -> H x."""
        n = x.shape[0]
        body, fingers = x[:, :36], x[:, 36:].reshape(n, 10, 9)
        arms = take(body, self.chain)  # (N, 10, 18)
        out_body = (self.body @ body[..., None])[..., 0]
        out_body = out_body.index_add(1, self.chain.reshape(-1),
                                      (self.body_finger @ fingers[..., None])[..., 0].reshape(n, -1))
        out_fingers = (self.finger_body @ arms[..., None])[..., 0] + \
            (self.finger @ fingers[..., None])[..., 0]
        return torch.cat([out_body, out_fingers.reshape(n, 90)], dim=1)


def frame_system(groups: tuple[Group, Group], model: PoseModel, problem: FitProblem, settings: FitSettings,
                 state: dict[str, Tensor], posed: Posed, stage_weight: Tensor) -> System:
    """Each frame's Gauss-Newton system at `state`, smoothness left out."""
    body_group, finger_groups = groups
    n = posed.joints.shape[0]
    lin = linearise(model, problem, settings, state, posed, stage_weight)
    body_h, body_g = _group_system(body_group, problem, settings, lin, state["translation"])
    finger_h, finger_g = _group_system(finger_groups, problem, settings, lin, state["translation"])
    chain = finger_groups.columns[:, GROUP_ARM]  # (10, 18), all below 36
    hessian = body_h[:, 0].reshape(n, -1).index_add(
        1, (chain[:, :, None] * 36 + chain[:, None, :]).reshape(-1),
        finger_h[:, :, GROUP_ARM][:, :, :, GROUP_ARM].reshape(n, -1)).reshape(n, 36, 36)
    gradient = torch.cat([body_g[:, 0].index_add(1, chain.reshape(-1), finger_g[:, :, GROUP_ARM].reshape(n, -1)),
                          finger_g[:, :, GROUP_FINGER].reshape(n, 90)], dim=1)
    finger = finger_h[:, :, GROUP_FINGER][:, :, :, GROUP_FINGER]

    diagonal, box_gradient = _box_terms(model, settings, state)
    gradient = gradient + box_gradient
    return System(hessian + torch.diag_embed(diagonal[:, :36]),
                  finger_h[:, :, GROUP_ARM][:, :, :, GROUP_FINGER],
                  finger + torch.diag_embed(diagonal[:, 36:].reshape(n, 10, 9)), gradient, chain)


def _box_terms(model: PoseModel, settings: FitSettings, state: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """The joint limits and pose priors, which touch one unknown each: their diagonal and gradient, both
    (N, 126) in solver columns."""
    n = state["body"].shape[0]
    angles = torch.cat([state["body"], state["hands"] + model.hand_mean], dim=1).reshape(n, -1)  # (N, 120)
    low, high = model.low.reshape(-1), model.high.reshape(-1)
    excess = angles - torch.maximum(torch.minimum(angles, high), low)
    # a limit's curvature is counted from LIMIT_NEAR radians inside it: a step that crosses a limit the
    # quadratic model cannot see would be refused, and refused steps were most of the fit's lost iterations
    near = ((angles < low + LIMIT_NEAR) | (angles > high - LIMIT_NEAR)).to(angles.dtype)
    zeros = angles.new_zeros(n, 3)  # the root's and the body position's columns have no limits
    diagonal = settings.limits / n * torch.cat([zeros, near[:, :30], zeros, near[:, 30:]], dim=1)  # (N, 126)
    gradient = settings.limits / n * torch.cat([zeros, excess[:, :30], zeros, excess[:, 30:]], dim=1)
    diagonal[:, 3:15] += settings.body_prior / (n * 12)  # neck, collars, head near rest
    gradient[:, 3:15] += settings.body_prior / (n * 12) * state["body"][:, :4].reshape(n, 12)
    diagonal[:, COLUMNS["hands"]] += settings.hand_prior / (n * 90)
    gradient[:, COLUMNS["hands"]] += settings.hand_prior / (n * 90) * state["hands"].reshape(n, 90)
    return diagonal, gradient


class Smoothness:
    """The smoothness term's quadratic form w * L^T L over each clip's frames, per solver column."""

    def __init__(self, model: PoseModel, problem: FitProblem, settings: FitSettings):
        self.middle = problem.middle
        n, device = problem.observed.shape[0], problem.observed.device
        swing = torch.cat([model.swing[:11], torch.ones(1, device=device), model.swing[11:]])  # position: 1
        scale = settings.smooth / max(len(self.middle), 1)
        self.weight = scale * swing.repeat_interleave(3)  # (126,) in solver column order
        self.diagonal = torch.zeros(n, device=device)  # diag of L^T L: 1, 4, 1 from each window
        for offset, c in ((-1, 1.0), (0, 4.0), (1, 1.0)):
            self.diagonal.index_add_(0, self.middle + offset, torch.full((len(self.middle),), c, device=device))

    def apply(self, values: Tensor) -> Tensor:
        """(N, 126) -> w * L^T L values (N, 126)."""
        if not len(self.middle):
            return torch.zeros_like(values)
        m = self.middle
        accel = values[m + 1] - 2 * values[m] + values[m - 1]
        out = torch.zeros_like(values)
        out.index_add_(0, m - 1, accel)
        out.index_add_(0, m, -2 * accel)
        out.index_add_(0, m + 1, accel)
        return out * self.weight


def state_columns(state: dict[str, Tensor]) -> Tensor:
    """The per-frame unknowns as (N, 126) solver columns."""
    n = state["root"].shape[0]
    return torch.cat([state["root"], state["body"].reshape(n, 30), state["translation"],
                      state["hands"].reshape(n, 90)], dim=1)


class BlockInverse:
    """Each frame's own system (H + D, D diagonal) solved exactly through its arrow shape: fingers first, then
    the body's Schur complement. With fingers=False only the body block is solved (stage 1)."""

    def __init__(self, system: System, extra_diagonal: Tensor, fingers: bool):
        n = system.body.shape[0]
        self.system, self.fingers = system, fingers
        body = system.body + torch.diag_embed(extra_diagonal[:, :36])
        if fingers:
            finger = system.finger + torch.diag_embed(extra_diagonal[:, 36:].reshape(n, 10, 9))
            self.finger_inverse = _spd_inverse(finger)  # (N, 10, 9, 9)
            self.gain = system.body_finger @ self.finger_inverse  # (N, 10, 18, 9)
            chain = system.chain
            cells = (chain[:, :, None] * 36 + chain[:, None, :]).reshape(-1)
            body = body.reshape(n, -1).index_add(1, cells, -(self.gain @ system.finger_body)
                                                 .reshape(n, -1)).reshape(n, 36, 36)
        # a preconditioner needs no exact inverse: single precision, which conjugate gradients then corrects
        self.body_inverse = _spd_inverse(body, body.dtype)

    def solve(self, r: Tensor) -> Tensor:
        n = r.shape[0]
        body = r[:, :36]
        if not self.fingers:
            return torch.cat([(self.body_inverse @ body[..., None])[..., 0], torch.zeros_like(r[:, 36:])], dim=1)
        fingers = r[:, 36:].reshape(n, 10, 9)
        chain = self.system.chain
        body = body.index_add(1, chain.reshape(-1), -(self.gain @ fingers[..., None])[..., 0].reshape(n, -1))
        x_body = (self.body_inverse @ body[..., None])[..., 0]
        coupled = (self.system.finger_body @ take(x_body, chain)[..., None])[..., 0]
        x_fingers = (self.finger_inverse @ (fingers - coupled)[..., None])[..., 0]
        return torch.cat([x_body, x_fingers.reshape(n, 90)], dim=1)


def _spd_inverse(matrices: Tensor, precision: torch.dtype = torch.float64) -> Tensor:
    """Inverse of symmetric positive definite (..., k, k) blocks, factorised at `precision` after scaling each
    to a unit diagonal; a block that is not positive definite gets the inverse of its diagonal."""
    scale = matrices.diagonal(dim1=-2, dim2=-1).clamp(min=1e-12).rsqrt().to(precision)  # (..., k)
    # unit diagonals leave the factorisation only the blocks' correlations to resolve: single precision then
    # factorises the body blocks as reliably as double does unscaled
    h = matrices.to(precision) * scale[..., :, None] * scale[..., None, :]
    factor, info = torch.linalg.cholesky_ex(h)
    bad = info != 0
    if bad.any():
        h = torch.where(bad[..., None, None], torch.eye(h.shape[-1], dtype=h.dtype, device=h.device), h)
        factor, _ = torch.linalg.cholesky_ex(h)
    # L^-T L^-1 from one batched triangular solve: on a CPU, about 1.5x faster than cholesky_inverse for the
    # 36 x 36 body blocks, and as exact
    eye = torch.eye(h.shape[-1], dtype=h.dtype, device=h.device).expand_as(factor)
    factor_inverse = torch.linalg.solve_triangular(factor, eye, upper=False)
    inverse = (factor_inverse.transpose(-1, -2) @ factor_inverse) * scale[..., :, None] * scale[..., None, :]
    return inverse.to(matrices.dtype)


def _conjugate_gradients(system: System, smooth: Smoothness, damping: Tensor, active: Tensor,
                         fingers: bool) -> Tensor:
    """Solve (H + damping + smoothness) step = -gradient over the active columns, preconditioned by each
    frame's own block (BlockInverse, with smoothness's diagonal). -> step (N, 126)."""
    preconditioner = BlockInverse(system, damping + smooth.diagonal[:, None] * smooth.weight, fingers)

    def multiply(x: Tensor) -> Tensor:
        return (system.multiply(x) + damping * x + smooth.apply(x)) * active

    b = -system.gradient * active
    x = preconditioner.solve(b)
    r = b - multiply(x)
    z = preconditioner.solve(r)
    p, rz = z, (r * z).sum()
    for _ in range(CG_STEPS):
        ap = multiply(p)
        alpha = rz / (p * ap).sum().clamp(min=1e-30)
        x = x + alpha * p
        r = r - alpha * ap
        z = preconditioner.solve(r)
        rz_next = (r * z).sum()
        p = z + (rz_next / rz.clamp(min=1e-30)) * p
        rz = rz_next
    return x


def _moved(state: dict[str, Tensor], step: Tensor) -> dict[str, Tensor]:
    """The state after `step`, each joint turned at most MAX_TURN radians, where the linear model is still
    fair. (Clamping to the joint limits here instead of leaving them to their penalty bent the steps and
    stalled the fit.)"""
    n = step.shape[0]
    moved = dict(state)
    for name in ("root", "body", "hands"):
        delta = step[:, COLUMNS[name]].reshape(state[name].shape)
        delta = delta * (MAX_TURN / delta.norm(dim=-1, keepdim=True).clamp(min=MAX_TURN))
        moved[name] = state[name] + delta
    moved["translation"] = state["translation"] + step[:, COLUMNS["translation"]].reshape(n, 3)
    return moved


def _per(index: Tensor, values: Tensor, count: int) -> Tensor:
    return values.new_zeros(count).index_add_(0, index, values)


def per_frame_losses(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor],
                     posed: Posed, stage_weight: Tensor) -> Tensor:
    """(N,) the objective's share of each frame: its own terms and the smoothness window centred on it (the
    shape prior left out)."""
    frames = frame_losses(model, problem, settings, state, stage_weight, posed.as_tuple())
    if len(problem.middle):
        frames = frames.index_add(0, problem.middle, smoothness(model, problem, settings, state))
    return frames


def _pick(keep: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(keep.reshape(-1, *([1] * (new.dim() - 1))), new, old)


def _shape_step(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor],
                posed: Posed, stage_weight: Tensor, damping: Tensor) -> tuple[dict[str, Tensor], Posed, Tensor]:
    """One damped Gauss-Newton step of each signer's betas with the frames held, kept per signer where it
    lowered that signer's loss. -> state, posed, which signers moved."""
    n = posed.joints.shape[0]
    signer, signers = problem.signer_index, state["betas"].shape[0]
    joints_b = model.shape_jacobian(posed.rotations)  # (N, J, 3, 10)
    camera_b = joints_b[:, model.mark_joint] * FLIP.to(joints_b)[:, None]  # offsets turn, betas only move
    pixels, depth, d_pixels = _camera(problem, posed.marks, state["translation"])
    rows = [(d_pixels @ camera_b).reshape(n, -1, 10)]
    weights = [_pixel_weights(problem, settings, pixels, stage_weight)[..., None].expand(-1, -1, 2).reshape(n, -1)]
    residuals = [(pixels - problem.observed).reshape(n, -1)]
    if problem.depth_in is not None:
        wrist = problem.wrist_mark
        residual, depth_rows = _relative_depth(problem.focal[:, None], depth, depth[:, wrist], camera_b[:, :, 2],
                                               camera_b[:, wrist, 2], problem.depth_in, problem.depth_in[:, wrist])
        rows.append(depth_rows)
        weights.append(settings.depth * problem.depth_ok / problem.depth_ok.sum().clamp(min=1))
        residuals.append(residual)
    behind = posed.joints[:, list(problem.wrists), 2] - posed.joints[:, problem.chest, 2, None]
    rows.append(-(joints_b[:, list(problem.wrists), 2] - joints_b[:, problem.chest, 2, None]))
    weights.append(settings.in_front / (n * 2) * (settings.front_margin - behind > 0))
    residuals.append(torch.relu(settings.front_margin - behind))
    jacobian, weight, residual = torch.cat(rows, 1), torch.cat(weights, 1), torch.cat(residuals, 1)
    weighted = jacobian * weight[..., None]
    prior = settings.shape_prior / (signers * 10)
    hessian = torch.zeros(signers, 10, 10, device=jacobian.device).index_add_(
        0, signer, weighted.transpose(1, 2) @ jacobian) + prior * torch.eye(10, device=jacobian.device)
    gradient = torch.zeros(signers, 10, device=jacobian.device).index_add_(
        0, signer, (weighted * residual[..., None]).sum(1)) + prior * state["betas"]
    step = _damped_step(hessian, gradient, damping)
    return _keep_better_signers(model, problem, settings, state, posed, stage_weight, "betas",
                                state["betas"] + step, lambda betas: prior * betas.pow(2).sum(1))


def _damped_step(hessian: Tensor, gradient: Tensor, damping: Tensor) -> Tensor:
    """Marquardt's step of signer systems H (S, ..., k, k), g (S, ..., k), damping (S,): -(H + D)^-1 g, D the
    damped, floored diagonal of H as the frames' steps have it."""
    scale = hessian.diagonal(dim1=-2, dim2=-1)  # (S, ..., k)
    per_signer = damping.reshape(-1, *[1] * (scale.dim() - 1))
    system = hessian + torch.diag_embed(per_signer * (scale + DAMPING_FLOOR * scale.mean(-1, True)))
    return -(_spd_inverse(system) @ gradient[..., None])[..., 0]


def _keep_better_signers(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor],
                         posed: Posed, stage_weight: Tensor, key: str, moved: Tensor,
                         prior: Callable[[Tensor], Tensor]) -> tuple[dict[str, Tensor], Posed, Tensor]:
    """state[key], a per-signer unknown, moved to `moved` for each signer whose loss went down (its frames'
    terms plus prior(value), (S,)). -> state, posed, which signers moved."""
    signer, signers = problem.signer_index, state[key].shape[0]

    def signer_loss(candidate: dict[str, Tensor], candidate_posed: Posed) -> Tensor:
        frames = frame_losses(model, problem, settings, candidate, stage_weight, candidate_posed.as_tuple())
        return _per(signer, frames, signers) + prior(candidate[key])

    candidate = dict(state, **{key: moved})
    candidate_posed = _pose(model, problem, candidate)
    better = signer_loss(candidate, candidate_posed) < signer_loss(state, posed)
    posed = Posed(*(_pick(better[signer], new, old) for new, old in zip(candidate_posed.as_tuple(),
                                                                        posed.as_tuple(), strict=True)))
    return dict(state, **{key: _pick(better, moved, state[key])}), posed, better


def marks_system(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor],
                 posed: Posed, stage_weight: Tensor) -> tuple[Tensor, Tensor]:
    """The Gauss-Newton system of the signers' landmark shifts with the frames held: H (S, L, 3, 3) and g
    (S, L, 3), half the objective's gradient, as frame_system's."""
    signer, signers = problem.signer_index, state["marks"].shape[0]
    pixels, _, d_pixels = _camera(problem, posed.marks, state["translation"])  # d_pixels (N, L, 2, 3)
    frames = posed.rotations[:, model.mark_frame]  # (N, L, 3, 3): a shift turns with its landmark's frame
    rows = d_pixels @ (FLIP.to(frames)[:, None] * frames)  # (N, L, 2, 3) d pixels / d shift
    weight = _pixel_weights(problem, settings, pixels, stage_weight) * problem.calibrated  # (N, L)
    weighted = rows * weight[..., None, None]
    prior = mark_stiffness(problem, settings, signers)
    hessian = rows.new_zeros(signers, rows.shape[1], 3, 3).index_add_(
        0, signer, weighted.transpose(-1, -2) @ rows) + prior * torch.eye(3, device=rows.device)  # (S, L, 3, 3)
    gradient = rows.new_zeros(signers, rows.shape[1], 3).index_add_(
        0, signer, (weighted * (pixels - problem.observed)[..., None]).sum(2)) + prior * state["marks"]
    return hessian, gradient


def _marks_step(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor],
                posed: Posed, stage_weight: Tensor, damping: Tensor) -> tuple[dict[str, Tensor], Posed, Tensor]:
    """One damped Gauss-Newton step of each signer's landmark shifts (S, L, 3) with the frames held, kept per
    signer where it lowered that signer's loss. -> state, posed, which signers moved."""
    hessian, gradient = marks_system(model, problem, settings, state, posed, stage_weight)
    step = _damped_step(hessian, gradient, damping) * problem.calibrated[:, None]
    return _keep_better_signers(model, problem, settings, state, posed, stage_weight, "marks",
                                state["marks"] + step, lambda marks: mark_prior(problem, settings, marks))


def _damp(damping: Tensor, better: Tensor) -> Tensor:
    return torch.where(better, damping * 0.3, damping * 10).clamp(LAMBDA_MIN, LAMBDA_MAX)


def finger_losses(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor],
                  posed: Posed, fingers: Group) -> Tensor:
    """(N, 10) the objective's terms that one finger alone moves, with the arms held: its four points' robust
    2D error (and relative depth), and its three joints' limits and prior, at frame_losses's weights."""
    n = posed.marks.shape[0]
    pixels, depth = project(posed.marks, state["translation"], problem.focal, problem.centre)
    squared = (pixels - problem.observed).pow(2).sum(-1)  # (N, L)
    per_mark = problem.weight * robust(squared, settings.huber_px) / problem.weight.sum().clamp(min=1)
    if problem.depth_in is not None:
        wrist = problem.wrist_mark
        wrist_depth = depth[:, wrist]
        residual = (depth - wrist_depth) * problem.focal[:, None] / wrist_depth - (
            problem.depth_in - problem.depth_in[:, wrist])  # as _relative_depth's
        per_mark = per_mark + settings.depth * residual.pow(2) * problem.depth_ok / problem.depth_ok.sum().clamp(min=1)
    loss = (per_mark[:, fingers.points.clamp(min=0)] * fingers.pixel_weight).sum(-1)  # (N, 10)
    angles = state["hands"] + model.hand_mean  # (N, 30, 3), finger g owns joints 3g..3g+2
    excess = angles - torch.maximum(torch.minimum(angles, model.high[10:]), model.low[10:])
    loss = loss + settings.limits / n * excess.pow(2).reshape(n, 10, 9).sum(-1)
    return loss + settings.hand_prior / (n * 90) * state["hands"].pow(2).reshape(n, 10, 9).sum(-1)


def curled_hands(model: PoseModel, curl: float) -> Tensor:
    """(30, 3) hand pose numbers of a hand whose four fingers bend `curl` times FIST_BEND (0: the mean hand)."""
    hands = torch.zeros(30, 3, device=model.hand_mean.device)
    for k, name in enumerate(model.free[BODY_SLOTS:]):
        finger = name[2:-1]
        if finger != "Thumb":
            bend = curl * FIST_BEND[int(name[-1]) - 1]
            # a finger bends about its z axis, negative on the left hand, positive on the right
            hands[k, 2] = -bend if name.startswith("L_") else bend
    return torch.where(hands != 0, hands - model.hand_mean, torch.zeros_like(hands))


def choose_finger_starts(model: PoseModel, problem: FitProblem, settings: FitSettings, state: dict[str, Tensor],
                         stage_weight: Tensor, groups: tuple[Group, Group]) -> Tensor:
    """Hands (N, 30, 3) to start the joint fit from: each finger of each frame fitted alone, arms held, for
    FINGER_START_ITERATIONS damped Gauss-Newton steps from the hand the fit arrived with and from a hand
    curled by each of settings.finger_curls, and the start that ends lowest kept. A finger's 2D points leave
    its bend open to more than one basin: from the mean hand, a fist often ended with straight fingers
    twisted sideways."""
    _, fingers = groups
    alone = fingers_alone(fingers)
    n, device = state["hands"].shape[0], state["hands"].device
    best_hands, best_loss = state["hands"], None
    for curl in (None, *settings.finger_curls):
        hands = (state["hands"] if curl is None else curled_hands(model, curl).expand(n, 30, 3)).clone()
        current = dict(state, hands=hands)
        posed = _pose(model, problem, current)
        loss = finger_losses(model, problem, settings, current, posed, fingers)
        damping = torch.full((n, 10), LAMBDA_START, device=device)
        for _ in range(FINGER_START_ITERATIONS):
            lin = linearise(model, problem, settings, current, posed, stage_weight)
            finger_h, finger_g = _group_system(alone, problem, settings, lin, current["translation"])
            box_diagonal, box_gradient = _box_terms(model, settings, current)
            hessian = finger_h + torch.diag_embed(box_diagonal[:, 36:].reshape(n, 10, 9))  # (N, 10, 9, 9)
            gradient = finger_g + box_gradient[:, 36:].reshape(n, 10, 9)
            scale = hessian.diagonal(dim1=-2, dim2=-1)
            damped = hessian + torch.diag_embed(damping[..., None] * (scale + DAMPING_FLOOR * scale.mean(-1, True)))
            step = -(_spd_inverse(damped) @ gradient[..., None])[..., 0].reshape(n, 30, 3)
            step = step * (MAX_TURN / step.norm(dim=-1, keepdim=True).clamp(min=MAX_TURN))
            candidate = dict(current, hands=current["hands"] + step)
            candidate_posed = _pose(model, problem, candidate)
            candidate_loss = finger_losses(model, problem, settings, candidate, candidate_posed, fingers)
            better = torch.isfinite(candidate_loss) & (candidate_loss < loss)  # (N, 10)
            damping = _damp(damping, better)
            keep = better.repeat_interleave(3, dim=1)[..., None]  # (N, 30, 1)
            current = dict(current, hands=torch.where(keep, candidate["hands"], current["hands"]))
            loss = torch.where(better, candidate_loss, loss)
            posed = _pose(model, problem, current)
        if best_loss is None:
            best_hands, best_loss = current["hands"], loss
        else:
            better = loss < best_loss
            best_hands = torch.where(better.repeat_interleave(3, dim=1)[..., None], current["hands"], best_hands)
            best_loss = torch.where(better, loss, best_loss)
    return best_hands


@torch.no_grad()
def solve(model: PoseModel, problem: FitProblem, settings: FitSettings, trace: list | None = None,
          ) -> dict[str, Tensor]:
    """Fit `problem` in fit_smplx.stages's two stages; -> the fitted unknowns (see FitProblem.start)."""
    groups = chain_groups(model)
    smooth = Smoothness(model, problem, settings)
    state = {key: value.clone() for key, value in problem.start.items()}
    n, device = problem.observed.shape[0], problem.observed.device
    frame_damping = torch.full((n,), LAMBDA_START, device=device)
    shape_damping = torch.full((state["betas"].shape[0],), LAMBDA_START, device=device)
    marks_damping = shape_damping.clone()
    if settings.mark_prior > 0:
        state["marks"] = torch.zeros(state["betas"].shape[0], len(LANDMARKS), 3, device=device)
    for names, stage_weight, steps in stages(problem, settings):
        active = torch.zeros(N_COLUMNS, dtype=torch.bool, device=device)
        for name in names:
            if name in COLUMNS:
                active[COLUMNS[name]] = True
        fingers = "hands" in names
        posed = _pose(model, problem, state)
        loss = per_frame_losses(model, problem, settings, state, posed, stage_weight)
        for iteration in range(steps):
            if fingers and settings.finger_curls and iteration == FINGER_START_AFTER:
                state = dict(state, hands=choose_finger_starts(model, problem, settings, state, stage_weight, groups))
                posed = _pose(model, problem, state)
                loss = per_frame_losses(model, problem, settings, state, posed, stage_weight)
            system = frame_system(groups, model, problem, settings, state, posed, stage_weight)
            system.gradient = system.gradient + smooth.apply(state_columns(state))
            scale = system.diagonal()
            damping = frame_damping[:, None] * (scale + DAMPING_FLOOR * scale.mean(-1, True))
            step = _conjugate_gradients(system, smooth, damping, active, fingers)
            candidate = _moved(state, step)
            candidate_posed = _pose(model, problem, candidate)
            candidate_loss = per_frame_losses(model, problem, settings, candidate, candidate_posed, stage_weight)
            better = torch.isfinite(candidate_loss) & (candidate_loss < loss)
            frame_damping = _damp(frame_damping, better)
            state = {key: value if key in PER_SIGNER else _pick(better, candidate[key], value)
                     for key, value in state.items()}
            posed = Posed(*(_pick(better, new, old) for new, old in zip(candidate_posed.as_tuple(),
                                                                         posed.as_tuple(), strict=True)))
            if "betas" in names and iteration % SHAPE_EVERY == 0:
                state, posed, shape_better = _shape_step(model, problem, settings, state, posed, stage_weight,
                                                         shape_damping)
                shape_damping = _damp(shape_damping, shape_better)
                if "marks" in state:
                    state, posed, marks_better = _marks_step(model, problem, settings, state, posed, stage_weight,
                                                             marks_damping)
                    marks_damping = _damp(marks_damping, marks_better)
            # neighbours moved too: each frame's share is measured afresh
            loss = per_frame_losses(model, problem, settings, state, posed, stage_weight)
            if trace is not None:
                trace.append(float(objective(model, problem, settings, state, stage_weight)))
    return state
