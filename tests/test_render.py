import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from arabic_reshaper import reshape
from bidi import get_display
from mannequin import Mannequin
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from mGPT.errors import DataError
from mGPT.kinematics import build_kinematics
from mGPT.render import caption as caption_module
from mGPT.render.caption import caption_font, displayable_caption, matplotlib_shapes_text, visual_order
from mGPT.render.skeleton_video import (
    FINGER_COLOURS,
    INSET_FACE,
    LEFT_ARM_COLOUR,
    LOWER_BODY_JOINTS,
    RIGHT_ARM_COLOUR,
    hand_groups,
    render_frames,
    render_params,
    save_video,
    skeleton_layout,
)

SIZE = (160, 160)  # (W, H): small panels keep the tests fast
INSETS = 80  # height of the hand inset strip under a 160 x 160 panel: half the panel
CAPTION = "لغة الإشارة السعودية"

# The smplx backend's 70-joint tree: SMPL-X's 55 joints (jaw and eyes under the head, fingers off the
# wrists directly), then nose, eyes and ears under the head, then fingertips under each finger's last joint.
SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]
SMPLX_PARENTS += [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]
SMPLX_PARENTS += [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]
SMPLX_PARENTS += [15] * 5 + [39, 27, 30, 36, 33] + [54, 42, 45, 51, 48]


@pytest.fixture(scope="module")
def mannequin() -> Mannequin:
    return Mannequin("convex")


@pytest.fixture(scope="module")
def t_pose(mannequin: Mannequin) -> np.ndarray:
    return np.asarray(mannequin.joint_transforms(mannequin.rest_pose())[..., :3, 3])  # (54, 3)


@pytest.fixture(scope="module")
def signing_pose(mannequin: Mannequin) -> np.ndarray:
    """Arms down, forearms forward, fingers of the right hand curled: a pose seen while signing."""
    pose = mannequin.rest_pose()
    pose["body_pose"][15] = [0.0, -0.5, -1.1]  # SMPL-X joint 16, left shoulder
    pose["body_pose"][16] = [0.0, 0.5, 1.1]  # right shoulder
    pose["body_pose"][17, 1] = -2.0  # left elbow
    pose["body_pose"][18, 1] = 2.0  # right elbow
    pose["hand_pose"][15:, 2] = 1.0
    return np.asarray(mannequin.joint_transforms(pose)[..., :3, 3])  # (54, 3)


@pytest.fixture(scope="module")
def pointing_pose(mannequin: Mannequin) -> np.ndarray:
    """The signing pose with the right index finger stretched out, the other right fingers still curled."""
    pose = mannequin.rest_pose()
    pose["body_pose"][15] = [0.0, -0.5, -1.1]
    pose["body_pose"][16] = [0.0, 0.5, 1.1]
    pose["body_pose"][17, 1] = -2.0
    pose["body_pose"][18, 1] = 2.0
    pose["hand_pose"][18:, 2] = 1.0  # right hand joints 15-17 are the index finger
    return np.asarray(mannequin.joint_transforms(pose)[..., :3, 3])  # (54, 3)


def clip(*poses: np.ndarray) -> np.ndarray:
    return np.stack(poses)  # (T, J, 3)


def record_text(monkeypatch: pytest.MonkeyPatch, owner: type) -> list[str]:
    """The strings later drawn by `owner.text` (Axes or Figure), which still draws them."""
    drawn: list[str] = []
    original = owner.text

    def recording_text(self, x, y, s, *args, **kwargs):
        drawn.append(s)
        return original(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(owner, "text", recording_text)
    return drawn


def has_colour(image: np.ndarray, colour: str, tolerance: int = 12) -> bool:
    target = np.array(to_rgb(colour)) * 255
    return bool((np.abs(image.astype(float) - target).max(axis=-1) <= tolerance).any())


def test_frames_shape_dtype_and_determinism(mannequin, t_pose, signing_pose) -> None:
    frames = render_frames(clip(t_pose, signing_pose, t_pose), mannequin.parents, size=(160, 120))
    assert frames.shape == (3, 120 + 60, 160, 3)  # insets: half the smaller side of the panel
    assert frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], frames[2])  # same pose, same pixels
    assert (frames[0] != frames[1]).any(axis=-1).sum() > 200  # a different pose moves many pixels
    assert (frames[0] < 128).any() and (frames[0] == 255).all(axis=-1).mean() > 0.5  # drawn on white


def test_hands_are_drawn_with_one_colour_per_finger(mannequin, signing_pose) -> None:
    frame = render_frames(clip(signing_pose), mannequin.parents, size=(320, 320))[0]
    for colour in FINGER_COLOURS:
        assert has_colour(frame, colour), colour


def test_lower_body_is_not_drawn(mannequin, signing_pose) -> None:
    moved_legs = signing_pose.copy()
    moved_legs[list(LOWER_BODY_JOINTS)] += [0.3, -0.5, 0.2]
    frames = render_frames(clip(signing_pose, moved_legs), mannequin.parents, size=SIZE)
    np.testing.assert_array_equal(frames[0], frames[1])


def test_limits_are_fixed_over_the_clip(mannequin, t_pose) -> None:
    shifted = t_pose + [0.4, 0.1, 0.0]
    there_and_back = render_frames(clip(t_pose, shifted), mannequin.parents, size=SIZE)
    back_and_there = render_frames(clip(shifted, t_pose), mannequin.parents, size=SIZE)
    alone = render_frames(clip(t_pose), mannequin.parents, size=SIZE)
    np.testing.assert_array_equal(there_and_back[0], back_and_there[1])
    assert (there_and_back[0] != alone[0]).any()  # limits come from the whole clip, not one frame


def test_side_view_projects_depth(mannequin, signing_pose) -> None:
    deeper = signing_pose + [0.0, 0.0, 0.3] * (np.arange(len(signing_pose)) % 2)[:, None]
    poses = clip(signing_pose, deeper)
    front = render_frames(poses, mannequin.parents, size=SIZE, view="front")
    side = render_frames(poses, mannequin.parents, size=SIZE, view="side")
    np.testing.assert_array_equal(front[0], front[1])  # z is the viewing direction of the front view
    assert (side[0] != side[1]).any()
    with pytest.raises(ValueError, match="view"):
        render_frames(poses, mannequin.parents, view="top")


def test_caption_fills_the_strip_under_the_figure(mannequin, t_pose) -> None:
    with_caption = render_frames(clip(t_pose), mannequin.parents, caption=CAPTION, size=SIZE,
                                 hand_insets=False)[0]
    without = render_frames(clip(t_pose), mannequin.parents, size=SIZE, hand_insets=False)[0]
    strip = slice(-SIZE[1] // 10, None)
    assert (with_caption[strip] < 100).any(axis=-1).sum() > 60
    assert (without[strip] == 255).all()
    under_insets = render_frames(clip(t_pose), mannequin.parents, caption=CAPTION, size=SIZE)[0]
    np.testing.assert_array_equal(under_insets[strip], with_caption[strip])  # the insets stay above it


def test_reference_panel_doubles_the_width_and_holds_its_last_frame(mannequin, t_pose, signing_pose) -> None:
    generated = clip(t_pose, signing_pose, t_pose, signing_pose)
    reference = clip(signing_pose, t_pose)
    frames = render_frames(generated, mannequin.parents, reference=reference, size=SIZE)
    width = SIZE[0]
    assert frames.shape == (4, SIZE[1] + INSETS, 2 * width, 3)
    insets = frames[:, -INSETS:]
    np.testing.assert_array_equal(insets[1, :, :width], insets[0, :, width:])  # one hand scale for both
    right = frames[:, :, width:]
    assert (right[0] != right[1]).any()
    np.testing.assert_array_equal(right[1], right[2])
    np.testing.assert_array_equal(right[1], right[3])
    left = frames[:, :, :width]
    np.testing.assert_array_equal(left[0], left[2])
    assert (left[0] != left[1]).any()


def test_bad_joint_shapes_are_rejected(mannequin, t_pose) -> None:
    with pytest.raises(ValueError, match=r"\(T>0, 54, 3\)"):
        render_frames(t_pose, mannequin.parents)
    with pytest.raises(ValueError, match="reference"):
        render_frames(clip(t_pose), mannequin.parents, reference=clip(t_pose)[:, :40])


def test_layout_of_mannequin_skeleton(mannequin) -> None:
    layout = skeleton_layout(mannequin.parents)
    assert set(layout.drawn_joints.tolist()) == set(range(54)) - set(LOWER_BODY_JOINTS)
    bones = {(int(a), int(b)) for group in layout.groups for a, b in zip(group.starts, group.ends, strict=True)}
    assert len(bones) == 54 - 1 - len(LOWER_BODY_JOINTS)  # every drawn joint but the pelvis has one bone
    assert (20, 22) in bones and (22, 24) in bones and (24, 25) in bones  # wrist, palm, index finger


def test_layout_of_smplx_skeleton_groups_fingers() -> None:
    layout = skeleton_layout(SMPLX_PARENTS)
    fingers = [group for group in layout.groups if group.colour in FINGER_COLOURS]
    assert len(fingers) == 5
    # A finger group holds that finger's bones past the palm on both hands, fingertips included:
    # the thumb is the fifth chain (37-39 and tip 60 on the left, 52-54 and tip 65 on the right).
    thumb = {(int(a), int(b)) for a, b in zip(fingers[4].starts, fingers[4].ends, strict=True)}
    assert thumb == {(37, 38), (38, 39), (39, 60), (52, 53), (53, 54), (54, 65)}
    palms = [group for group in layout.groups if group.width == 1.4]
    assert sorted(len(group.starts) for group in palms) == [5, 5]  # wrist to each finger base
    assert not set(LOWER_BODY_JOINTS) & set(layout.drawn_joints.tolist())


def test_layout_finds_each_hand_wrist_first() -> None:
    kinematics = build_kinematics("skeleton")
    layout = skeleton_layout(kinematics.parents)
    assert layout.hands["left"].tolist() == kinematics.parts["lhand"].joints
    assert layout.hands["right"].tolist() == kinematics.parts["rhand"].joints
    smplx = skeleton_layout(SMPLX_PARENTS)  # fingers 25-39 and tips 60-64 hang off the left wrist
    assert smplx.hands["left"].tolist() == [20, *range(25, 40), *range(60, 65)]
    assert smplx.hands["right"].tolist() == [21, *range(40, 55), *range(65, 70)]


def test_hand_groups_hold_one_hand_and_its_forearm(mannequin) -> None:
    layout = skeleton_layout(mannequin.parents)
    groups = hand_groups(layout, mannequin.parents, "right")
    bones = {(int(a), int(b)) for group in groups for a, b in zip(group.starts, group.ends, strict=True)}
    right_hand = set(layout.hands["right"].tolist())
    assert (19, 21) in bones  # right elbow to right wrist
    assert {b for _, b in bones} == right_hand  # every right-hand joint, nothing of the left hand
    assert sorted(group.colour for group in groups if group.colour in FINGER_COLOURS) == sorted(FINGER_COLOURS)
    assert {group.colour for group in groups} - set(FINGER_COLOURS) == {RIGHT_ARM_COLOUR}


def test_hand_insets_magnify_the_handshape(monkeypatch, mannequin, signing_pose, pointing_pose) -> None:
    labels = record_text(monkeypatch, Axes)
    frames = render_frames(clip(signing_pose, pointing_pose), mannequin.parents, size=SIZE)
    assert labels == ["R", "L"]  # the figure's right hand first: it is on the viewer's left
    assert frames.shape == (2, SIZE[1] + INSETS, SIZE[0], 3)
    changed = (frames[0] != frames[1]).any(axis=-1)  # (H, W): only the right index finger moved
    right_inset, left_inset = changed[SIZE[1]:, : SIZE[0] // 2], changed[SIZE[1]:, SIZE[0] // 2:]
    assert not left_inset.any()
    assert right_inset.sum() > 2 * changed[: SIZE[1]].sum() > 0  # the same finger, drawn bigger
    assert has_colour(frames[0][SIZE[1]:, : SIZE[0] // 2], RIGHT_ARM_COLOUR)
    assert has_colour(frames[0][SIZE[1]:, SIZE[0] // 2:], LEFT_ARM_COLOUR)
    for colour in FINGER_COLOURS:
        assert has_colour(frames[0][SIZE[1]:], colour), colour


def test_hand_insets_follow_the_wrists(mannequin, signing_pose) -> None:
    moved = signing_pose + [0.3, -0.2, 0.1]
    frames = render_frames(clip(signing_pose, moved), mannequin.parents, size=SIZE)
    assert (frames[0, : SIZE[1]] != frames[1, : SIZE[1]]).any()
    np.testing.assert_array_equal(frames[0, SIZE[1]:], frames[1, SIZE[1]:])


def test_without_insets_the_panel_is_the_old_layout(mannequin, signing_pose, pointing_pose) -> None:
    poses = clip(signing_pose, pointing_pose)
    with_insets = render_frames(poses, mannequin.parents, size=SIZE)
    without = render_frames(poses, mannequin.parents, size=SIZE, hand_insets=False)
    assert without.shape == (2, SIZE[1], SIZE[0], 3)
    np.testing.assert_array_equal(without, with_insets[:, : SIZE[1]])  # the insets go under an unchanged panel
    assert has_colour(with_insets[:, SIZE[1]:], INSET_FACE, tolerance=0)


def test_layout_rejects_non_smplx_order() -> None:
    with pytest.raises(ValueError, match="SMPL-X joint order"):
        skeleton_layout([-1, 0, 1, 2])


def test_fallback_caption_is_reshaped_and_in_visual_order(monkeypatch) -> None:
    monkeypatch.setattr(caption_module, "matplotlib_shapes_text", lambda: False)
    # سلام: seen (initial form), lam-alef (final ligature), meem (isolated), drawn right to left.
    assert displayable_caption("سلام", 40) == "\ufee1\ufefc\ufeb3"
    assert displayable_caption(CAPTION, 40) == get_display(reshape(CAPTION))


def test_native_caption_keeps_logical_order(monkeypatch) -> None:
    monkeypatch.setattr(caption_module, "matplotlib_shapes_text", lambda: True)
    assert displayable_caption(CAPTION, 40) == CAPTION  # reordering here would flip it back to front


def test_long_caption_wraps_with_first_words_first() -> None:
    text = "واحد اثنان ثلاثة أربعة خمسة ستة"
    lines = displayable_caption(text, 12).split("\n")
    assert len(lines) == 3
    expected_first = "واحد اثنان" if matplotlib_shapes_text() else visual_order("واحد اثنان")
    assert lines[0] == expected_first


def draw_text(text: str) -> np.ndarray:
    fig = Figure(figsize=(4, 1), dpi=100)
    canvas = FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=14)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def test_caption_draws_joined_letters_right_to_left() -> None:
    # Reference: the joined glyphs in display order, drawn left to right with bidi switched off.
    glyphs = visual_order(CAPTION)
    reference = draw_text(f"\u202d{glyphs}\u202c" if matplotlib_shapes_text() else glyphs)
    np.testing.assert_array_equal(draw_text(displayable_caption(CAPTION, 80)), reference)
    assert (reference < 128).any()


def test_render_passes_the_displayable_caption_to_matplotlib(monkeypatch, mannequin, t_pose) -> None:
    drawn = record_text(monkeypatch, Figure)
    render_frames(clip(t_pose), mannequin.parents, caption=CAPTION, size=(480, 160))
    assert drawn == [displayable_caption(CAPTION, 80)]
    monkeypatch.setattr(caption_module, "matplotlib_shapes_text", lambda: False)
    drawn.clear()
    render_frames(clip(t_pose), mannequin.parents, caption=CAPTION, size=(480, 160))
    assert drawn == [get_display(reshape(CAPTION))]


def test_caption_font_covers_arabic_and_warns_when_nothing_does(monkeypatch) -> None:
    assert caption_font(visual_order(CAPTION)).get_family() == ["DejaVu Sans"]
    # Only Last Resort claims Adlam here, and its boxes must not count as glyphs.
    last_resort = [entry for entry in font_manager.fontManager.ttflist if "Last Resort" in entry.name]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", last_resort)
    with pytest.warns(UserWarning, match=r"no installed font.*DejaVu Sans lacks '\U0001e900'"):
        font = caption_font("\U0001e900")
    assert font.get_family() == ["DejaVu Sans"]


@pytest.mark.parametrize("extension", [".mp4", ".gif"])
def test_save_video_round_trip(tmp_path, extension) -> None:
    frames = np.zeros((5, 21, 33, 3), dtype=np.uint8)  # odd sizes: H.264 needs them padded to even
    frames[:, :, :, 0] = np.linspace(0, 250, 5, dtype=np.uint8)[:, None, None]
    path = save_video(frames, tmp_path / "nested" / "dir" / f"clip{extension}", fps=10)
    assert path.exists()
    read_back = np.stack(imageio.mimread(path))
    assert len(read_back) == 5
    height, width = (22, 34) if extension == ".mp4" else (21, 33)
    assert read_back.shape[1:3] == (height, width)
    red = read_back[:, :21, :33, 0].astype(float).mean(axis=(1, 2))
    np.testing.assert_allclose(red, np.linspace(0, 250, 5).astype(np.uint8), atol=6)


def test_save_video_rejects_unknown_extension(tmp_path) -> None:
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"clip\.avi.*\.mp4, \.gif"):
        save_video(frames, tmp_path / "clip.avi")
    assert not list(tmp_path.iterdir())


class OffsetKinematics:
    """A stand-in kinematics: the T-pose moved by the first three parameters, recording grad mode."""

    def __init__(self, rest_joints: np.ndarray, parents: list[int]) -> None:
        self.rest_joints = torch.from_numpy(rest_joints).float()
        self.parents = parents
        self.grad_enabled: list[bool] = []

    def forward(self, params179: torch.Tensor) -> torch.Tensor:
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.rest_joints + params179[..., None, :3]  # (T, J, 3)


def test_render_params_poses_renders_and_saves(tmp_path, mannequin, t_pose) -> None:
    kinematics = OffsetKinematics(t_pose, list(mannequin.parents))
    params = np.zeros((3, 179), dtype=np.float32)
    params[:, 0] = [0.0, 0.1, 0.2]
    reference_params = np.zeros((2, 179), dtype=np.float32)
    path = render_params(params, kinematics, tmp_path / "out" / "sample.gif", caption=CAPTION,
                         reference_params=reference_params, fps=12, size=SIZE)
    assert path == tmp_path / "out" / "sample.gif"
    assert kinematics.grad_enabled == [False, False]

    rest = t_pose.astype(np.float32)  # posed in float32 like the kinematics: insets magnify rounding
    joints = rest + params[:, None, :3]
    expected = render_frames(joints, mannequin.parents, caption=CAPTION, reference=clip(rest, rest), size=SIZE)
    save_video(expected, tmp_path / "expected.gif", fps=12)
    np.testing.assert_array_equal(np.stack(imageio.mimread(path)),
                                  np.stack(imageio.mimread(tmp_path / "expected.gif")))


def test_render_params_rejects_bad_input_before_working(tmp_path, mannequin, t_pose) -> None:
    kinematics = OffsetKinematics(t_pose, list(mannequin.parents))
    with pytest.raises(DataError, match=r"params179.*\(T, 179\).*\(4, 133\)"):
        render_params(np.zeros((4, 133)), kinematics, tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="unknown extension"):
        render_params(np.zeros((4, 179)), kinematics, tmp_path / "a.webm")
    assert kinematics.grad_enabled == []


def test_render_params_with_the_skeleton_backend(tmp_path) -> None:
    kinematics = build_kinematics("skeleton")
    params = np.zeros((2, 179), dtype=np.float32)
    body_pose = params[:, 3:66].reshape(2, 21, 3)  # a view: SMPL-X joint i is body_pose[i - 1]
    body_pose[:, 15] = [0.0, -0.5, -1.1]  # shoulders down, elbows bent: hands in front of the chest
    body_pose[:, 16] = [0.0, 0.5, 1.1]
    body_pose[:, 17, 1] = [-2.0, -1.4]  # the left forearm moves in the second frame
    body_pose[:, 18, 1] = 2.0
    path = render_params(params, kinematics, tmp_path / "sample.gif", caption=CAPTION)
    frames = np.stack(imageio.mimread(path))
    assert frames.shape == (2, 480 + 240, 480, 3)
    assert np.abs(frames[0].astype(int) - frames[1]).max() > 100
    for colour in FINGER_COLOURS:
        assert has_colour(frames[0], colour, tolerance=30), colour  # GIF palettes shift colours a little
