"""A synthetic sign-language dataset in the exact Isharah on-disk layout, for tests and smoke runs.

Each word of VOCABULARY is a distinct sign: a smooth path of the arms through two or three key
poses in front of the chest or face, handshapes for both hands, sometimes a repeated movement, and
some mouth and face motion. Sentences come from a small subject-verb-object grammar; a clip is a
rest pose, the sentence's signs joined by short cosine blends, and the rest pose again. Signers
differ in body shape, posture and speed; every clip varies speed, size and adds small noise.

SMPL-X's zero pose is a T-pose, so arms are built from four angles that are easier to keep
plausible than raw axis-angles: abduction lowers the arm from the T-pose, flexion raises it forward,
twist turns it about its own axis, and the elbow bends the forearm forward. Within the ranges below
the wrists stay in front of the torso between hip and head height (mannequin-x forward kinematics:
wrist height -0.21..0.27 m against hips at -0.45 m and head at 0.27 m, at least 0.13 m in front of
the spine; tests/test_synthetic.py checks every generated frame).

The dictionary split holds one isolated clip per word (SENTENCE is the word). Val and test hold
sentences that never occur in train, made only of words that train contains.

Two styles, two independently designed families in the same layout (`--style`), so a recipe tuned on
one can be judged on the other. Everything that differs lives in one `Style` each:
- `a` (the default, the embedded sample): 60 words in a subject-verb-object grammar, 6 signers, signs
  of two or three key poses joined by cosine easing, 9 handshapes.
- `b`: 30 other words in a topic-comment grammar (time and topic first, the verb late, a negation or
  question sign last), 8 signers with more varied bodies and speeds, signs of two to four key poses that
  hold each pose and overshoot the next (an easing that passes its target and settles back, also between
  signs), wider arm movements stopped at joint limits, 15 handshapes, more two-handed signs and
  handshape changes, shorter rests and transitions of more varied length.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from mGPT.data.isharah import CSV_COLUMNS, pose_dir_path, split_csv_path
from mGPT.errors import DataError, SaSOKEError, os_error_message
from mGPT.layout import SMPLX_KEYS

PRONOUNS = ("أنا", "أنت", "هو", "هي", "نحن", "هم")
VERBS = ("يذهب", "يأكل", "يشرب", "يكتب", "يقرأ", "يحب", "يريد", "يعمل", "يلعب", "يشتري", "يرى", "ينام",
         "يدرس", "يساعد")
OBJECTS = ("ماء", "خبز", "كتاب", "قهوة", "تفاح", "سيارة", "هاتف", "رسالة", "طعام", "كرة", "حليب", "تمر",
           "قلم", "باب", "صديق", "أم")
PLACES = ("بيت", "مدرسة", "مستشفى", "مسجد", "سوق", "مطعم", "جامعة", "مكتب")
TIMES = ("اليوم", "غدا", "أمس", "الآن", "صباحا", "مساء")
ADJECTIVES = ("كبير", "صغير", "جميل", "جديد", "سعيد", "كثير")
INTERJECTIONS = ("مرحبا", "شكرا", "نعم", "لا")
VOCABULARY = PRONOUNS + VERBS + OBJECTS + PLACES + TIMES + ADJECTIVES + INTERJECTIONS

# Sentence templates over word classes, 2 to 6 signs each.
_TEMPLATES = (
    ("pronoun", "verb"),
    ("pronoun", "verb", "object"),
    ("pronoun", "verb", "place"),
    ("time", "pronoun", "verb"),
    ("pronoun", "verb", "object", "adjective"),
    ("time", "pronoun", "verb", "place"),
    ("pronoun", "verb", "object", "place"),
    ("interjection", "pronoun", "verb", "object", "place"),
    ("time", "pronoun", "verb", "object", "adjective", "place"),
)
_FULL_CLASSES = {"pronoun": PRONOUNS, "verb": VERBS, "object": OBJECTS, "place": PLACES, "time": TIMES,
                 "adjective": ADJECTIVES, "interjection": INTERJECTIONS}
_SMALL_CLASSES = {"pronoun": PRONOUNS[:3], "verb": VERBS[:4], "object": OBJECTS[:3], "place": PLACES[:2]}

# Style b's words: none of style a's, and no stop words (every one can be a retrieval keyword).
_B_PEOPLE = ("أب", "أخت", "طبيب", "معلم", "طفل")
_B_ACTIONS = ("يطبخ", "يغسل", "يفتح", "يحمل", "ينتظر", "يركب", "يبيع", "يصلح")
_B_THINGS = ("شاي", "سكر", "ملح", "مفتاح", "حقيبة", "نافذة", "دواء", "قميص")
_B_PLACES = ("حديقة", "مطار", "صيدلية", "ملعب")
_B_TIMES = ("ليلا", "دائما", "أحيانا")
_B_MARKERS = ("ليس", "ماذا")  # negation and question, signed last as many sign languages do
_B_FULL_CLASSES = {"person": _B_PEOPLE, "action": _B_ACTIONS, "thing": _B_THINGS, "place": _B_PLACES,
                   "time": _B_TIMES, "marker": _B_MARKERS}
_B_SMALL_CLASSES = {"person": _B_PEOPLE[:2], "action": _B_ACTIONS[:3], "thing": _B_THINGS[:3],
                    "place": _B_PLACES[:1], "time": _B_TIMES[:1]}
# Topic-comment order: time, then place and thing as the topic, then who, then the verb; 2 to 6 signs.
_B_TEMPLATES = (
    ("person", "action"),
    ("person", "action", "marker"),
    ("thing", "person", "action"),
    ("time", "person", "action"),
    ("place", "person", "action"),
    ("thing", "person", "action", "marker"),
    ("time", "place", "person", "action"),
    ("place", "thing", "person", "action"),
    ("time", "thing", "person", "action", "marker"),
    ("time", "place", "thing", "person", "action"),
    ("time", "place", "thing", "person", "action", "marker"),
)


@dataclass(frozen=True)
class _Size:
    classes: dict[str, tuple[str, ...]]
    signers: int
    train_sentences: int
    signers_per_train_sentence: int
    val_clips: int
    test_clips: int


_DEFAULT_SIZE = _Size(_FULL_CLASSES, signers=6, train_sentences=150, signers_per_train_sentence=2,
                      val_clips=40, test_clips=40)
_SMALL_SIZE = _Size(_SMALL_CLASSES, signers=3, train_sentences=12, signers_per_train_sentence=2,
                    val_clips=6, test_clips=6)

FPS_CHOICES = (24, 25, 30)
_MARKER = "SYNTHETIC.json"

# Control vector: the few numbers a frame is generated from, turned into SMPL-X at the end.
_ARM = 6  # abduction, flexion, twist, elbow, wrist flexion, wrist deviation
LEFT_ARM = slice(0, 6)
RIGHT_ARM = slice(6, 12)
LEFT_HAND = slice(12, 57)
RIGHT_HAND = slice(57, 102)
NECK = slice(102, 105)
HEAD = slice(105, 108)
JAW_OPEN = 108
EXPRESSION = slice(109, 119)
CONTROL_DIMS = 119

# Arm key poses are drawn from these ranges (radians); see the module docstring.
_ARM_LOW = np.array([0.9, 0.3, 0.1, 1.3, -0.5, -0.3])
_ARM_HIGH = np.array([1.3, 1.5, 0.7, 2.2, 0.5, 0.3])
_REST_ARM = np.array([1.3, 0.3, 0.6, 1.0, 0.0, 0.0])  # hands low in front of the belly

# Handshapes as curls of index, middle, ring, pinky, thumb (radians past SMPL-X's relaxed mean hand).
_HANDSHAPES = np.array([
    [-0.1, -0.1, -0.1, -0.1, 0.0],  # flat
    [1.4, 1.4, 1.4, 1.4, 0.8],  # fist
    [-0.1, 1.4, 1.4, 1.4, 0.8],  # index point
    [-0.1, -0.1, 1.4, 1.4, 0.8],  # V
    [0.7, 0.7, 0.7, 0.7, 0.3],  # C
    [1.4, 1.4, 1.4, 1.4, -0.3],  # thumb up
    [0.9, 0.9, 0.9, 0.9, 0.6],  # O
    [1.4, 1.4, 1.4, -0.1, -0.3],  # Y
    [-0.2, -0.2, -0.2, -0.2, -0.3],  # spread five
])
# SMPL-X hand joint order: index, middle, pinky, ring, thumb; three joints each.
_FINGER_ORDER = (0, 1, 3, 2)
_JOINT_CURL_SHARE = np.array([1.0, 1.1, 0.7])
# Left-hand bending axes: fingers bend towards the palm (about -z), each slightly off-axis as real
# knuckles are, so every angle of a fitted hand moves with the handshape.
_FINGER_AXES = np.array([[0.12, 0.10, -1.0], [0.05, 0.04, -1.0], [-0.10, -0.12, -1.0], [-0.04, -0.06, -1.0]])
_FINGER_AXES /= np.linalg.norm(_FINGER_AXES, axis=1, keepdims=True)
_THUMB_AXIS = np.array([0.3, 0.7, -0.6]) / np.linalg.norm([0.3, 0.7, -0.6])
_JAW_AXIS = np.array([1.0, 0.08, -0.05])  # opening is about x, with a little sideways drift

# Style b's handshapes: more of them, and not the same inventory (curls as in _HANDSHAPES).
_B_HANDSHAPES = np.array([
    [-0.1, -0.1, -0.1, -0.1, 0.0],  # flat
    [1.4, 1.4, 1.4, 1.4, 0.8],  # fist
    [-0.1, 1.4, 1.4, 1.4, 0.8],  # index point
    [-0.1, -0.1, 1.4, 1.4, 0.8],  # V
    [-0.1, -0.1, -0.1, 1.4, 0.8],  # W
    [-0.1, 1.4, 1.4, 1.4, -0.3],  # L
    [1.4, 1.4, 1.4, -0.1, 0.8],  # pinky
    [-0.1, 1.4, 1.4, -0.1, 0.8],  # horns
    [1.4, 1.4, 1.4, -0.1, -0.3],  # Y
    [1.1, -0.1, -0.1, -0.1, 0.7],  # pinch (F)
    [-0.1, 1.2, -0.1, -0.1, 0.6],  # open 8
    [0.45, 0.45, 0.45, 0.45, 0.1],  # wide C
    [1.0, 1.0, 1.0, 1.0, 0.3],  # claw
    [1.4, 1.4, 1.4, 1.4, -0.3],  # thumb up
    [-0.2, -0.2, -0.2, -0.2, -0.3],  # spread five
])


@dataclass(frozen=True)
class Style:
    """One family of synthetic signing: its words and grammar, the sizes of its splits, what its signs
    look like, how a clip joins them, and who signs them. Ranges are (low, high) of a uniform draw."""

    name: str
    stream: int  # added to the random stream numbers, so two styles never share a draw
    templates: tuple[tuple[str, ...], ...]  # sentences as sequences of word classes
    default: _Size
    small: _Size
    # signs
    handshapes: np.ndarray  # (H, 5) curls of index, middle, ring, pinky, thumb
    arm_low: np.ndarray  # (6,) range of the arm angles of a key pose, radians
    arm_high: np.ndarray
    arm_limits: tuple[np.ndarray, np.ndarray]  # (6,) each: the performed arm angles are clipped to these
    key_poses: tuple[int, int]  # fewest and most key poses of a sign
    two_handed: float  # share of two-handed signs
    handshape_change: float  # share of signs whose last key pose may take another handshape
    repeated: float  # share of signs with a repeated movement (tapping, waving)
    sign_seconds: tuple[float, float]  # duration of a sign at a signer's normal speed
    hold: tuple[float, float]  # share of each movement between key poses spent holding them still
    overshoot: float  # easing past the target and back, in signs and between them (0: plain cosine)
    # clips
    transition_seconds: tuple[float, float]  # blend from one sign to the next
    rest_seconds: tuple[float, float]  # rest pose before the first and after the last sign
    amplitude: tuple[float, float]  # scale of a performed sign's arm movement about its centre
    noise: float  # tremor, radians per control dimension (see NOISE_RAD)
    # signers
    betas_scale: float | np.ndarray  # std of the 10 SMPL-X shape numbers: height, build, proportions
    speed: tuple[float, float]
    arm_offset: float  # std of a signer's posture habit, radians

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return tuple(word for words in self.default.classes.values() for word in words)

    def size(self, small: bool) -> _Size:
        return self.small if small else self.default


# tremor, in radians per control dimension; a few mm at the wrist, below what a 4x-downsampled
# tokenizer can follow, so it sets a floor under any reconstruction error
NOISE_RAD = 0.005

STYLE_A = Style(
    name="a", stream=0, templates=_TEMPLATES, default=_DEFAULT_SIZE, small=_SMALL_SIZE,
    handshapes=_HANDSHAPES, arm_low=_ARM_LOW, arm_high=_ARM_HIGH,
    arm_limits=(np.full(_ARM, -np.inf), np.full(_ARM, np.inf)),  # none needed: the ranges keep the wrists in place
    key_poses=(2, 3), two_handed=0.4,
    handshape_change=0.4, repeated=0.4, sign_seconds=(0.5, 1.0), hold=(0.0, 0.0), overshoot=0.0,
    transition_seconds=(0.16, 0.24), rest_seconds=(0.25, 0.45), amplitude=(0.85, 1.15), noise=NOISE_RAD,
    betas_scale=0.7, speed=(0.93, 1.07), arm_offset=0.04,
)
STYLE_B = Style(
    name="b", stream=10, templates=_B_TEMPLATES,
    default=_Size(_B_FULL_CLASSES, signers=8, train_sentences=100, signers_per_train_sentence=3,
                  val_clips=30, test_clips=30),
    small=_Size(_B_SMALL_CLASSES, signers=4, train_sentences=10, signers_per_train_sentence=2,
                val_clips=5, test_clips=5),
    handshapes=_B_HANDSHAPES,
    # Key poses from a wider range than style a's, performed larger, then stopped at joint limits: a box of
    # arm angles larger than style a's ranges whose every pose, with a signer's posture added, keeps the
    # wrists in the signing space that tests/test_synthetic.py checks (1.6 cm inside it at the closest,
    # mannequin-x forward kinematics). Many movements end at a limit, so the arms sweep the whole box.
    arm_low=np.array([0.65, 0.0, -0.2, 1.0, -0.9, -0.5]),
    arm_high=np.array([1.5, 1.9, 1.0, 2.5, 0.9, 0.5]),
    arm_limits=(np.array([0.85, 0.25, 0.0, 1.2, -0.8, -0.45]), np.array([1.4, 1.6, 0.55, 2.05, 0.8, 0.45])),
    key_poses=(2, 4), two_handed=0.6, handshape_change=0.7, repeated=0.3, sign_seconds=(0.35, 1.3),
    hold=(0.15, 0.45), overshoot=1.0, transition_seconds=(0.08, 0.36), rest_seconds=(0.15, 0.6),
    amplitude=(0.95, 1.35), noise=0.007,
    betas_scale=np.array([1.4, 1.2, 1.0, 0.9, 0.9, 0.8, 0.8, 0.7, 0.7, 0.7]), speed=(0.8, 1.25), arm_offset=0.05,
)
STYLES = {style.name: style for style in (STYLE_A, STYLE_B)}


@dataclass(frozen=True)
class _Sign:
    keyframes: np.ndarray  # (K, CONTROL_DIMS) the poses the sign moves through
    oscillation: np.ndarray  # (CONTROL_DIMS,) amplitude of a repeated movement, zeros for none
    frequency: float  # Hz of the repeated movement and of the mouthing
    mouth_open: float  # jaw opening at the peak, radians
    duration: float  # seconds at a signer's normal speed
    hold: float  # share of each movement between key poses spent holding them (0: always moving)


@dataclass(frozen=True)
class _Signer:
    betas: np.ndarray  # (10,)
    root: np.ndarray  # (3,)
    arm_offset: np.ndarray  # (12,) posture habit added to both arms' angles
    speed: float


@dataclass(frozen=True)
class _ClipPlan:
    split: str
    words: tuple[str, ...]
    sentence_id: int
    signer: int
    video_id: int


def _mirror(rotvecs: np.ndarray) -> np.ndarray:
    """Left-side axis-angles (..., 3k) -> the right-side ones of the mirrored pose (reflection through x = 0)."""
    return (rotvecs.reshape(-1, 3) * np.array([1.0, -1.0, -1.0])).reshape(rotvecs.shape)


def _handshape(curls: np.ndarray, spread: float) -> np.ndarray:
    """Five curls and a finger spread -> (45,) left-hand axis-angles."""
    joints = np.zeros((15, 3))
    for finger, curl_index in enumerate(_FINGER_ORDER):
        joints[finger * 3:finger * 3 + 3] = curls[curl_index] * _JOINT_CURL_SHARE[:, None] * _FINGER_AXES[finger]
    joints[[0, 3, 6, 9], 1] += spread * np.array([-1.0, -0.3, 1.0, 0.5])
    joints[12:15] = curls[4] * np.array([0.6, 0.5, 0.4])[:, None] * _THUMB_AXIS
    return joints.reshape(45)


def _rest_control() -> np.ndarray:
    control = np.zeros(CONTROL_DIMS)
    control[LEFT_ARM] = _REST_ARM
    control[RIGHT_ARM] = _REST_ARM
    return control


def _make_sign(rng: np.random.Generator, style: Style) -> _Sign:
    # The order of the draws is part of style a's output (same seed, same bytes): add new ones at the end.
    n_keys = int(rng.integers(style.key_poses[0], style.key_poses[1] + 1))
    right_arm = rng.uniform(style.arm_low, style.arm_high, size=(n_keys, _ARM))
    two_handed = rng.random() < style.two_handed
    if not two_handed:
        left_arm = np.repeat((_REST_ARM + rng.normal(0, 0.03, _ARM))[None], n_keys, axis=0)
    elif rng.random() < 0.5:
        left_arm = right_arm.copy()  # symmetric sign
    else:  # base hand held still
        left_arm = np.repeat(rng.uniform(style.arm_low, style.arm_high)[None], n_keys, axis=0)

    handshapes = style.handshapes
    start_shape, end_shape = handshapes[rng.integers(0, len(handshapes), size=2)]
    if rng.random() >= style.handshape_change:
        end_shape = start_shape  # the sign keeps one handshape throughout
    spread = rng.uniform(0.0, 0.25)
    right_hand = np.stack([_mirror(_handshape(end_shape if k == n_keys - 1 else start_shape, spread))
                           for k in range(n_keys)])
    left_curls = handshapes[int(rng.integers(len(handshapes)))] if two_handed else np.full(5, 0.2)
    left_hand = np.repeat(_handshape(left_curls, rng.uniform(0.0, 0.2))[None], n_keys, axis=0)

    keyframes = np.zeros((n_keys, CONTROL_DIMS))
    keyframes[:, LEFT_ARM] = left_arm
    keyframes[:, RIGHT_ARM] = right_arm
    keyframes[:, LEFT_HAND] = left_hand
    keyframes[:, RIGHT_HAND] = right_hand
    keyframes[:, NECK] = rng.normal(0, 0.04, (n_keys, 3))
    keyframes[:, HEAD] = rng.normal(0, 0.08, (n_keys, 3))
    keyframes[:, EXPRESSION] = rng.normal(0, 0.6, 10)

    oscillation = np.zeros(CONTROL_DIMS)
    if rng.random() < style.repeated:
        # A repeated movement: tapping with the elbow or waving with the wrist of the dominant arm.
        joint = RIGHT_ARM.start + int(rng.choice([3, 4]))
        oscillation[joint] = rng.uniform(0.12, 0.3)
    return _Sign(keyframes=keyframes, oscillation=oscillation, frequency=float(rng.uniform(2.0, 3.0)),
                 mouth_open=float(rng.uniform(0.03, 0.25)), duration=float(rng.uniform(*style.sign_seconds)),
                 hold=float(rng.uniform(*style.hold)))


def _ease(u: np.ndarray, overshoot: float) -> np.ndarray:
    """Cosine easing on [0, 1]: zero velocity at both ends, so joined pieces stay smooth.

    `overshoot` adds (u sin(pi u))^2, which also starts and ends at rest: the movement gets ahead of the
    cosine, passes its target (by 13% of the distance at overshoot 1, around u = 0.75) and settles back.
    """
    return 0.5 - 0.5 * np.cos(np.pi * u) + overshoot * (u * np.sin(np.pi * u)) ** 2


def _sign_motion(sign: _Sign, n_frames: int, fps: float, amplitude: float, overshoot: float) -> np.ndarray:
    """(n_frames, CONTROL_DIMS) control vectors of one sign performed over n_frames."""
    progress = np.linspace(0.0, 1.0, n_frames)
    position = progress * (len(sign.keyframes) - 1)
    segment = np.minimum(np.floor(position).astype(int), len(sign.keyframes) - 2)
    # Holds: each movement between key poses waits hold/2 of its time at either end (hold 0: no wait).
    local = np.clip((position - segment - sign.hold / 2) / (1 - sign.hold), 0.0, 1.0)
    blend = _ease(local, overshoot)[:, None]
    motion = sign.keyframes[segment] * (1 - blend) + sign.keyframes[segment + 1] * blend

    arms = slice(LEFT_ARM.start, RIGHT_ARM.stop)
    centre = sign.keyframes[:, arms].mean(axis=0)
    motion[:, arms] = centre + amplitude * (motion[:, arms] - centre)

    seconds = np.arange(n_frames) / fps
    envelope = np.sin(np.pi * progress)[:, None]  # the repeated movement and mouthing fade in and out
    motion += envelope * np.sin(2 * np.pi * sign.frequency * seconds)[:, None] * sign.oscillation
    motion[:, JAW_OPEN] = sign.mouth_open * envelope[:, 0] * (0.5 - 0.5 * np.cos(2 * np.pi * sign.frequency
                                                                                  * seconds))
    return motion


def _blend(start: np.ndarray, end: np.ndarray, n_frames: int, overshoot: float) -> np.ndarray:
    """(n_frames, D) eased blend strictly between two control vectors (endpoints excluded)."""
    weight = _ease(np.arange(1, n_frames + 1) / (n_frames + 1), overshoot)[:, None]
    return start * (1 - weight) + end * weight


def _euler(axis: str, angles: np.ndarray) -> Rotation:
    return Rotation.from_euler(axis, angles[:, None])


def _left_arm_rotvecs(arm: np.ndarray) -> dict[str, np.ndarray]:
    """(T, 6) arm angles -> (T, 3) axis-angles of the left collar, shoulder, elbow and wrist."""
    abduction, flexion, twist, elbow, wrist_flexion, wrist_deviation = arm.T
    shoulder = _euler("x", -flexion) * _euler("z", -abduction) * _euler("x", twist)
    # The collar lifts and protracts as the arm reaches forward; the forearm rolls with the arm's twist.
    return {
        "collar": (_euler("z", 0.12 * (flexion - 0.3)) * _euler("y", -0.15 * flexion)).as_rotvec(),
        "shoulder": shoulder.as_rotvec(),
        "elbow": (_euler("y", -elbow) * _euler("x", 0.5 * (twist - 0.4))).as_rotvec(),
        "wrist": (_euler("z", -wrist_flexion) * _euler("y", wrist_deviation)).as_rotvec(),
    }


# Indices into smplx_body_pose's 21 joints (SMPL-X joint index minus one).
_BODY_JOINTS = {"neck": 11, "left collar": 12, "right collar": 13, "head": 14, "left shoulder": 15,
                "right shoulder": 16, "left elbow": 17, "right elbow": 18, "left wrist": 19,
                "right wrist": 20}


def _control_to_smplx(control: np.ndarray, signer: _Signer) -> np.ndarray:
    """(T, CONTROL_DIMS) -> (T, 179) SMPL-X frames in the pickle key order."""
    n_frames = len(control)
    body = np.zeros((n_frames, 21, 3))
    for side, arm in (("left", control[:, LEFT_ARM]), ("right", control[:, RIGHT_ARM])):
        rotvecs = _left_arm_rotvecs(arm)
        for part, values in rotvecs.items():
            body[:, _BODY_JOINTS[f"{side} {part}"]] = values if side == "left" else _mirror(values)
    body[:, _BODY_JOINTS["neck"]] = control[:, NECK]
    body[:, _BODY_JOINTS["head"]] = control[:, HEAD]
    jaw = control[:, JAW_OPEN, None] * _JAW_AXIS  # (T, 3)
    frames = np.concatenate([
        np.repeat(signer.root[None], n_frames, axis=0),
        body.reshape(n_frames, 63),
        control[:, LEFT_HAND],
        control[:, RIGHT_HAND],
        jaw,
        np.repeat(signer.betas[None], n_frames, axis=0),
        control[:, EXPRESSION],
    ], axis=1)
    return frames.astype(np.float32)  # (T, 179)


def _render_clip(signs: list[_Sign], signer: _Signer, fps: int, rng: np.random.Generator,
                 style: Style) -> np.ndarray:
    """A rest pose, the signs joined by short blends, the rest pose again: (T, 179) at `fps`."""
    speed = signer.speed * rng.uniform(0.85, 1.15)
    rest = _rest_control()
    pieces = [np.repeat(rest[None], int(round(rng.uniform(*style.rest_seconds) * fps)), axis=0)]
    for sign in signs:
        n_frames = max(int(round(sign.duration / speed * fps)), 4)
        pieces.append(_sign_motion(sign, n_frames, fps, amplitude=rng.uniform(*style.amplitude),
                                   overshoot=style.overshoot))
    pieces.append(np.repeat(rest[None], int(round(rng.uniform(*style.rest_seconds) * fps)), axis=0))

    joined = [pieces[0]]
    for piece in pieces[1:]:
        n_blend = int(round(rng.uniform(*style.transition_seconds) * fps))
        joined += [_blend(joined[-1][-1], piece[0], n_blend, style.overshoot), piece]
    control = np.concatenate(joined)  # (T, CONTROL_DIMS)

    arms = control[:, LEFT_ARM.start:RIGHT_ARM.stop]  # a view: both arms' angles
    np.clip(arms, np.tile(style.arm_limits[0], 2), np.tile(style.arm_limits[1], 2), out=arms)
    control[:, LEFT_ARM.start:RIGHT_ARM.stop] += signer.arm_offset
    control += _smooth_noise(rng, control.shape, style.noise)
    return _control_to_smplx(control, signer)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Gaussian noise averaged over 3 frames, so it looks like tremor rather than jitter."""
    noise = rng.normal(0, scale, shape)
    kernel = np.ones(3) / 3
    return np.apply_along_axis(lambda column: np.convolve(column, kernel, mode="same"), 0, noise)


def _make_signer(rng: np.random.Generator, style: Style) -> _Signer:
    return _Signer(betas=rng.normal(0, style.betas_scale, 10), root=rng.normal(0, 0.05, 3),
                   arm_offset=rng.normal(0, style.arm_offset, 2 * _ARM), speed=float(rng.uniform(*style.speed)))


def _random_sentence(classes: dict[str, tuple[str, ...]], templates: tuple[tuple[str, ...], ...],
                     rng: np.random.Generator, forced_word: str | None = None) -> tuple[str, ...]:
    templates = [template for template in templates if all(part in classes for part in template)]
    if forced_word is not None:
        word_class = next(name for name, words in classes.items() if forced_word in words)
        templates = [template for template in templates if word_class in template]
    template = templates[int(rng.integers(len(templates)))]
    words = [classes[part][int(rng.integers(len(classes[part])))] for part in template]
    if forced_word is not None:
        slots = [i for i, part in enumerate(template) if forced_word in classes[part]]
        words[slots[int(rng.integers(len(slots)))]] = forced_word
    return tuple(words)


def _plan_clips(size: _Size, templates: tuple[tuple[str, ...], ...], rng: np.random.Generator) -> list[_ClipPlan]:
    """Which sentence each clip of each split shows and who signs it."""
    vocabulary = [word for words in size.classes.values() for word in words]
    train_sentences: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    # First one sentence per word, so every word is in train; then random ones.
    for word in [vocabulary[i] for i in rng.permutation(len(vocabulary))]:
        if any(word in sentence for sentence in train_sentences):
            continue
        sentence = _random_sentence(size.classes, templates, rng, forced_word=word)
        while sentence in seen:
            sentence = _random_sentence(size.classes, templates, rng, forced_word=word)
        train_sentences.append(sentence)
        seen.add(sentence)
    while len(train_sentences) < size.train_sentences:
        sentence = _random_sentence(size.classes, templates, rng)
        if sentence not in seen:
            train_sentences.append(sentence)
            seen.add(sentence)

    def unseen_sentences(count: int) -> list[tuple[str, ...]]:
        sentences = []
        while len(sentences) < count:
            sentence = _random_sentence(size.classes, templates, rng)
            if sentence not in seen:
                sentences.append(sentence)
                seen.add(sentence)
        return sentences

    plans: list[_ClipPlan] = []
    sentence_ids: dict[tuple[str, ...], int] = {}

    def add(split: str, words: tuple[str, ...], signer: int) -> None:
        sentence_id = sentence_ids.setdefault(words, len(sentence_ids) + 1)
        plans.append(_ClipPlan(split, words, sentence_id, signer, video_id=len(plans) + 1))

    for words in train_sentences:
        for signer in rng.choice(size.signers, size=size.signers_per_train_sentence, replace=False):
            add("train", words, int(signer))
    for split, count in (("val", size.val_clips), ("test", size.test_clips)):
        for words in unseen_sentences(count):
            add(split, words, int(rng.integers(size.signers)))
    for word in vocabulary:
        add("dictionary", (word,), int(rng.integers(size.signers)))
    return plans


def _frame_numbers(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """0..T-1, with one number skipped in some clips, as a failed fit leaves in real data."""
    numbers = np.arange(n_frames)
    if n_frames > 2 and rng.random() < 0.2:
        numbers[int(rng.integers(1, n_frames)):] += 1
    return numbers


def _write_frames(folder: Path, name: str, frames: np.ndarray, numbers: np.ndarray,
                  rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    camera = np.array([0.0, 0.2, 5.0], np.float32) + rng.normal(0, 0.02, 3).astype(np.float32)
    bounds = np.cumsum([0] + [size for _, size in SMPLX_KEYS])
    for frame, number in zip(frames, numbers, strict=True):
        content = {key: frame[bounds[i]:bounds[i + 1]].copy() for i, (key, _) in enumerate(SMPLX_KEYS)}
        content["cam_trans"] = camera  # real fits carry camera parameters; readers must ignore them
        with open(folder / f"{name}_{number}_3D.pkl", "wb") as handle:
            pickle.dump(content, handle, protocol=4)


def _claim_output(out_dir: Path) -> None:
    """Refuse to write into a folder that holds data not made by this generator."""
    existing = [out_dir / split for split in ("train", "val", "test", "dictionary") if (out_dir / split).exists()]
    if existing and not (out_dir / _MARKER).is_file():
        raise DataError(f"{out_dir}: already holds {', '.join(p.name for p in existing)} that this "
                          f"generator did not make; choose an empty --out folder")
    for folder in existing:
        shutil.rmtree(folder)


def generate_dataset(out_dir: str | Path, seed: int = 0, small: bool = False, style: str = "a") -> dict:
    """Write a synthetic dataset of `style` (STYLES) in the Isharah layout under out_dir; same seed and
    style, same bytes.

    Returns a summary: the style, the word and signer counts and, per split, the clip and frame counts.
    """
    if style not in STYLES:
        raise DataError(f"unknown synthetic style {style!r}; the styles are {', '.join(STYLES)}")
    family = STYLES[style]
    out_dir = Path(out_dir)
    size = family.size(small)
    _claim_output(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def stream(*numbers: int) -> np.random.Generator:  # [seed, kind, ...]; kind is offset per style
        return np.random.default_rng([seed, family.stream + numbers[0], *numbers[1:]])

    vocabulary = [word for words in size.classes.values() for word in words]
    signs = {word: _make_sign(stream(1, family.vocabulary.index(word)), family) for word in vocabulary}
    signers = [_make_signer(stream(2, i), family) for i in range(size.signers)]
    plans = _plan_clips(size, family.templates, stream(3))

    rows: dict[str, list[list[str]]] = {}
    summary_splits: dict[str, dict[str, int]] = {}
    for plan in tqdm(plans, desc="synthetic clips", unit="clip"):
        rng = stream(4, plan.video_id)
        fps = int(FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))])
        frames = _render_clip([signs[word] for word in plan.words], signers[plan.signer], fps, rng, family)
        name = f"S{plan.signer + 1:02d}_{plan.sentence_id:04d}_{plan.video_id:05d}"
        _write_frames(pose_dir_path(out_dir, plan.split, name), name, frames,
                      _frame_numbers(len(frames), rng), rng)
        start = round(float(rng.uniform(0.0, 3.0)), 3)
        end = round(start + len(frames) / fps, 4)
        rows.setdefault(plan.split, []).append([
            str(plan.video_id), f"S{plan.signer + 1:02d}_{plan.sentence_id:04d}.mp4", str(plan.sentence_id),
            name, f"{start:.3f}", f"{end:.4f}", " ".join(plan.words), str(fps),
        ])
        counts = summary_splits.setdefault(plan.split, {"clips": 0, "frames": 0})
        counts["clips"] += 1
        counts["frames"] += len(frames)

    for split, split_rows in rows.items():
        path = split_csv_path(out_dir, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            writer.writerows(split_rows)

    summary = {"seed": seed, "style": style, "small": small, "words": len(vocabulary), "signers": size.signers,
               "splits": summary_splits}
    (out_dir / _MARKER).write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    return {"out_dir": str(out_dir), **summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic sign dataset in the Isharah layout.")
    parser.add_argument("--out", required=True, type=Path, help="dataset root to create (empty or synthetic)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style", choices=sorted(STYLES), default="a",
                        help="a: the embedded sample's family (default); b: a second, independently designed one")
    parser.add_argument("--small", action="store_true",
                        help="a few words and clips, for tests (style a: 12 words, 48 clips; b: 10 words, 40 clips)")
    args = parser.parse_args(argv)
    try:
        summary = generate_dataset(args.out, seed=args.seed, small=args.small, style=args.style)
    except SaSOKEError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk or an --out that cannot be a folder
        print(f"error: {os_error_message(error, args.out)}", file=sys.stderr)
        return 2
    for split, counts in summary["splits"].items():
        print(f"{split}: {counts['clips']} clips, {counts['frames']} frames")
    print(f"style {summary['style']}: {summary['words']} words, {summary['signers']} signers, "
          f"written to {summary['out_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
