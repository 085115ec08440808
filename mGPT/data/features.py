"""The 133-dim sign feature (SPEC section 2) and the frame-rate and length rules.

Every function takes numpy arrays or torch tensors with any leading dims and returns the same kind.
Frame functions treat the second-to-last axis as time: (..., T, D).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

from mGPT.errors import DataError
from mGPT.layout import (
    BODY_DIMS,
    FEATURE_BODY,
    FEATURE_DIMS,
    FEATURE_EXPR,
    FEATURE_JAW,
    FEATURE_LHAND,
    FEATURE_RHAND,
    FRAME_DIMS,
    HAND_DIMS,
    SMPLX_KEYS,
    SMPLX_SLICES,
)

Array = TypeVar("Array", np.ndarray, torch.Tensor)

# Body pose holds joints 1..21; the feature keeps joints 12..21, i.e. body-pose numbers 33:63.
UPPER_BODY = slice(SMPLX_SLICES["smplx_body_pose"].start + 33, SMPLX_SLICES["smplx_body_pose"].stop)
ROOT_AND_LOWER_BODY_DIMS = 36

# SOKE's fixed SMPL-X shape for turning features back into parameters.
SOKE_BETAS = np.array(
    [-0.07284723, 0.1795129, -0.27608207, 0.135155, 0.10748172,
     0.16037364, -0.01616933, -0.03450319, 0.01369138, 0.01108842],
    dtype=np.float32,
)


def _cat(parts: Sequence[Array]) -> Array:
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(list(parts), dim=-1)
    return np.concatenate(parts, axis=-1)


def _constant_like(values: np.ndarray, like: Array, leading: tuple[int, ...]) -> Array:
    """`values` (D,) broadcast to leading + (D,), same kind, dtype and device as `like`."""
    if isinstance(like, torch.Tensor):
        constant = torch.as_tensor(values, dtype=like.dtype, device=like.device)
        return constant.expand(*leading, len(values))
    return np.broadcast_to(values.astype(like.dtype), (*leading, len(values))).copy()


def _check_last_dim(x: Array, size: int, what: str) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{what} must have {size} numbers in its last dim, got shape {tuple(x.shape)}")


def smplx_to_features(x179: Array) -> Array:
    """(..., 179) SMPL-X frame -> (..., 133) feature: upper body, hands, jaw, expression."""
    _check_last_dim(x179, FRAME_DIMS, "an SMPL-X frame")
    return _cat([
        x179[..., UPPER_BODY],
        x179[..., SMPLX_SLICES["smplx_lhand_pose"]],
        x179[..., SMPLX_SLICES["smplx_rhand_pose"]],
        x179[..., SMPLX_SLICES["smplx_jaw_pose"]],
        x179[..., SMPLX_SLICES["smplx_expr"]],
    ])


def features_to_smplx(x133: Array) -> Array:
    """(..., 133) feature -> (..., 179) frame with zero root and lower body and SOKE's fixed shape."""
    _check_last_dim(x133, FEATURE_DIMS, "a sign feature")
    leading = tuple(x133.shape[:-1])
    zeros = _constant_like(np.zeros(ROOT_AND_LOWER_BODY_DIMS, np.float32), x133, leading)
    betas = _constant_like(SOKE_BETAS, x133, leading)
    return _cat([zeros, x133[..., FEATURE_BODY], x133[..., FEATURE_LHAND], x133[..., FEATURE_RHAND],
                 x133[..., FEATURE_JAW], betas, x133[..., FEATURE_EXPR]])


def split_parts(x133: Array) -> tuple[Array, Array, Array]:
    """(..., 133) -> body (..., 43) = upper body + jaw + expression, left hand (..., 45), right hand (..., 45)."""
    _check_last_dim(x133, FEATURE_DIMS, "a sign feature")
    body = _cat([x133[..., FEATURE_BODY], x133[..., FEATURE_JAW.start:FEATURE_EXPR.stop]])
    return body, x133[..., FEATURE_LHAND], x133[..., FEATURE_RHAND]


def merge_parts(body43: Array, lhand45: Array, rhand45: Array) -> Array:
    """Inverse of split_parts: (..., 43), (..., 45), (..., 45) -> (..., 133)."""
    _check_last_dim(body43, BODY_DIMS, "a body part")
    _check_last_dim(lhand45, HAND_DIMS, "a left hand part")
    _check_last_dim(rhand45, HAND_DIMS, "a right hand part")
    upper_body_dims = FEATURE_BODY.stop - FEATURE_BODY.start
    return _cat([body43[..., :upper_body_dims], lhand45, rhand45, body43[..., upper_body_dims:]])


def smplx_params_dict(x179: Array) -> dict[str, Array]:
    """(..., 179) -> {pickle key: (..., size)} with the SPEC-1 key names."""
    _check_last_dim(x179, FRAME_DIMS, "an SMPL-X frame")
    return {key: x179[..., part] for key, part in SMPLX_SLICES.items()}


def params_dict_to_array(params: dict[str, Array]) -> Array:
    """Inverse of smplx_params_dict: {key: (..., size)} -> (..., 179). Extra keys are ignored."""
    parts = []
    for key, size in SMPLX_KEYS:
        if key not in params:
            raise DataError(f"SMPL-X parameters lack key {key!r} (found {sorted(params)})")
        if params[key].shape[-1] != size:
            raise DataError(f"SMPL-X parameter {key!r} has last dim {params[key].shape[-1]}, expected {size}")
        parts.append(params[key])
    return _cat(parts)


def stats_179_to_133(mean179: Array, std179: Array) -> tuple[Array, Array]:
    """Per-dimension statistics of SMPL-X frames -> statistics of the 133-dim feature."""
    return smplx_to_features(mean179), smplx_to_features(std179)


def _stats_like(stat: np.ndarray | torch.Tensor, x: Array) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.as_tensor(stat, dtype=x.dtype, device=x.device)
    if isinstance(stat, torch.Tensor):
        return stat.detach().cpu().numpy().astype(x.dtype)
    return np.asarray(stat, dtype=x.dtype)


def normalize(x: Array, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> Array:
    """(x - mean) / (std + 1e-10) per dimension, as SOKE does."""
    return (x - _stats_like(mean, x)) / (_stats_like(std, x) + 1e-10)


def denormalize(x: Array, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> Array:
    """Inverse of normalize."""
    return x * (_stats_like(std, x) + 1e-10) + _stats_like(mean, x)


def _take_frames(frames: Array, indices: np.ndarray) -> Array:
    if isinstance(frames, torch.Tensor):
        return frames[..., torch.as_tensor(indices, device=frames.device), :]
    return frames[..., indices, :]


def resample_to_fps(frames: Array, fps: float, target_fps: float = 24) -> Array:
    """Subsample (..., T, D) frames recorded at `fps` to `target_fps` by keeping whole frames.

    Above the target, int(target_fps * T / fps) frames are kept, the k-th being the frame at time
    k / target_fps (SOKE keeps uniformly spaced frames the same way). At or below the target the clip
    is returned unchanged: frames are never invented here.
    """
    if fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive, got fps={fps}, target_fps={target_fps}")
    length = frames.shape[-2]
    if fps <= target_fps or length == 0:
        return frames
    kept = max(int(target_fps * length / fps), 1)
    indices = np.minimum(np.floor(np.arange(kept) * fps / target_fps).astype(np.int64), length - 1)
    return _take_frames(frames, indices)


def resample_length(frames: Array, n: int) -> Array:
    """(..., T, D) -> (..., n, D) by linear interpolation over time; first and last frames are kept."""
    length = frames.shape[-2]
    if length == 0 or n <= 0:
        raise ValueError(f"cannot resample {length} frames to {n}")
    return read_at(frames, np.linspace(0.0, length - 1, n))


def read_at(frames: Array, positions: np.ndarray) -> Array:
    """(..., T, D) frames read at fractional frame positions (n,) in [0, T - 1] by linear interpolation
    -> (..., n, D)."""
    length = frames.shape[-2]
    lower = np.floor(positions).astype(np.int64).clip(0, length - 1)
    upper = np.minimum(lower + 1, length - 1)
    weight = (positions - lower)[:, None]  # (n, 1)
    if isinstance(frames, torch.Tensor):
        weight = torch.as_tensor(weight, dtype=frames.dtype, device=frames.device)
    else:
        weight = weight.astype(frames.dtype)
    return _take_frames(frames, lower) * (1 - weight) + _take_frames(frames, upper) * weight


def apply_length_rules(frames: Array, min_frames: int = 40, max_frames: int = 400, multiple: int = 4) -> Array:
    """SOKE's clip length rules on (..., T, D): resample up to min_frames or down to max_frames,
    otherwise centre-crop to a multiple of `multiple` frames.

    `multiple` is the tokenizer's frames per code (2**DOWN_T, 4 in SOKE), so every result encodes to whole
    codes. The two resampling targets are rounded inwards to multiples of it (40 and 400 already are for
    4 and 8).
    """
    shortest, longest = _length_bounds(min_frames, max_frames, multiple)
    length = frames.shape[-2]
    if length < shortest:
        return resample_length(frames, shortest)
    if length > longest:
        return resample_length(frames, longest)
    excess = length % multiple
    start = excess // 2
    return frames[..., start:start + length - excess, :]


def ruled_length(length: int, min_frames: int = 40, max_frames: int = 400, multiple: int = 4) -> int:
    """How many frames apply_length_rules leaves a clip of `length` frames."""
    shortest, longest = _length_bounds(min_frames, max_frames, multiple)
    if length < shortest:
        return shortest
    if length > longest:
        return longest
    return length - length % multiple


def _length_bounds(min_frames: int, max_frames: int, multiple: int) -> tuple[int, int]:
    """The shortest and longest clip the length rules keep: min_frames and max_frames rounded inwards to
    multiples of `multiple`."""
    if multiple < 1:
        raise ValueError(f"multiple must be positive, got {multiple}")
    shortest = -(-min_frames // multiple) * multiple
    return shortest, max(max_frames // multiple * multiple, shortest)


def clip_features(frames179: Array, min_frames: int = 40, max_frames: int = 400, multiple: int = 4) -> Array:
    """A stored clip (T, 179) as the models see it: length rules applied (`multiple` = the tokenizer's
    frames per code), then the 133-dim feature."""
    return smplx_to_features(apply_length_rules(frames179, min_frames, max_frames, multiple))


def reference_params(frames179: Array, min_frames: int = 40, max_frames: int = 400, multiple: int = 4) -> Array:
    """What generated motion is scored against: a stored clip (T, 179) as the models see it, back in
    SMPL-X (T', 179) with the dropped numbers set as features_to_smplx sets them."""
    return features_to_smplx(clip_features(frames179, min_frames, max_frames, multiple))
