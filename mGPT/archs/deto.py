"""DETO, the decoupled sign tokenizer: three independent VQ-VAEs for body, left hand and right hand.

A (B, T, 133) sign feature becomes (B, T/F, 3) codes [body, lhand, rhand] and back, F = frames_per_code =
2**DOWN_T (4 in SOKE), equal for the three parts. Everything that cuts clip lengths or turns codes back into
frames takes F from the tokenizer. The tokenizer owns the mean/std it was trained with, because its codes
only mean something for features normalised that way.

`load_tokenizer` reads either our stage-1 checkpoint (weights, config and statistics in one file) or SOKE's
released one (weights only; SOKE's mean.pt / std.pt must be given alongside).
"""

import hashlib
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PosixPath
from typing import Any

import numpy as np
import omegaconf
import torch
from omegaconf import DictConfig, ListConfig
from torch import nn

from mGPT.archs.vqvae import VQVAE
from mGPT.data.features import denormalize, merge_parts, normalize, split_parts, stats_179_to_133
from mGPT.errors import CheckpointError, ConfigError
from mGPT.layout import FEATURE_DIMS, FRAME_DIMS, PART_DIMS, PARTS

log = logging.getLogger(__name__)

# attribute names = SOKE's state_dict prefixes, so its checkpoint loads without renaming
PART_MODULES = {"body": "vae", "lhand": "hand_vae", "rhand": "rhand_vae"}
# training state of the EMA codebooks: saved and restored, but not part of what the weights *are*
EMA_BUFFERS = ("code_sum", "code_count", "initialised")
OUR_PREFIX = "tokenizer."


class DETO(nn.Module):
    """Body (43 features), left hand (45) and right hand (45) VQ-VAEs plus the feature statistics."""

    def __init__(self, body: dict, lhand: dict, rhand: dict, mean133: Any, std133: Any):
        super().__init__()
        for part, kwargs in zip(PARTS, (body, lhand, rhand), strict=True):
            if kwargs.get("nfeats") != PART_DIMS[part]:
                raise ConfigError(
                    f"VQ.{part}: nfeats is {kwargs.get('nfeats')!r}, but the {part} tokenizer reads "
                    f"{PART_DIMS[part]} features; give nfeats=mGPT.layout.PART_DIMS[{part!r}] "
                    "(mGPT.config.vq_kwargs does)"
                )
        down_t = {part: kwargs.get("down_t", 2) for part, kwargs in zip(PARTS, (body, lhand, rhand), strict=True)}
        if len(set(down_t.values())) != 1:
            # one step of codes is one [body, lhand, rhand] triplet: the three must cover the same frames
            raise ConfigError(
                "VQ.BODY.DOWN_T, VQ.LHAND.DOWN_T and VQ.RHAND.DOWN_T must be equal (got "
                + ", ".join(f"{part} {value}" for part, value in down_t.items())
                + "): each code step is one body, left-hand and right-hand code for the same frames; "
                "set the same DOWN_T in configs/vq/{body,lhand,rhand}.yaml"
            )
        self.vae = VQVAE(**body)
        self.hand_vae = VQVAE(**lhand)
        self.rhand_vae = VQVAE(**rhand)
        mean = torch.as_tensor(np.asarray(mean133, dtype=np.float32)).reshape(-1)
        std = torch.as_tensor(np.asarray(std133, dtype=np.float32)).reshape(-1)
        if mean.numel() != FEATURE_DIMS or std.numel() != FEATURE_DIMS:
            raise ValueError(f"mean and std must have {FEATURE_DIMS} numbers each, got {mean.numel()} and "
                             f"{std.numel()}")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.load_report: LoadReport | None = None

    @property
    def frames_per_code(self) -> int:
        """Frames per code step (2**DOWN_T): clips must be multiples of it, N codes decode to N times it."""
        return self.vae.frames_per_code

    def part_vaes(self) -> dict[str, VQVAE]:
        return {part: getattr(self, PART_MODULES[part]) for part in PARTS}

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features (..., 133) -> normalised with this tokenizer's statistics."""
        return normalize(features, self.mean, self.std)

    def denormalize(self, features_norm: torch.Tensor) -> torch.Tensor:
        """Normalised features (..., 133) -> raw features."""
        return denormalize(features_norm, self.mean, self.std)

    def forward(self, x_norm: torch.Tensor) -> dict[str, torch.Tensor]:
        """x_norm: normalised features (B, T, 133) -> reconstruction (B, T, 133) and per-part statistics."""
        _check_features(x_norm)
        out: dict[str, torch.Tensor] = {}
        recons = []
        for (part, vae), part_x in zip(self.part_vaes().items(), split_parts(x_norm), strict=True):
            recon, commit_loss, perplexity = vae(part_x)  # (B, T, F_part)
            recons.append(recon)
            out[f"commit_{part}"] = commit_loss
            out[f"perplexity_{part}"] = perplexity
            out[f"dead_codes_{part}"] = vae.quantizer.dead_codes.clone()
        out["recon"] = merge_parts(*recons)  # (B, T, 133)
        return out

    @torch.no_grad()
    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Raw (not normalised) features (B, T, 133), T a multiple of frames_per_code -> codes (B, T/F, 3) long.

        Columns are body, left hand, right hand. The codebooks are never updated here.
        """
        features = torch.as_tensor(features, dtype=torch.float32, device=self.mean.device)
        _check_features(features)
        parts = split_parts(self.normalize(features))
        codes = [vae.encode(part_x) for vae, part_x in zip(self.part_vaes().values(), parts, strict=True)]
        return torch.stack(codes, dim=-1)  # (B, T/F, 3)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, N, 3) long [body, lhand, rhand] -> raw features (B, N * frames_per_code, 133)."""
        codes = torch.as_tensor(codes, device=self.mean.device)
        if codes.dim() != 3 or codes.shape[-1] != 3:
            raise ValueError(f"expected codes of shape (B, N, 3) [body, lhand, rhand], got {tuple(codes.shape)}")
        parts = []
        for i, (part, vae) in enumerate(self.part_vaes().items()):
            try:
                parts.append(vae.decode(codes[..., i].long()))  # (B, N * frames_per_code, F_part)
            except ValueError as err:
                raise ValueError(f"{part} codes (column {i}): {err}") from err
        return self.denormalize(merge_parts(*parts).float())

    def config(self) -> dict[str, dict]:
        """The VQVAE kwargs of each part, as `DETO(**config(), mean133=..., std133=...)` takes them."""
        return {part: vae.config() for part, vae in self.part_vaes().items()}

    def fingerprint(self) -> str:
        """sha256 over weights, codebooks and statistics; equal weights give an equal hash on any device.

        The EMA training buffers are left out: they do not change what the tokenizer computes.
        """
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            if name.rsplit(".", 1)[-1] in EMA_BUFFERS:
                continue
            tensor = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def checkpoint_metadata(self) -> dict:
        """What a stage-1 checkpoint stores next to the weights to rebuild this tokenizer on its own."""
        return {
            "tokenizer_config": self.config(),
            "mean133": self.mean.cpu().tolist(),
            "std133": self.std.cpu().tolist(),
            "fingerprint": self.fingerprint(),
        }


def _check_features(x: torch.Tensor) -> None:
    if x.dim() != 3 or x.shape[-1] != FEATURE_DIMS:
        raise ValueError(f"expected sign features of shape (B, T, {FEATURE_DIMS}), got {tuple(x.shape)}")


@dataclass
class LoadReport:
    """What happened to each key when a checkpoint was loaded into a DETO."""

    source: str  # "sasoke" or "soke"
    missing: list[str] = field(default_factory=list)  # model keys left at random init: a real problem
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys the tokenizer did not use
    filled: list[str] = field(default_factory=list)  # model keys absent from the file but set otherwise

    def summary(self) -> str:
        text = f"{len(self.missing)} missing key(s)"
        if self.missing:
            text += ": " + ", ".join(self.missing[:10]) + (" ..." if len(self.missing) > 10 else "")
        text += f"; {len(self.unexpected)} unused key(s)"
        if self.unexpected:
            by_prefix = Counter(key.split(".", 1)[0] + "." for key in self.unexpected)
            text += " (" + ", ".join(f"{n} under '{prefix}'" for prefix, n in sorted(by_prefix.items())) + ")"
        return text + f"; {len(self.filled)} key(s) filled without the file (statistics, EMA state)"


# Plain-data types that Lightning checkpoints carry in their hyper-parameters (OmegaConf configs, paths).
# Allowing them keeps `weights_only=True`, which refuses anything that could run code while unpickling.
CONFIG_SAFE_GLOBALS = [
    DictConfig, ListConfig, omegaconf.base.ContainerMetadata, omegaconf.base.Metadata, Any,
    omegaconf.nodes.AnyNode, omegaconf.nodes.StringNode, omegaconf.nodes.IntegerNode, omegaconf.nodes.FloatNode,
    omegaconf.nodes.BooleanNode, omegaconf.nodes.BytesNode, omegaconf.nodes.PathNode,
    dict, list, tuple, int, float, str, bool, bytes, defaultdict, PosixPath,
]  # fmt: skip


def _read_checkpoint(path: Path, trust_pickle: bool) -> dict:
    if not path.exists():
        raise CheckpointError(f"tokenizer checkpoint not found: {path}. Check TRAIN.PRETRAINED_VAE / the path.")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the tokenizer checkpoint file (.ckpt) inside it")
    try:
        if trust_pickle:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(CONFIG_SAFE_GLOBALS):
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if refused:
            raise CheckpointError(
                f"{path} holds a Python object of type {refused.group(1)} besides tensors; safe loading refuses "
                "it because unpickling it could run code. If you trust where the file came from, load it "
                "with load_tokenizer(..., trust_pickle=True)."
            ) from err
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: {str(err)[:200]}). "
            "Check that the download finished and that this is a tokenizer .ckpt file."
        ) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} is not a checkpoint: it holds a {type(checkpoint).__name__}, not a dict")
    return checkpoint


def _state_dict_of(checkpoint: dict, path: Path) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)} if isinstance(state, dict) else {}
    if not tensors:
        raise CheckpointError(f"{path} has no 'state_dict' with weights; it is not a model checkpoint")
    return tensors


def _load_our_checkpoint(checkpoint: dict, path: Path) -> DETO:
    meta = checkpoint["sasoke"]
    for key in ("tokenizer_config", "mean133", "std133"):
        if key not in meta:
            raise CheckpointError(f"{path}: checkpoint['sasoke'] has no '{key}'; the file is damaged or too old")
    config = meta["tokenizer_config"]
    try:
        deto = DETO(config["body"], config["lhand"], config["rhand"], meta["mean133"], meta["std133"])
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise CheckpointError(f"{path}: cannot rebuild the tokenizer from its stored config ({err})") from err
    state = _state_dict_of(checkpoint, path)
    ours = {k.removeprefix(OUR_PREFIX): v for k, v in state.items() if k.startswith(OUR_PREFIX)}
    try:
        deto.load_state_dict(ours, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the tokenizer weights do not fit its stored config: {err}") from err
    report = LoadReport("sasoke", unexpected=sorted(k for k in state if not k.startswith(OUR_PREFIX)))
    stored = meta.get("fingerprint")
    if stored is not None and stored != deto.fingerprint():
        log.warning("%s: the stored fingerprint does not match the loaded weights and statistics", path)
    deto.load_report = report
    return deto


def _load_stats(mean_path: str | Path, std_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """SOKE's 179-dim (or our 133-dim) mean.pt / std.pt -> (133,), (133,) float32."""
    stats = []
    for path in (Path(mean_path), Path(std_path)):
        if not path.is_file():
            raise CheckpointError(f"statistics file not found: {path}. Check DATASET.MEAN_PATH / DATASET.STD_PATH.")
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(f"{path} is not a torch.save'd tensor of statistics ({err})") from err
        if not isinstance(value, torch.Tensor) or value.numel() not in (FEATURE_DIMS, FRAME_DIMS):
            got = f"{value.numel()} numbers" if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{path} must hold a tensor of {FRAME_DIMS} (SOKE's) or {FEATURE_DIMS} numbers, "
                                  f"got {got}")
        stats.append(value.detach().float().reshape(-1).numpy())
    mean, std = stats
    if mean.size != std.size:
        raise CheckpointError(
            f"{mean_path} has {mean.size} numbers but {std_path} has {std.size}; give a matching mean/std pair"
        )
    if mean.size == FRAME_DIMS:
        mean, std = stats_179_to_133(mean, std)
    return np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)


def _soke_part_kwargs(state: dict[str, torch.Tensor], prefix: str, part: str, path: Path) -> dict:
    """Rebuild one VQ-VAE's kwargs from the tensor shapes under `prefix` (dilation growth cannot be seen)."""
    first_conv = state.get(f"{prefix}.encoder.model.0.weight")  # (width, nfeats, 3)
    codebook = state.get(f"{prefix}.quantizer.codebook")  # (code_num, code_dim)
    if first_conv is None or codebook is None:
        raise CheckpointError(
            f"{path} has no '{prefix}.encoder.model.0.weight' / '{prefix}.quantizer.codebook': it is neither "
            "SOKE's tokenizer checkpoint nor one of ours. Give a stage-1 (tokenizer) checkpoint."
        )
    if first_conv.shape[1] != PART_DIMS[part]:
        raise CheckpointError(
            f"{path}: '{prefix}' reads {first_conv.shape[1]} features, the {part} tokenizer needs "
            f"{PART_DIMS[part]}; this checkpoint was made for another feature layout"
        )
    encoder = re.escape(f"{prefix}.encoder.model.")
    down_convs = [k for k in state if re.fullmatch(rf"{encoder}\d+\.0\.weight", k)]
    res_blocks = [k for k in state if re.fullmatch(rf"{encoder}2\.1\.model\.\d+\.conv1\.weight", k)]
    return dict(
        nfeats=int(first_conv.shape[1]),
        code_num=int(codebook.shape[0]),
        code_dim=int(codebook.shape[1]),
        width=int(first_conv.shape[0]),
        down_t=len(down_convs),
        depth=len(res_blocks),
        dilation_growth=3,
        ema_decay=0.99,
    )


def _load_soke_checkpoint(
    checkpoint: dict, path: Path, mean_path: str | Path | None, std_path: str | Path | None
) -> DETO:
    state = _state_dict_of(checkpoint, path)
    kwargs = {part: _soke_part_kwargs(state, PART_MODULES[part], part, path) for part in PARTS}
    if mean_path is None or std_path is None:
        raise CheckpointError(
            f"{path} is SOKE's tokenizer, which only works with the statistics it was trained with: set "
            "DATASET.MEAN_PATH and DATASET.STD_PATH to SOKE's mean.pt and std.pt (the setup notebook puts "
            "them in SOKE_data/smpl-x/)."
        )
    mean, std = _load_stats(mean_path, std_path)
    deto = DETO(kwargs["body"], kwargs["lhand"], kwargs["rhand"], mean, std)
    try:
        result = deto.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: SOKE's weights do not fit the tokenizer: {err}") from err

    report = LoadReport("soke", unexpected=sorted(result.unexpected_keys))
    absent = set(result.missing_keys)
    report.filled += [k for k in ("mean", "std") if k in absent]
    for part, module in PART_MODULES.items():
        ema_keys = [f"{module}.quantizer.{name}" for name in EMA_BUFFERS]
        if any(k in absent for k in ema_keys):
            # SOKE never saved its EMA state; restart it from the trained codebook so fine-tuning keeps it
            deto.part_vaes()[part].quantizer.reset_ema_from_codebook()
            report.filled += [k for k in ema_keys if k in absent]
    report.missing = sorted(absent - set(report.filled))
    deto.load_report = report
    return deto


def load_tokenizer(
    ckpt_path: str | Path,
    mean_path: str | Path | None = None,
    std_path: str | Path | None = None,
    *,
    trust_pickle: bool = False,
) -> DETO:
    """A DETO in eval mode from our stage-1 checkpoint or from SOKE's released tokenizer checkpoint.

    Ours carries its own config and mean/std (mean_path/std_path are then ignored). SOKE's needs SOKE's
    mean.pt / std.pt. `deto.load_report` lists missing and unused keys; they are also logged.
    """
    path = Path(ckpt_path)
    checkpoint = _read_checkpoint(path, trust_pickle)
    meta = checkpoint.get("sasoke")
    if isinstance(meta, dict):
        stage = meta.get("stage")
        if stage != "vae":
            kind = "a generator (stage lm)" if stage == "lm" else f"a stage {stage!r}"
            raise CheckpointError(
                f"{path} is {kind} checkpoint; a tokenizer checkpoint is needed here: a stage-1 (vae) "
                "checkpoint such as experiments/mgpt/<NAME>/checkpoints/best.ckpt of a DETO run, or SOKE's "
                "tokenizer.ckpt"
            )
        if mean_path is not None or std_path is not None:
            log.info("%s carries its own mean/std; the given statistics files are not used", path)
        deto = _load_our_checkpoint(checkpoint, path)
    else:
        deto = _load_soke_checkpoint(checkpoint, path, mean_path, std_path)

    report = deto.load_report
    level = logging.WARNING if report.missing or report.unexpected else logging.INFO
    log.log(level, "loaded tokenizer %s (%s format): %s", path, report.source, report.summary())
    return deto.eval()
