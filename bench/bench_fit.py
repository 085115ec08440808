"""The SMPL-X fitter measured: a round trip with known truth, real MediaPipe recordings, and throughput.

    python bench/bench_fit.py roundtrip [--clips 4] [--frames 60] [--noise-px 0 --exact-landmarks]   # both solvers
    python bench/bench_fit.py real [--files 600] [--solver lbfgs] [--figure docs/fit_real.png]   # spoken-to-signed
    python bench/bench_fit.py speed [--frames 16384]   # both solvers; 1 process of 1 and 2 threads, 2 processes

The two solvers: the default (Gauss-Newton, mGPT.data.fit_gauss_newton) and the first one, L-BFGS at the
settings it shipped with (LBFGS_BEFORE).

Round trip: SMPL-X clips from the synthetic sample (mGPT.data.synthetic) and from a second, differently
made set (random key poses inside the joint ranges, joined by cubic splines, random shapes) are seen
through mGPT.data.fit_check's phone (portrait 1080x1920, off-axis, 1.5 px noise, 4% of frames lose a
hand), fitted, and compared in 3D with the skeleton backend: body MPJPE (pelvis-rooted, the metric's
upper-body joints), body PA-MPJPE, hand PA-MPJPE (wrist-rooted), with the data's mean pose scored the same
way, and the 2D reprojection RMS on visible points.

Real: every .pose file of spoken-to-signed's fingerspelling lexicon (pip install spoken-to-signed) is
fitted from 2D only; reported per part: reprojection px, share of frames inside the joint limits, jitter
(mean acceleration, px/frame^2, of the fit's projected points against the input's), and the fitted hands
against MediaPipe's own 3D hands (z scaled by the image width, SPEC 9), per-frame similarity-aligned,
next to SMPL-X's mean hand scored the same way.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import CubicSpline

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mGPT.data.features import features_to_smplx, smplx_to_features  # noqa: E402
from mGPT.data.fit_check import phone_keypoints  # noqa: E402
from mGPT.data.fit_smplx import (  # noqa: E402
    FitSettings,
    PoseModel,
    fit_clips,
    from_smplx,
    group_by_signer,
    project,
    to_smplx,
)
from mGPT.data.isharah import pose_dir_path, read_clip, read_split_csv, split_csv_path  # noqa: E402
from mGPT.data.keypoints import fit_batches  # noqa: E402
from mGPT.data.mediapipe import FITTED_INDEX, LANDMARKS, LEFT_HAND, RIGHT_HAND  # noqa: E402
from mGPT.kinematics import SkeletonKinematics  # noqa: E402
from mGPT.metrics.procrustes import procrustes_align  # noqa: E402

NOISE_PX = 1.5  # per axis, the round trip's MediaPipe-like pixel noise
# the fitter before the Gauss-Newton solver: L-BFGS, 100 + 200 steps, the hand prior it was tuned with
LBFGS_BEFORE = FitSettings(solver="lbfgs", body_iterations=100, iterations=200, hand_prior=0.5)
SOLVERS = {"gauss-newton": FitSettings(), "lbfgs": LBFGS_BEFORE,
           # Gauss-Newton as it shipped first: fingers from the mean hand, the body placed on every 4th frame, no
           # landmark calibration
           "gauss-newton-before": FitSettings(finger_curls=(), smooth=1.0e3, keyframe_step=4, mark_prior=0.0)}


def pa_error(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean per-joint error (m) after a per-frame similarity alignment; (T, J, 3) each."""
    pred_t, ref_t = torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(ref, dtype=torch.float64)
    return float((procrustes_align(pred_t, ref_t) - ref_t).norm(dim=-1).mean())


def scores(pred179: np.ndarray, true179: np.ndarray, kin: SkeletonKinematics) -> dict[str, float]:
    """Body root-relative and PA MPJPE, hand PA (wrist-rooted), in mm."""
    with torch.no_grad():
        pred, true = kin(torch.as_tensor(pred179)).numpy(), kin(torch.as_tensor(true179)).numpy()
    body = kin.parts["body"]
    rooted = lambda x, part: x[:, part.joints] - x[:, [part.root]]  # noqa: E731
    out = {"body_mpjpe": float(np.linalg.norm(rooted(pred, body) - rooted(true, body), axis=-1).mean()),
           "body_pa": pa_error(pred[:, body.joints], true[:, body.joints])}
    # The 133-dim feature keeps neither the root orientation nor the shape, so a camera turned off-axis,
    # which a monocular fit cannot tell from a turned signer, costs nothing downstream: score the body
    # also as the feature sees it (zero root, SOKE's shape), the space of the project's own metric.
    with torch.no_grad():
        as_feature = [kin(torch.as_tensor(features_to_smplx(smplx_to_features(x)))).numpy()
                      for x in (pred179, true179)]
    out["body_feature_mpjpe"] = float(np.linalg.norm(rooted(as_feature[0], body) - rooted(as_feature[1], body),
                                                     axis=-1).mean())
    out["hand_pa"] = float(np.mean([pa_error(rooted(pred, kin.parts[h]), rooted(true, kin.parts[h]))
                                    for h in ("lhand", "rhand")]))
    return {k: v * 1000 for k, v in out.items()}


def random_motions(count: int, frames: int, rng: np.random.Generator, model: PoseModel) -> list[np.ndarray]:
    """Clips made unlike the synthetic sample: random key poses within the joint ranges, cubic splines."""
    clips = []
    low, high = model.low.numpy(), model.high.numpy()  # (40, 3)
    mean_hand = model.hand_mean.numpy()
    while len(clips) < count:
        keys = 4
        angles = rng.uniform(low + 0.3 * (high - low), high - 0.3 * (high - low), size=(keys, 40, 3))
        for side, sign in (("L", -1.0), ("R", 1.0)):  # arms down-forward, elbows bent: hands in front
            shoulder, elbow = model.free.index(f"{side}_Shoulder") - 1, model.free.index(f"{side}_Elbow") - 1
            angles[:, shoulder] = np.stack([rng.uniform(-0.4, 0.4, keys), sign * rng.uniform(0.2, 0.9, keys),
                                            sign * rng.uniform(0.5, 1.2, keys)], axis=1)
            angles[:, elbow] = np.stack([rng.uniform(-0.5, 0.5, keys), sign * rng.uniform(0.6, 2.0, keys),
                                         rng.uniform(-0.2, 0.2, keys)], axis=1)
        body, hands = angles[:, :10], angles[:, 10:] - mean_hand
        spline = CubicSpline(np.linspace(0, frames - 1, keys), np.concatenate(
            [body.reshape(keys, -1), hands.reshape(keys, -1)], axis=1), bc_type="clamped")
        values = spline(np.arange(frames))  # (T, 120)
        root = torch.as_tensor(rng.normal(0, 0.08, 3), dtype=torch.float32).expand(frames, 3)
        betas = torch.as_tensor(rng.normal(0, 1.0, 10), dtype=torch.float32).expand(frames, 10)
        body_t = torch.as_tensor(values[:, :30], dtype=torch.float32).reshape(frames, 10, 3)
        hands_t = torch.as_tensor(values[:, 30:], dtype=torch.float32).reshape(frames, 30, 3)
        with torch.no_grad():
            joints, _, _ = model(root, body_t, hands_t, betas)
        chest = joints[:, model.joint_index["Spine3"], 2]
        wrists = joints[:, [model.joint_index["L_Wrist"], model.joint_index["R_Wrist"]], 2]
        if (wrists - chest[:, None] > 0.05).all():
            clips.append(to_smplx(root, body_t, hands_t, betas).numpy())
    return clips


def roundtrip(args: argparse.Namespace) -> None:
    from mGPT.data.synthetic import generate_dataset

    rng = np.random.default_rng(0)
    model, kin = PoseModel(), SkeletonKinematics()
    root = Path(args.work) / "sample"
    if not (root / "test").is_dir():
        generate_dataset(root, seed=0, small=True)
    names = list(read_split_csv(split_csv_path(root, "test")).SENTENCE_NAME[:args.clips])
    sets = {"synthetic sample": [read_clip(pose_dir_path(root, "test", n))[:args.frames] for n in names],
            "random splines": random_motions(args.clips, args.frames, rng, model)}
    train = np.concatenate([read_clip(pose_dir_path(root, "train", n)) for n in
                            read_split_csv(split_csv_path(root, "train")).SENTENCE_NAME])
    mean_pose = train.mean(axis=0)  # (179,) the sample's mean pose, the do-nothing baseline
    noise_floor = args.noise_px * np.sqrt(2)  # RMS length of the 2D noise itself
    print(f"round trip: {args.clips} clips x {args.frames} frames per set, phone 1080x1920, {args.noise_px} px noise "
          f"(the noise alone: {noise_floor:.2f} px RMS){', exact landmark model' if args.exact_landmarks else ''}")
    keys = ("body_mpjpe", "body_feature_mpjpe", "body_pa", "hand_pa")
    print("| set | solver | body MPJPE mm, world (mean pose) | body MPJPE mm, feature (mean pose) | "
          "body PA mm (mean pose) | hand PA mm (mean pose) | reproj px | reproj px, noise-free points | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for set_name, truths in sets.items():
        clips, clean = [], []
        for i, t in enumerate(truths):
            options = dict(model=model, offset_jitter=0.0 if args.exact_landmarks else 0.003,
                           tip_stretch=0.0 if args.exact_landmarks else 0.05)
            # the same draws without the pixel noise (a zero-scale normal still draws): where the true
            # landmarks project, so the fit's error in the image can be seen apart from the noise
            clean.append(phone_keypoints(f"s{i}_{set_name[:3]}{i}", t, copy.deepcopy(rng), noise_px=0.0, **options))
            clips.append(phone_keypoints(f"s{i}_{set_name[:3]}{i}", t, rng, noise_px=args.noise_px, **options))
        base = [scores(_with_mean_pose(t, mean_pose), t, kin) for t in truths]
        for solver in args.solvers:
            start = time.perf_counter()
            fits = fit_clips(clips, SOLVERS[solver], model=model)
            seconds = time.perf_counter() - start
            fitted = [scores(f.params, t, kin) for f, t in zip(fits, truths, strict=True)]
            row = " | ".join(f"{np.mean([s[k] for s in fitted]):.1f} ({np.mean([s[k] for s in base]):.1f})"
                             for k in keys)
            print(f"| {set_name} | {solver} | {row} | {_visible_rms(fits, clips, model):.2f} | "
                  f"{_visible_rms(fits, clean, model):.2f} | {seconds:.1f} |")


def _with_mean_pose(truth: np.ndarray, mean_pose: np.ndarray) -> np.ndarray:
    """The truth with its body, hand and face numbers replaced by the mean pose (root and shape kept)."""
    baseline = truth.copy()
    baseline[:, 3:166] = mean_pose[3:166]
    return baseline


@torch.no_grad()
def _reprojected(fit, clip, model: PoseModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fit's landmarks in the clip's image (T, L, 2) pixels, with its body and hand poses."""
    root, body, hands, betas = from_smplx(torch.as_tensor(fit.params))
    n = len(fit.params)
    shift = None if fit.mark_shift is None else torch.as_tensor(fit.mark_shift).expand(n, -1, -1)
    _, _, marks = model.pose(root, body, hands, betas, shift)  # with the signer's calibration, if any
    centre = torch.tensor([[clip.image_size[0] / 2, clip.image_size[1] / 2]]).expand(n, 2)
    pixels, _ = project(marks, torch.as_tensor(fit.translation), torch.full((n,), fit.focal), centre)
    return pixels, body, hands


def _visible_rms(fits, clips, model: PoseModel) -> float:
    errors = []
    for fit, clip in zip(fits, clips, strict=True):
        pixels, _, _ = _reprojected(fit, clip, model)
        residual = ((pixels.numpy() - clip.points[:, FITTED_INDEX]) ** 2).sum(-1)
        errors.append(residual[clip.visible[:, FITTED_INDEX]])
    return float(np.sqrt(np.concatenate(errors).mean()))


def lexicon_dir() -> Path | None:
    try:
        import spoken_to_signed
    except ImportError:
        return None
    folder = Path(spoken_to_signed.__file__).parent / "assets" / "fingerspelling_lexicon"
    return folder if (folder / "index.csv").is_file() else None


def real(args: argparse.Namespace) -> None:
    from mGPT.data.keypoints import in_image, read_pose_file

    folder = Path(args.lexicon) if args.lexicon else lexicon_dir()
    if folder is None:
        print("skipped: spoken-to-signed is not installed (pip install spoken-to-signed)")
        return
    files = sorted(folder.rglob("*.pose"))[:args.files]
    model = PoseModel()
    raw, truths3d = [], []
    from pose_format import Pose

    for file in files:
        clip = read_pose_file(file, f"{file.parent.name}_{file.stem}", "x", None)
        if isinstance(clip, str):
            continue
        pose = Pose.read(file.read_bytes())
        raw.append(clip)
        truths3d.append(_mediapipe_hands(pose, clip.image_size[0]))
    from mGPT.data.fit_smplx import ClipKeypoints

    clips = [ClipKeypoints(c.clip_id, c.points, in_image(c.points, c.visible, c.image_size), c.image_size,
                           c.clip_id.split("_")[0]) for c in raw]
    start = time.perf_counter()
    fits = []
    for i in range(0, len(clips), args.batch):
        fits += fit_clips(clips[i:i + args.batch], SOLVERS[args.solver], model=model)
    seconds = time.perf_counter() - start
    frames = sum(len(c.points) for c in clips)
    print(f"real, {args.solver}: {len(clips)} .pose files, {frames} frames fitted in {seconds:.0f} s "
          f"({frames / seconds:.1f} frames/s)")
    parts = np.array([m.part for m in LANDMARKS])
    stats = {p: {"err": [], "jit_fit": [], "jit_in": []} for p in ("body", "face", "lhand", "rhand")}
    inside, hand_fit, hand_mean = [], [], []
    kin = SkeletonKinematics()
    mean_hand = np.zeros(179, dtype=np.float32)
    for fit, clip, hands3d in zip(fits, clips, truths3d, strict=True):
        pixels, body, hands = _reprojected(fit, clip, model)
        n = len(fit.params)
        with torch.no_grad():
            inside.append(model.inside_limits(body, hands).numpy())
            joints = kin(torch.as_tensor(fit.params)).numpy()
            mean_joints = kin(torch.as_tensor(np.repeat(mean_hand[None], n, 0))).numpy()
        pixels = pixels.numpy()
        observed, seen = clip.points[:, FITTED_INDEX], clip.visible[:, FITTED_INDEX]
        for part in stats:
            cols = parts == part
            mask = seen[:, cols]
            if mask.any():
                stats[part]["err"].append(((pixels[:, cols] - observed[:, cols]) ** 2).sum(-1)[mask])
            ok = mask[2:] & mask[1:-1] & mask[:-2]
            if ok.any():
                acc_fit = np.linalg.norm(pixels[2:, cols] - 2 * pixels[1:-1, cols] + pixels[:-2, cols], axis=-1)
                acc_in = np.linalg.norm(observed[2:, cols] - 2 * observed[1:-1, cols] + observed[:-2, cols], axis=-1)
                stats[part]["jit_fit"].append(acc_fit[ok])
                stats[part]["jit_in"].append(acc_in[ok])
        for side, block, name in (("lhand", LEFT_HAND, "L"), ("rhand", RIGHT_HAND, "R")):
            seen_hand = clip.visible[:, block].all(axis=1)
            if not seen_hand.any():
                continue
            part = kin.parts[side]
            order = _mediapipe_order(kin, name)  # our 16 joints in MediaPipe's indices
            truth = hands3d[seen_hand][:, block][:, order]
            hand_fit.append(_pa_frames(joints[seen_hand][:, part.joints], truth))
            hand_mean.append(_pa_frames(mean_joints[seen_hand][:, part.joints], truth))
    print("| part | reprojection px (RMS) | jitter fit / input px/frame^2 |")
    print("|---|---|---|")
    for part, values in stats.items():
        if values["err"]:
            rms = np.sqrt(np.concatenate(values["err"]).mean())
            jit = (np.concatenate(values["jit_fit"]).mean(), np.concatenate(values["jit_in"]).mean())
            print(f"| {part} | {rms:.1f} | {jit[0]:.2f} / {jit[1]:.2f} |")
    print(f"frames inside the joint limits: {np.concatenate(inside).mean() * 100:.1f}%")
    hand_fit, hand_mean = np.concatenate(hand_fit), np.concatenate(hand_mean)
    print(f"hands vs MediaPipe 3D (similarity-aligned per frame, shape only): fit {hand_fit.mean():.3f}, "
          f"SMPL-X mean hand {hand_mean.mean():.3f} (units: fraction of the hand's size, {len(hand_fit)} frames)")
    if args.figure:
        _figure(fits[: 3], clips[: 3], model, Path(args.figure))


def _mediapipe_hands(pose, width: int) -> np.ndarray:
    """(T, 86, 3) MediaPipe's hand points with z scaled by the image width (SPEC 9); the rest zeros."""
    names = [c.name for c in pose.header.components]
    sizes = [len(c.points) for c in pose.header.components]
    starts = dict(zip(names, np.cumsum([0, *sizes[:-1]]), strict=True))
    data = np.ma.getdata(pose.body.data)[:, 0, :, :3].astype(np.float64).copy()
    data[..., 2] *= width
    out = np.zeros((len(data), 86, 3))
    out[:, RIGHT_HAND] = data[:, starts["RIGHT_HAND_LANDMARKS"]:starts["RIGHT_HAND_LANDMARKS"] + 21]
    out[:, LEFT_HAND] = data[:, starts["LEFT_HAND_LANDMARKS"]:starts["LEFT_HAND_LANDMARKS"] + 21]
    return out


_MP_INDEX = {"Wrist": 0, "Thumb1": 1, "Thumb2": 2, "Thumb3": 3, "Index1": 5, "Index2": 6, "Index3": 7,
             "Middle1": 9, "Middle2": 10, "Middle3": 11, "Ring1": 13, "Ring2": 14, "Ring3": 15, "Pinky1": 17,
             "Pinky2": 18, "Pinky3": 19}


def _mediapipe_order(kin: SkeletonKinematics, side: str) -> list[int]:
    return [_MP_INDEX[kin.joint_names[j].split("_", 1)[1]] for j in kin.parts[f"{side.lower()}hand"].joints]


def _pa_frames(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(T,) per-frame similarity-aligned error, divided by the reference hand's size (RMS distance to its
    centroid): the MediaPipe hands are in pixels, so the score is scale-free. pred is SMPL-X (y up), ref is
    image-like (y down): procrustes allows no reflection, so ref is flipped to y up first."""
    ref = ref * np.array([1.0, -1.0, -1.0])
    pred_t, ref_t = torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(ref, dtype=torch.float64)
    aligned = procrustes_align(pred_t, ref_t)
    size = (ref_t - ref_t.mean(dim=1, keepdim=True)).norm(dim=-1).pow(2).mean(dim=1).sqrt()
    return ((aligned - ref_t).norm(dim=-1).mean(dim=1) / size).numpy()


def _figure(fits, clips, model: PoseModel, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(fits), figsize=(4 * len(fits), 4.5))
    for axis, fit, clip in zip(np.atleast_1d(axes), fits, clips, strict=True):
        frame = len(fit.params) // 2
        with torch.no_grad():
            root, body, hands, betas = from_smplx(torch.as_tensor(fit.params[frame:frame + 1]))
            joints, marks, _ = model(root, body, hands, betas)
            centre = torch.tensor([[clip.image_size[0] / 2, clip.image_size[1] / 2]])
            pixels, _ = project(joints, torch.as_tensor(fit.translation[frame:frame + 1]),
                                torch.tensor([fit.focal]), centre)
        pixels = pixels[0].numpy()
        for j, parent in enumerate(model.parents):
            if parent >= 0 and model.names[j] not in ("L_Hip", "R_Hip"):
                axis.plot(*pixels[[parent, j]].T, color="tab:blue", lw=1.5)
        seen = clip.visible[frame]
        axis.scatter(*clip.points[frame, seen].T, s=6, color="tab:red", label="MediaPipe 2D input")
        fitted_marks = _reprojected(fit, clip, model)[0][frame].numpy()  # the fit's landmarks, calibration included
        axis.scatter(*fitted_marks[seen[FITTED_INDEX]].T, s=14, facecolors="none", edgecolors="tab:blue", lw=0.6,
                     label="the fit's landmarks")
        axis.set_title(f"{clip.clip_id} frame {frame}", fontsize=8)
        axis.invert_yaxis()
        axis.set_aspect("equal")
        axis.axis("off")
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=7)
    figure.suptitle("SMPL-X skeleton and landmarks fitted from 2D (blue) over the 2D input (red)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    print(f"figure: {path}")


def speed(args: argparse.Namespace) -> None:
    """Frames/s of the importer's way to fit (mGPT.data.keypoints.fit_batches: batches of --batch-frames,
    one process or several), each solver at one process of 1 and 2 threads, and 2 processes of 1 thread.
    The clock runs from the call to the last fit, the processes' start included; a small fit first warms
    this process, as any long import is warm after its first batch."""
    model = PoseModel()
    rng = np.random.default_rng(1)
    truths = random_motions(max(args.frames // 64, 1), 64, rng, model)
    clips = [phone_keypoints(f"s{i % 4}_{i}", t, rng, model=model) for i, t in enumerate(truths)]
    frames = sum(len(c.points) for c in clips)
    batches = group_by_signer(clips, args.batch_frames)
    fit_clips(clips[:1], SOLVERS["gauss-newton"], model=model)
    rates = {}
    for workers, threads in ((1, 1), (1, 2), (2, 1)):
        torch.set_num_threads(threads)
        for solver in args.solvers:
            start = time.perf_counter()
            for _ in fit_batches(batches, SOLVERS[solver], model, workers=workers, threads=threads):
                pass
            seconds = time.perf_counter() - start
            rates[solver, workers, threads] = frames / seconds
            print(f"{solver}, {workers} process(es) x {threads} thread(s): {frames} frames in {len(batches)} "
                  f"batches, {seconds:.1f} s = {frames / seconds:.1f} frames/s")
        if len(args.solvers) == 2:
            first, second = (rates[solver, workers, threads] for solver in args.solvers)
            print(f"  {workers} x {threads}: {args.solvers[0]} / {args.solvers[1]} = {first / second:.2f}x")
    for solver in args.solvers:
        print(f"{solver}: 2 processes x 1 thread / 1 process x 2 threads = "
              f"{rates[solver, 2, 1] / rates[solver, 1, 2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("roundtrip", "real", "speed"))
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, help="frames per clip (roundtrip, default 60); frames in all (speed, "
                        "default 16384: enough that the processes' start is a small share)")
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--batch", type=int, default=40, help="clips fitted together (real)")
    parser.add_argument("--batch-frames", type=int, default=1024, help="frames fitted together (speed), as the "
                        "importer's --batch-frames")
    parser.add_argument("--lexicon", help="a lexicon folder instead of spoken-to-signed's")
    parser.add_argument("--figure", help="save a figure of three fitted clips here (real)")
    parser.add_argument("--solvers", nargs="+", choices=sorted(SOLVERS), default=["gauss-newton", "lbfgs"],
                        help="solvers compared side by side (roundtrip, speed)")
    parser.add_argument("--solver", choices=sorted(SOLVERS), default="gauss-newton", help="solver (real)")
    parser.add_argument("--noise-px", type=float, default=NOISE_PX, help="round trip: pixel noise per axis")
    parser.add_argument("--exact-landmarks", action="store_true",
                        help="round trip: landmarks exactly where the fit's model puts them (no 3 mm offsets, "
                             "no 5%% fingertip stretch)")
    parser.add_argument("--work", default="/tmp/sasoke_bench_fit")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override FitSettings fields of every solver compared, e.g. smooth=300 "
                             "finger_curls=1.0,1.5")
    args = parser.parse_args()
    args.frames = args.frames or (16384 if args.what == "speed" else 60)
    for item in args.set:
        key, _, value = item.partition("=")
        for name, settings in SOLVERS.items():
            kind = type(getattr(settings, key))
            parsed = tuple(float(v) for v in value.split(",") if v) if kind is tuple else kind(value)
            SOLVERS[name] = replace(settings, **{key: parsed})
    torch.set_num_threads(1)
    {"roundtrip": roundtrip, "real": real, "speed": speed}[args.what](args)


if __name__ == "__main__":
    main()
