"""Video rendering: the mesh avatar's frames/s against the stick figure's, in one run, on the same clips.

    python bench/bench_render.py [--frames 48] [--size 512]

Two synthetic 2-second signing clips (arms and fingers moving) stand for a generated clip and its
reference. Measured, in frames per second:
  skinning   SMPL-X parameters -> the mannequin's joint matrices (what the CPU does per frame; the
             vertices are skinned in the shader), next to mannequin-x's own numpy `vertices()`
  rendering  one 512 x 512 body panel drawn offscreen and read back (llvmpipe on a CPU-only machine)
  together   one clip as one panel with its hand insets, posed and drawn
  video      the full side-by-side frame (two panels, four hand insets, titles, caption), and the same
             written to an .mp4 through `mGPT.render.video.render_video`, against the skeleton's
  encoding   those frames written to .mp4 alone, with x264's default preset (medium) and ours
The last line is fps=<side-by-side mesh video frames per second, mp4 included>. On a loaded machine
wall-clock rates fall with the load; frames per CPU second of this process are printed beside them.

    python bench/bench_render.py --example docs/render_example.png

writes one side-by-side frame of the two clips instead (the README's picture) and measures nothing.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from mGPT.data.features import features_to_smplx
from mGPT.kinematics import build_kinematics
from mGPT.render.avatar import mannequin_avatar
from mGPT.render.mesh_renderer import MeshRenderer
from mGPT.render.mesh_video import iter_mesh_frames
from mGPT.render.skeleton_video import ENCODER_PRESET, render_frames, save_video
from mGPT.render.video import render_video

CAPTION = "لغة الإشارة السعودية"


def signing_clip(frames: int, phase: float) -> np.ndarray:
    """(T, 179): forearms up in front of the chest, swinging, fingers opening and closing."""
    t = np.linspace(0, 2 * np.pi, frames, dtype=np.float32)[:, None] + phase
    params = features_to_smplx(np.zeros((frames, 133), np.float32))

    def joint(j: int) -> slice:
        return slice(3 + 3 * (j - 1), 3 + 3 * j)

    params[:, joint(16)] = np.array([0.0, -0.5, -1.1]) + 0.3 * np.sin(t) * np.array([1.0, 0.0, 0.0])
    params[:, joint(17)] = np.array([0.0, 0.5, 1.1]) + 0.3 * np.cos(t) * np.array([1.0, 0.0, 0.0])
    params[:, joint(18)] = np.array([0.0, -1.8, 0.0]) + 0.4 * np.sin(2 * t) * np.array([0.0, 1.0, 0.0])
    params[:, joint(19)] = np.array([0.0, 1.8, 0.0]) - 0.4 * np.sin(2 * t) * np.array([0.0, 1.0, 0.0])
    curl = 0.6 * (1 + np.sin(3 * t))  # (T, 1)
    params[:, 66:156] = np.tile(np.array([0.0, 0.0, 1.0], np.float32), 30) * curl
    return params


def per_second(seconds: float, frames: int) -> float:
    return frames / seconds


def measure(frames: int = 48, size: int = 512) -> dict[str, float]:
    generated, reference = signing_clip(frames, 0.0), signing_clip(frames, 0.7)
    avatar = mannequin_avatar()
    kinematics = build_kinematics()
    results: dict[str, float] = {}

    start = time.perf_counter()
    clips = [avatar.pose(generated), avatar.pose(reference)]
    results["skinning_fps"] = per_second(time.perf_counter() - start, 2 * frames)
    mannequin, few = avatar.mannequin, 4
    start = time.perf_counter()
    for p in generated[:few]:
        mannequin.vertices({"body_pose": p[3:66].reshape(21, 3), "hand_pose": p[66:156].reshape(30, 3),
                            "head_pose": np.zeros((3, 3), np.float32), "pelvis_rotation": p[:3]})
    results["mannequin_x_vertices_fps"] = per_second(time.perf_counter() - start, few)

    renderer = MeshRenderer(avatar)
    list(iter_mesh_frames(avatar, clips[:1], size=(size, size), renderer=renderer))  # warm-up
    mesh = renderer.load(clips[0].skin)
    limits = np.array([[-0.5, 0.5], [-0.7, 0.3]])
    start = time.perf_counter()
    for t in range(frames):
        renderer.pose(mesh, clips[0], t)
        renderer.draw(mesh, "body", "front", limits, (size, size), (1.0, 1.0, 1.0))
    results["rendering_fps"] = per_second(time.perf_counter() - start, frames)

    start = time.perf_counter()
    list(iter_mesh_frames(avatar, [avatar.pose(generated)], size=(size, size), renderer=renderer))
    results["one_panel_fps"] = per_second(time.perf_counter() - start, frames)

    start = time.perf_counter()
    drawn = list(iter_mesh_frames(avatar, [avatar.pose(generated), avatar.pose(reference)], caption=CAPTION,
                                  size=(size, size), renderer=renderer))  # encoded alone below
    results["side_by_side_frames_fps"] = per_second(time.perf_counter() - start, frames)

    start = time.perf_counter()
    joints = [kinematics(torch.from_numpy(clip)).numpy() for clip in (generated, reference)]
    render_frames(joints[0], kinematics.parents, caption=CAPTION, reference=joints[1], size=(size, size))
    results["skeleton_side_by_side_frames_fps"] = per_second(time.perf_counter() - start, frames)

    with tempfile.TemporaryDirectory() as folder:
        for avatar_name in ("skeleton", "mesh"):  # warm-up: the process's first mesh video loads the avatar
            render_video(generated[:2], Path(folder) / "warm-up.mp4", kinematics=kinematics, avatar=avatar_name,
                         size=(size, size))
        for avatar_name in ("skeleton", "mesh"):
            start, cpu_start = time.perf_counter(), time.process_time()
            render_video(generated, Path(folder) / f"{avatar_name}.mp4", kinematics=kinematics, caption=CAPTION,
                         reference_params=reference, fps=24, avatar=avatar_name, size=(size, size))
            results[f"{avatar_name}_video_fps"] = per_second(time.perf_counter() - start, frames)
            # CPU seconds of this process, all its threads (llvmpipe's too): on a machine that others load,
            # frames per CPU second is what the same work gives when it has the cores to itself, or less
            results[f"{avatar_name}_video_fps_per_cpu_s"] = per_second(time.process_time() - cpu_start, frames)
        for preset in ("medium", ENCODER_PRESET):  # x264's default against ours, on the same frames
            path = Path(folder) / f"{preset}.mp4"
            start = time.perf_counter()
            save_video(drawn, path, fps=24, preset=preset)
            results[f"encode_ms_{preset}"] = 1000 * (time.perf_counter() - start) / frames
            results[f"encode_bytes_{preset}"] = path.stat().st_size
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48, help="frames per clip (default 48: 2 s at 24 fps)")
    parser.add_argument("--size", type=int, default=512, help="panel width and height in pixels")
    parser.add_argument("--example", type=Path, help="write one side-by-side frame to this .png and stop")
    args = parser.parse_args()
    if args.example:
        avatar = mannequin_avatar()
        clips = [avatar.pose(signing_clip(args.frames, phase)) for phase in (0.0, 0.7)]
        frames = iter_mesh_frames(avatar, clips, caption=CAPTION, size=(args.size, args.size))
        frame = next(itertools.islice(frames, args.frames // 3, None))  # fingers half curled, arms apart
        iio.imwrite(args.example, frame)
        print(f"example frame: {args.example}")
        return
    torch.set_num_threads(1)
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} (1 min) at the start")
    results = measure(args.frames, args.size)
    print(f"skinning (joint matrices, CPU): {results['skinning_fps']:,.0f} frames/s; mannequin-x's numpy "
          f"vertices(): {results['mannequin_x_vertices_fps']:.1f} frames/s")
    print(f"rendering one {args.size}x{args.size} body panel: {results['rendering_fps']:.1f} frames/s")
    print(f"together, one panel with hand insets: {results['one_panel_fps']:.1f} frames/s")
    print(f"side by side (2 panels, 4 insets, caption), frames only: mesh {results['side_by_side_frames_fps']:.1f}"
          f" frames/s, skeleton {results['skeleton_side_by_side_frames_fps']:.1f} frames/s")
    print(f"side by side to .mp4 (render_video): mesh {results['mesh_video_fps']:.1f} frames/s, skeleton "
          f"{results['skeleton_video_fps']:.1f} frames/s, mesh/skeleton time "
          f"{results['skeleton_video_fps'] / results['mesh_video_fps']:.2f}x")
    print(f"the same per CPU second of this process: mesh {results['mesh_video_fps_per_cpu_s']:.1f} frames, "
          f"skeleton {results['skeleton_video_fps_per_cpu_s']:.1f} frames")
    print("encoding the side-by-side mesh frames alone: " + ", ".join(
        f"x264 {preset} {results[f'encode_ms_{preset}']:.1f} ms a frame, {results[f'encode_bytes_{preset}']:,} bytes"
        for preset in ("medium", ENCODER_PRESET)))
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) at the end")
    print(f"fps={results['mesh_video_fps']:.1f}")


if __name__ == "__main__":
    main()
