"""Forward kinematics: the skeleton backend against mannequin-x's own numpy FK, and the smplx backend
loaded from a synthetic SMPLX_NEUTRAL.npz built so that it shares the skeleton's rest joints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mannequin import Mannequin
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from mGPT.errors import ConfigError
from mGPT.kinematics import build_kinematics, smplx_model_file

HELPERS = [22, 23]  # mannequin's zero-length L_Hand / R_Hand joints


def random_params(frames: int, betas: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    params = rng.normal(scale=0.4, size=(frames, 179))
    params[:, 159:169] = betas
    return params


def mannequin_joints(params: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(T, 179) -> (T, 52, 3) with mannequin-x's numpy FK (root pose = rotation about the pelvis)."""
    mannequin = Mannequin("convex", shape=betas)
    out = []
    for frame in params:
        pose = mannequin.rest_pose(dtype=np.float64)
        pose["shape"] = betas
        pose["pelvis_rotation"] = frame[0:3]
        pose["body_pose"] = frame[3:66].reshape(21, 3)
        pose["hand_pose"] = frame[66:156].reshape(30, 3)
        positions = mannequin.joint_transforms(pose)[:, :3, 3]  # (54, 3)
        out.append(np.delete(positions, HELPERS, axis=0))
    return np.stack(out)


@pytest.fixture(scope="module")
def skeleton():
    return build_kinematics("skeleton")


def test_skeleton_rest_pose_matches_mannequin(skeleton):
    betas = np.random.default_rng(0).normal(size=10)
    params = np.zeros((1, 179))
    params[:, 159:169] = betas
    joints = skeleton(torch.as_tensor(params)).numpy()
    np.testing.assert_allclose(joints, mannequin_joints(params, betas), atol=1e-5)
    # zero hand numbers are SMPL-X's relaxed mean hand, not a flat hand: fingertips leave the palm plane
    flat = params.copy()
    flat[:, 66:156] = -skeleton.hand_mean.numpy()
    assert np.abs(skeleton(torch.as_tensor(flat)).numpy() - joints)[0, 22:].max() > 0.01


def test_skeleton_random_pose_matches_mannequin(skeleton):
    betas = np.random.default_rng(1).normal(size=10)
    params = random_params(5, betas, seed=2)
    joints = skeleton(torch.as_tensor(params)).numpy()
    np.testing.assert_allclose(joints, mannequin_joints(params, betas), atol=1e-5)
    # betas change bone lengths: the same pose with other betas moves the joints
    other = params.copy()
    other[:, 159:169] = 0.0
    assert np.abs(skeleton(torch.as_tensor(other)).numpy() - joints).max() > 0.005


def test_skeleton_interface(skeleton):
    assert skeleton.backend == "skeleton"
    assert len(skeleton.joint_names) == len(skeleton.parents) == 52
    assert skeleton.parents[0] == -1 and all(0 <= p < j for j, p in enumerate(skeleton.parents) if j)
    names = skeleton.joint_names
    body = skeleton.parts["body"]
    assert names[body.root] == "Pelvis"
    assert [names[j] for j in body.joints] == ["Neck", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow",
                                               "L_Wrist", "R_Wrist"]
    for part, side in (("lhand", "L"), ("rhand", "R")):
        hand = skeleton.parts[part]
        assert names[hand.root] == f"{side}_Wrist" and hand.joints[0] == hand.root
        assert len(hand.joints) == 16 and all(names[j].startswith(f"{side}_") for j in hand.joints)
        # the first finger joints hang off the wrist now that mannequin's hand helpers are gone
        assert skeleton.parents[names.index(f"{side}_Index1")] == hand.root


def test_leading_dims_and_dtype(skeleton):
    params = torch.as_tensor(random_params(6, np.zeros(10), seed=3))
    flat = skeleton(params)
    assert flat.shape == (6, 52, 3) and flat.dtype == torch.float64
    nested = skeleton(params.reshape(2, 3, 179))
    assert nested.shape == (2, 3, 52, 3)
    torch.testing.assert_close(nested.reshape(6, 52, 3), flat)
    single = skeleton(params.float()[0])
    assert single.shape == (52, 3) and single.dtype == torch.float32
    torch.testing.assert_close(single.double(), flat[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="179"):
        skeleton(torch.zeros(4, 133))


def test_unknown_backend_names_the_key():
    with pytest.raises(ConfigError, match="KINEMATICS.BACKEND"):
        build_kinematics("mesh")


def test_smplx_backend_missing_files_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError) as error:
        build_kinematics("smplx", str(tmp_path / "deps" / "smpl_models"))
    message = str(error.value)
    assert str(tmp_path / "deps" / "smpl_models" / "smplx" / "SMPLX_NEUTRAL.npz") in message
    assert "notebook 1" in message and "KINEMATICS.BACKEND: skeleton" in message
    with pytest.raises(ConfigError, match="KINEMATICS.SMPLX_DIR"):
        build_kinematics("smplx", None)


# --- smplx backend on a synthetic model file -------------------------------------------------------

VERTICES = 10475
JOINT_VERTEX_START = 10400  # vertex 10400 + j is where the fake regressor puts SMPL-X joint j
TIP_OFFSET = np.array([0.0, 0.0, 0.02])
FACE_OFFSET = np.array([0.0, 0.05, 0.08])


def smplx_to_skeleton_index() -> list[int]:
    """SMPL-X joints 0..21 and 25..54 are skeleton joints 0..21 and 22..51 (jaw and eyes are not)."""
    return [*range(22), *range(25, 55)]


def write_fake_smplx(folder, skeleton) -> None:
    """An SMPLX_NEUTRAL.npz with SMPL-X's keys and shapes whose rest joints and shape directions are
    the skeleton backend's, so both backends must pose the shared joints identically."""
    rest = skeleton.joint_rest.double().numpy()  # (52, 3)
    dirs = skeleton.joint_dirs.double().numpy()  # (52, 3, 10)
    smplx_rest = np.zeros((55, 3))
    smplx_dirs = np.zeros((55, 3, 10))
    smplx_rest[smplx_to_skeleton_index()], smplx_dirs[smplx_to_skeleton_index()] = rest, dirs
    head = rest[15]
    smplx_rest[22], smplx_rest[23], smplx_rest[24] = head + [0, -0.05, 0.05], head + [0.03, 0.03, 0.08], \
        head + [-0.03, 0.03, 0.08]
    smplx_dirs[22:25] = dirs[15]
    parents = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
                        *[20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38],
                        *[21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]])

    v_template = np.zeros((VERTICES, 3))
    shapedirs = np.zeros((VERTICES, 3, 20))
    weights = np.zeros((VERTICES, 55))
    weights[:, 0] = 1.0
    regressor = np.zeros((55, VERTICES))
    for joint in range(55):
        vertex = JOINT_VERTEX_START + joint
        v_template[vertex], shapedirs[vertex, :, :10] = smplx_rest[joint], smplx_dirs[joint]
        regressor[joint, vertex] = 1.0
    # fingertip and face vertices ride rigidly on the last finger joint / the head
    last_finger_joint = {"index": 27, "middle": 30, "pinky": 33, "ring": 36, "thumb": 39}  # left; right +15
    rigid = {f"{side}{tip}": joint + (15 if side == "r" else 0)
             for side in ("l", "r") for tip, joint in last_finger_joint.items()}
    rigid.update({name: 15 for name in ("nose", "reye", "leye", "rear", "lear")})
    for name, joint in rigid.items():
        vertex = SMPLX_VERTEX_IDS["smplx"][name]
        offset = TIP_OFFSET if joint != 15 else FACE_OFFSET
        v_template[vertex], shapedirs[vertex, :, :10] = smplx_rest[joint] + offset, smplx_dirs[joint]
        weights[vertex] = np.eye(55)[joint]
    hand_mean = skeleton.hand_mean.double().numpy()
    folder.mkdir(parents=True)
    np.savez_compressed(
        folder / "SMPLX_NEUTRAL.npz", v_template=v_template, shapedirs=shapedirs,
        posedirs=np.zeros((VERTICES, 3, 486)), J_regressor=regressor, weights=weights,
        kintree_table=np.stack([np.where(parents < 0, 2**32 - 1, parents), np.arange(55)]),
        f=np.array([[0, 1, 2]]), hands_componentsl=np.eye(45), hands_componentsr=np.eye(45),
        hands_meanl=hand_mean[:45], hands_meanr=hand_mean[45:], lmk_faces_idx=np.zeros(51, dtype=np.int64),
        lmk_bary_coords=np.full((51, 3), 1 / 3))


def test_smplx_backend_on_synthetic_model(tmp_path, skeleton):
    write_fake_smplx(tmp_path / "smpl_models" / "smplx", skeleton)
    model_file = tmp_path / "smpl_models" / "smplx" / "SMPLX_NEUTRAL.npz"
    assert smplx_model_file(tmp_path / "smpl_models") == smplx_model_file(model_file.parent) == model_file
    body_model = build_kinematics("smplx", str(tmp_path / "smpl_models"))
    assert body_model.backend == "smplx" and set(body_model.parts) == set(skeleton.parts)
    assert len(body_model.joint_names) == len(body_model.parents) == 70

    betas = np.random.default_rng(4).normal(size=10)
    params = torch.as_tensor(random_params(4, betas, seed=5))
    joints = body_model(params.reshape(2, 2, 179)).reshape(4, 70, 3)
    assert joints.dtype == torch.float64
    expected = skeleton(params)
    torch.testing.assert_close(joints[:, smplx_to_skeleton_index()], expected, atol=1e-5, rtol=0)

    names = body_model.joint_names
    body = body_model.parts["body"]
    assert names[body.root] == "pelvis" and len(body.joints) == 12
    assert {"neck", "left_wrist", "nose", "left_ear", "right_eye"} <= {names[j] for j in body.joints}
    for part, side in (("lhand", "left"), ("rhand", "right")):
        hand = body_model.parts[part]
        assert names[hand.root] == f"{side}_wrist" and len(hand.joints) == 21
        for tip in ("thumb", "index", "middle", "ring", "pinky"):
            tip_index, last_joint = names.index(f"{side}_{tip}"), names.index(f"{side}_{tip}3")
            assert tip_index in hand.joints and body_model.parents[tip_index] == last_joint
            bone = torch.linalg.vector_norm(joints[:, tip_index] - joints[:, last_joint], dim=-1)
            torch.testing.assert_close(bone, torch.full_like(bone, 0.02), atol=1e-5, rtol=0)
