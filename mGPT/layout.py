"""The numbers of SaSOKE's formats, each defined once: the 179-number SMPL-X frame, the 133-dim sign
feature, its three tokenizer parts, and where a data root keeps its packed cache.

Every other module takes these from here; a module that needs "179" or "body, lhand, rhand" imports it.
"""

from __future__ import annotations

from pathlib import Path

# Per-frame pickle keys in the order they are concatenated into one 179-number frame (SPEC 1).
SMPLX_KEYS = (
    ("smplx_root_pose", 3),
    ("smplx_body_pose", 63),
    ("smplx_lhand_pose", 45),
    ("smplx_rhand_pose", 45),
    ("smplx_jaw_pose", 3),
    ("smplx_shape", 10),
    ("smplx_expr", 10),
)
FRAME_DIMS = sum(size for _, size in SMPLX_KEYS)  # 179


def _smplx_slices() -> dict[str, slice]:
    slices, start = {}, 0
    for key, size in SMPLX_KEYS:
        slices[key] = slice(start, start + size)
        start += size
    return slices


# Slices of the 179-number SMPL-X frame, one per pickle key.
SMPLX_SLICES = _smplx_slices()

# The 133-dim feature (SPEC 2) and its slices.
FEATURE_DIMS = 133
FEATURE_BODY = slice(0, 30)  # SMPL-X joints 12..21: neck, collars, head, shoulders, elbows, wrists
FEATURE_LHAND = slice(30, 75)
FEATURE_RHAND = slice(75, 120)
FEATURE_JAW = slice(120, 123)
FEATURE_EXPR = slice(123, 133)

# The tokenizer's three parts, in the order of a code triplet [body, lhand, rhand].
PARTS = ("body", "lhand", "rhand")
BODY_DIMS = 43  # upper body 30 + jaw 3 + expression 10
HAND_DIMS = 45
PART_DIMS = {"body": BODY_DIMS, "lhand": HAND_DIMS, "rhand": HAND_DIMS}

CACHE_FOLDER = "_cache"
CODES_FILE = "codes.npz"  # scripts/get_motion_code.py writes it into the cache folder
DICTIONARY_FILE = "sign_dictionary.json"  # scripts/build_dictionary.py writes it into the cache folder


def default_cache_dir(data_root: str | Path) -> Path:
    """Where `python -m mGPT.data.prepare` puts the packed cache of a data root unless told otherwise."""
    return Path(data_root) / CACHE_FOLDER
