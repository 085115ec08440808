"""The mesh avatar: skinning against mannequin-x, pixels that change where the pose changes, the mp4
on disk, the SMPL-X mesh on a synthetic model, and the fallback to the skeleton without OpenGL."""

import dataclasses

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from mannequin import Mannequin

from mGPT.data.features import features_to_smplx
from mGPT.kinematics import build_kinematics
from mGPT.render import mesh_renderer, video
from mGPT.render.avatar import SmplxAvatar, build_avatar, mannequin_avatar
from mGPT.render.mesh_renderer import MeshRenderer, closed_and_consistent, signed_volume
from mGPT.render.mesh_video import iter_mesh_frames
from mGPT.render.video import render_video, render_video_frames
from tests.test_kinematics import JOINT_VERTEX_START, write_fake_smplx

SIZE = (160, 160)  # (W, H) of a panel; the hand insets add 80 rows under it
CAPTION = "لغة الإشارة السعودية"


def rest_params(frames: int = 1) -> np.ndarray:
    return features_to_smplx(np.zeros((frames, 133), np.float32))  # (T, 179), SOKE's fixed shape


def set_joint(params: np.ndarray, joint: int, axis_angle) -> np.ndarray:
    """Set the body pose of SMPL-X joint `joint` (1..21) in every frame."""
    params[:, 3 + 3 * (joint - 1): 3 + 3 * joint] = axis_angle
    return params


def arms_down() -> np.ndarray:
    params = rest_params()
    set_joint(params, 16, [0.0, 0.0, -1.2])  # left shoulder
    return set_joint(params, 17, [0.0, 0.0, 1.2])  # right shoulder


def signing() -> np.ndarray:
    """Forearms forward and up, hands in front of the chest."""
    params = rest_params()
    set_joint(params, 16, [0.0, -0.5, -1.1])
    set_joint(params, 17, [0.0, 0.5, 1.1])
    set_joint(params, 18, [0.0, -2.0, 0.0])  # left elbow
    return set_joint(params, 19, [0.0, 2.0, 0.0])  # right elbow


@pytest.fixture(scope="module")
def avatar():
    return mannequin_avatar()


def frames_of(avatar, *clips, **kwargs) -> np.ndarray:
    return np.stack(list(iter_mesh_frames(avatar, [avatar.pose(clip) for clip in clips], size=SIZE, **kwargs)))


def test_skinning_matches_mannequin_x(avatar) -> None:
    rng = np.random.default_rng(0)
    params = features_to_smplx(rng.normal(scale=0.3, size=(3, 133)).astype(np.float32))
    params[:, :3] = rng.normal(scale=0.3, size=(3, 3))  # the root pose too
    posed = avatar.points(avatar.pose(params), np.arange(avatar.mannequin.num_vertices))  # (3, V, 3)
    reference = Mannequin("wooden", flat_hand_mean=False)  # zero hand numbers: the relaxed mean hand
    reference.reshape(params[0, -20:-10])
    for frame, p in zip(posed, params, strict=True):
        pose = {"body_pose": p[3:66].reshape(21, 3), "hand_pose": p[66:156].reshape(30, 3),
                "head_pose": np.zeros((3, 3)), "pelvis_rotation": p[:3]}
        np.testing.assert_allclose(frame, reference.vertices(pose), atol=2e-5)


def test_rendering_is_deterministic(avatar) -> None:
    clip = np.concatenate([signing(), arms_down()])
    first, second = frames_of(avatar, clip, caption=CAPTION), frames_of(avatar, clip, caption=CAPTION)
    assert first.shape == (2, SIZE[1] * 3 // 2, SIZE[0], 3) and first.dtype == np.uint8  # insets: half a panel
    np.testing.assert_array_equal(first, second)
    assert (first[0] != first[1]).any()


def test_raising_one_arm_changes_only_that_side(avatar) -> None:
    raised = set_joint(arms_down(), 17, [0.0, 0.0, -0.4])  # the right arm up and out
    frames = frames_of(avatar, np.concatenate([arms_down(), raised]), hand_insets=False)  # (2, H, W, 3)
    changed = (frames[0] != frames[1]).any(axis=-1)  # (H, W)
    # the front view faces the signer: their right arm is on the viewer's left of the (symmetric) body
    figure_columns = np.flatnonzero((frames[0] < 250).any(axis=(0, 2)))
    midline = (figure_columns.min() + figure_columns.max()) / 2
    changed_columns = np.flatnonzero(changed.any(axis=0))
    assert changed.sum() > 200
    assert changed_columns.max() < midline - 5, (changed_columns.max(), midline)


def test_clenched_and_open_hands_differ_in_their_insets(avatar) -> None:
    clenched = signing()
    clenched[:, 111:156] = np.tile([0.0, 0.0, 1.2], 15)  # right hand: every finger joint curled
    frames = frames_of(avatar, np.concatenate([signing(), clenched]))
    changed = (frames[0] != frames[1]).any(axis=-1)
    insets = changed[SIZE[1]:]
    right_inset, left_inset = insets[:, : SIZE[0] // 2], insets[:, SIZE[0] // 2:]
    assert not left_inset.any()
    assert right_inset.sum() > 2 * changed[: SIZE[1]].sum() > 0  # the same hand, drawn bigger


TETRAHEDRON = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
OUTWARD_FACES = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])  # counter-clockwise seen from outside


def test_only_closed_outward_meshes_have_their_back_faces_dropped() -> None:
    assert closed_and_consistent(OUTWARD_FACES)
    np.testing.assert_allclose(signed_volume(TETRAHEDRON, OUTWARD_FACES), 1 / 6)
    assert closed_and_consistent(OUTWARD_FACES[:, ::-1])  # wound inwards: closed, but its volume is negative
    np.testing.assert_allclose(signed_volume(TETRAHEDRON, OUTWARD_FACES[:, ::-1]), -1 / 6)
    one_flipped = OUTWARD_FACES.copy()
    one_flipped[0] = one_flipped[0, ::-1]
    assert not closed_and_consistent(one_flipped)
    assert not closed_and_consistent(OUTWARD_FACES[:3])  # a hole
    assert not closed_and_consistent(np.zeros((0, 3), np.int64))


def test_culling_the_mannequins_back_faces_keeps_its_pixels(avatar, monkeypatch) -> None:
    renderer = MeshRenderer(avatar)
    assert renderer.closed  # mannequin-x's mesh is closed and wound outwards: its back faces are culled
    clips = [avatar.pose(signing()), avatar.pose(set_joint(signing(), 17, [0.3, 0.2, 1.0]))]

    def frames(view: str) -> np.ndarray:
        return np.stack(list(iter_mesh_frames(avatar, clips, size=SIZE, renderer=renderer, view=view)))

    culled = {view: frames(view) for view in ("front", "side")}
    load = renderer.load
    monkeypatch.setattr(renderer, "load", lambda skin: dataclasses.replace(load(skin), cull_back_faces=False))
    for view, culled_frames in culled.items():
        drawn = frames(view)
        differ = (culled_frames != drawn).any(axis=-1)  # (T, H, W): only rasterisation ties at silhouettes
        assert (drawn < 250).any(axis=-1).sum() > 1000  # the figure is there
        assert differ.sum() <= 20, (view, int(differ.sum()))
    renderer.release()


def test_mp4_has_the_clips_frames_and_fps(tmp_path) -> None:
    kinematics = build_kinematics()
    params = np.repeat(signing(), 7, axis=0)
    params[:, 3 * 17: 3 * 18] += np.linspace(0, 0.5, 7)[:, None]  # something moves
    path = render_video(params, tmp_path / "clip.mp4", kinematics=kinematics, caption=CAPTION,
                        reference_params=params[:5], fps=12, size=SIZE)
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == 7 and frames.shape[2] == 2 * SIZE[0]
    assert iio.immeta(path)["fps"] == 12


def test_without_gl_the_skeleton_is_drawn_and_said_once(monkeypatch, capsys) -> None:
    def no_gl():
        raise mesh_renderer.GLUnavailable("OSError: libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(mesh_renderer, "create_context", no_gl)
    monkeypatch.setattr(video, "_GL_FAILURE", [])
    monkeypatch.setattr(video, "_MANNEQUIN_MESH", [])
    kinematics = build_kinematics()
    params = np.concatenate([arms_down(), signing()])
    mesh = render_video_frames(params, kinematics=kinematics, caption=CAPTION, avatar="mesh", size=SIZE)
    again = render_video_frames(params, kinematics=kinematics, avatar="mesh", size=SIZE)
    skeleton = render_video_frames(params, kinematics=kinematics, caption=CAPTION, avatar="skeleton", size=SIZE)
    np.testing.assert_array_equal(mesh, skeleton)
    assert again.shape == skeleton.shape
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "libEGL.so.1" in lines[0] and "drawing the skeleton instead" in lines[0]


def test_unknown_avatar_is_refused() -> None:
    with pytest.raises(ValueError, match="RENDER.AVATAR must be one of"):
        render_video_frames(rest_params(), kinematics=build_kinematics(), avatar="cartoon")


# --- the SMPL-X mesh, on a synthetic model whose bones are thin ribbons --------------------------------

RIBBON_START = 10000  # vertex 10000 + j sits beside joint j, skinned to it


def write_ribbon_smplx(folder, skeleton) -> None:
    """test_kinematics' synthetic SMPLX_NEUTRAL.npz, with each bone drawn as a triangle skinned to it."""
    write_fake_smplx(folder, skeleton)
    path = folder / "SMPLX_NEUTRAL.npz"
    model = dict(np.load(path))
    parents = model["kintree_table"][0].astype(np.int64)
    weights, v_template = model["weights"], model["v_template"]
    faces = []
    for joint in range(1, 55):
        weights[JOINT_VERTEX_START + joint] = np.eye(55)[joint]
        v_template[RIBBON_START + joint] = v_template[JOINT_VERTEX_START + joint] + [0.0, 0.0, 0.03]
        weights[RIBBON_START + joint] = np.eye(55)[joint]
        faces.append([JOINT_VERTEX_START + parents[joint], JOINT_VERTEX_START + joint, RIBBON_START + joint])
    weights[JOINT_VERTEX_START] = np.eye(55)[0]
    model.update(f=np.array(faces), weights=weights, v_template=v_template)
    np.savez(path, **model)


@pytest.mark.slow  # writing and loading a full-size SMPL-X model file takes some 8 s
def test_smplx_mesh_is_posed_by_the_smplx_layer_and_rendered(tmp_path) -> None:
    write_ribbon_smplx(tmp_path / "smplx", build_kinematics())
    kinematics = build_kinematics("smplx", str(tmp_path))
    avatar = build_avatar(kinematics)
    assert isinstance(avatar, SmplxAvatar) and len(avatar.faces) == 54
    assert len(avatar.hand_faces["left"]) == len(avatar.hand_faces["right"]) == 15  # one per finger joint
    params = np.concatenate([arms_down(), set_joint(arms_down(), 16, [0.0, 0.0, 0.4])])  # left arm up
    posed = avatar.pose(params).vertices  # (2, 10475, 3)
    # vertex 10400 + j rides on joint j alone, so the smplx layer must put it where the kinematics puts j
    joints = kinematics(torch.as_tensor(params)).numpy()  # (2, 70, 3)
    np.testing.assert_allclose(posed[:, JOINT_VERTEX_START: JOINT_VERTEX_START + 55], joints[:, :55], atol=1e-5)
    assert np.abs(posed[1] - posed[0]).max() > 0.1  # the raised arm moved

    frames = render_video_frames(params, kinematics=kinematics, size=SIZE)
    assert frames.shape[0] == 2
    changed = (frames[0] != frames[1]).any(axis=-1)[: SIZE[1]]  # the body panel
    figure_columns = np.flatnonzero((frames[0, : SIZE[1]] < 250).any(axis=(0, 2)))
    midline = (figure_columns.min() + figure_columns.max()) / 2
    changed_columns = np.flatnonzero(changed.any(axis=0))
    assert changed.sum() > 20 and changed_columns.min() > midline + 2  # the signer's left: the viewer's right
