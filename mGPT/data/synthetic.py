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


@dataclass(frozen=True)
class _Sign:
    keyframes: np.ndarray  # (K, CONTROL_DIMS) the poses the sign moves through
    oscillation: np.ndarray  # (CONTROL_DIMS,) amplitude of a repeated movement, zeros for none
    frequency: float  # Hz of the repeated movement and of the mouthing
    mouth_open: float  # jaw opening at the peak, radians
    duration: float  # seconds at a signer's normal speed


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


def _make_sign(rng: np.random.Generator) -> _Sign:
    n_keys = int(rng.integers(2, 4))
    right_arm = rng.uniform(_ARM_LOW, _ARM_HIGH, size=(n_keys, _ARM))
    two_handed = rng.random() < 0.4
    if not two_handed:
        left_arm = np.repeat((_REST_ARM + rng.normal(0, 0.03, _ARM))[None], n_keys, axis=0)
    elif rng.random() < 0.5:
        left_arm = right_arm.copy()  # symmetric sign
    else:
        left_arm = np.repeat(rng.uniform(_ARM_LOW, _ARM_HIGH)[None], n_keys, axis=0)  # base hand held still

    start_shape, end_shape = _HANDSHAPES[rng.integers(0, len(_HANDSHAPES), size=2)]
    if rng.random() >= 0.4:
        end_shape = start_shape  # most signs keep one handshape throughout
    spread = rng.uniform(0.0, 0.25)
    right_hand = np.stack([_mirror(_handshape(end_shape if k == n_keys - 1 else start_shape, spread))
                           for k in range(n_keys)])
    left_curls = _HANDSHAPES[int(rng.integers(len(_HANDSHAPES)))] if two_handed else np.full(5, 0.2)
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
    if rng.random() < 0.4:
        # A repeated movement: tapping with the elbow or waving with the wrist of the dominant arm.
        joint = RIGHT_ARM.start + int(rng.choice([3, 4]))
        oscillation[joint] = rng.uniform(0.12, 0.3)
    return _Sign(keyframes=keyframes, oscillation=oscillation, frequency=float(rng.uniform(2.0, 3.0)),
                 mouth_open=float(rng.uniform(0.03, 0.25)), duration=float(rng.uniform(0.5, 1.0)))


def _ease(u: np.ndarray) -> np.ndarray:
    """Cosine easing on [0, 1]: zero velocity at both ends, so joined pieces stay smooth."""
    return 0.5 - 0.5 * np.cos(np.pi * u)


def _sign_motion(sign: _Sign, n_frames: int, fps: float, amplitude: float) -> np.ndarray:
    """(n_frames, CONTROL_DIMS) control vectors of one sign performed over n_frames."""
    progress = np.linspace(0.0, 1.0, n_frames)
    position = progress * (len(sign.keyframes) - 1)
    segment = np.minimum(np.floor(position).astype(int), len(sign.keyframes) - 2)
    blend = _ease(position - segment)[:, None]
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


def _blend(start: np.ndarray, end: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, D) cosine blend strictly between two control vectors (endpoints excluded)."""
    weight = _ease(np.arange(1, n_frames + 1) / (n_frames + 1))[:, None]
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


def _render_clip(signs: list[_Sign], signer: _Signer, fps: int, rng: np.random.Generator) -> np.ndarray:
    """A rest pose, the signs joined by ~0.2 s blends, the rest pose again: (T, 179) at `fps`."""
    speed = signer.speed * rng.uniform(0.85, 1.15)
    rest = _rest_control()
    pieces = [np.repeat(rest[None], int(round(rng.uniform(0.25, 0.45) * fps)), axis=0)]
    for sign in signs:
        n_frames = max(int(round(sign.duration / speed * fps)), 4)
        pieces.append(_sign_motion(sign, n_frames, fps, amplitude=rng.uniform(0.85, 1.15)))
    pieces.append(np.repeat(rest[None], int(round(rng.uniform(0.25, 0.45) * fps)), axis=0))

    joined = [pieces[0]]
    for piece in pieces[1:]:
        n_blend = int(round(rng.uniform(0.16, 0.24) * fps))
        joined += [_blend(joined[-1][-1], piece[0], n_blend), piece]
    control = np.concatenate(joined)  # (T, CONTROL_DIMS)

    control[:, LEFT_ARM.start:RIGHT_ARM.stop] += signer.arm_offset
    control += _smooth_noise(rng, control.shape, NOISE_RAD)
    return _control_to_smplx(control, signer)


# tremor, in radians per control dimension; a few mm at the wrist, below what a 4x-downsampled
# tokenizer can follow, so it sets a floor under any reconstruction error
NOISE_RAD = 0.005


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Gaussian noise averaged over 3 frames, so it looks like tremor rather than jitter."""
    noise = rng.normal(0, scale, shape)
    kernel = np.ones(3) / 3
    return np.apply_along_axis(lambda column: np.convolve(column, kernel, mode="same"), 0, noise)


def _make_signer(rng: np.random.Generator) -> _Signer:
    return _Signer(betas=rng.normal(0, 0.7, 10), root=rng.normal(0, 0.05, 3),
                   arm_offset=rng.normal(0, 0.04, 2 * _ARM), speed=float(rng.uniform(0.93, 1.07)))


def _random_sentence(classes: dict[str, tuple[str, ...]], rng: np.random.Generator,
                     forced_word: str | None = None) -> tuple[str, ...]:
    templates = [template for template in _TEMPLATES if all(part in classes for part in template)]
    if forced_word is not None:
        word_class = next(name for name, words in classes.items() if forced_word in words)
        templates = [template for template in templates if word_class in template]
    template = templates[int(rng.integers(len(templates)))]
    words = [classes[part][int(rng.integers(len(classes[part])))] for part in template]
    if forced_word is not None:
        slots = [i for i, part in enumerate(template) if forced_word in classes[part]]
        words[slots[int(rng.integers(len(slots)))]] = forced_word
    return tuple(words)


def _plan_clips(size: _Size, rng: np.random.Generator) -> list[_ClipPlan]:
    """Which sentence each clip of each split shows and who signs it."""
    vocabulary = [word for words in size.classes.values() for word in words]
    train_sentences: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    # First one sentence per word, so every word is in train; then random ones.
    for word in [vocabulary[i] for i in rng.permutation(len(vocabulary))]:
        if any(word in sentence for sentence in train_sentences):
            continue
        sentence = _random_sentence(size.classes, rng, forced_word=word)
        while sentence in seen:
            sentence = _random_sentence(size.classes, rng, forced_word=word)
        train_sentences.append(sentence)
        seen.add(sentence)
    while len(train_sentences) < size.train_sentences:
        sentence = _random_sentence(size.classes, rng)
        if sentence not in seen:
            train_sentences.append(sentence)
            seen.add(sentence)

    def unseen_sentences(count: int) -> list[tuple[str, ...]]:
        sentences = []
        while len(sentences) < count:
            sentence = _random_sentence(size.classes, rng)
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


def generate_dataset(out_dir: str | Path, seed: int = 0, small: bool = False) -> dict:
    """Write a synthetic dataset in the Isharah layout under out_dir; same seed, same bytes.

    Returns a summary: the word and signer counts and, per split, the clip and frame counts.
    """
    out_dir = Path(out_dir)
    size = _SMALL_SIZE if small else _DEFAULT_SIZE
    _claim_output(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    vocabulary = [word for words in size.classes.values() for word in words]
    signs = {word: _make_sign(np.random.default_rng([seed, 1, VOCABULARY.index(word)])) for word in vocabulary}
    signers = [_make_signer(np.random.default_rng([seed, 2, i])) for i in range(size.signers)]
    plans = _plan_clips(size, np.random.default_rng([seed, 3]))

    rows: dict[str, list[list[str]]] = {}
    summary_splits: dict[str, dict[str, int]] = {}
    for plan in tqdm(plans, desc="synthetic clips", unit="clip"):
        rng = np.random.default_rng([seed, 4, plan.video_id])
        fps = int(FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))])
        frames = _render_clip([signs[word] for word in plan.words], signers[plan.signer], fps, rng)
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

    summary = {"seed": seed, "small": small, "words": len(vocabulary), "signers": size.signers,
               "splits": summary_splits}
    (out_dir / _MARKER).write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    return {"out_dir": str(out_dir), **summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic sign dataset in the Isharah layout.")
    parser.add_argument("--out", required=True, type=Path, help="dataset root to create (empty or synthetic)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="12 words and 48 clips, for tests")
    args = parser.parse_args(argv)
    try:
        summary = generate_dataset(args.out, seed=args.seed, small=args.small)
    except SaSOKEError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk or an --out that cannot be a folder
        print(f"error: {os_error_message(error, args.out)}", file=sys.stderr)
        return 2
    for split, counts in summary["splits"].items():
        print(f"{split}: {counts['clips']} clips, {counts['frames']} frames")
    print(f"{summary['words']} words, {summary['signers']} signers, written to {summary['out_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
