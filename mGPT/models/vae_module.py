"""Stage 1: train the three-part tokenizer (DETO) on normalised motion windows."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from mGPT.archs.deto import DETO
from mGPT.config import exp_dir, vq_kwargs
from mGPT.data.features import features_to_smplx
from mGPT.errors import CheckpointError
from mGPT.kinematics import build_kinematics
from mGPT.layout import PARTS
from mGPT.metrics.sign_metrics import ReconstructionMetrics
from mGPT.models.schedule import adamw_cosine


class TokenizerModule(pl.LightningModule):
    """Trains, validates and tests `tokenizer`, whose own sizes and statistics win over the config's."""

    def __init__(self, cfg: DictConfig, tokenizer: DETO):
        super().__init__()
        self.cfg = cfg
        # a loaded tokenizer comes in eval mode; Lightning keeps modes as set, and EMA codebooks learn in train
        self.tokenizer = tokenizer.train()
        self.kinematics = build_kinematics(cfg.KINEMATICS.BACKEND, cfg.KINEMATICS.SMPLX_DIR)
        self.kinematics.requires_grad_(False)
        self.val_metrics = ReconstructionMetrics(self.kinematics.parts)
        self.test_metrics = ReconstructionMetrics(self.kinematics.parts)

    @classmethod
    def from_config(cls, cfg: DictConfig, mean133: np.ndarray, std133: np.ndarray) -> TokenizerModule:
        """A new tokenizer with the VQ sizes of the config, for features normalised by mean133/std133."""
        kwargs = vq_kwargs(cfg)
        tokenizer = DETO(kwargs["body"], kwargs["lhand"], kwargs["rhand"],
                         torch.as_tensor(mean133, dtype=torch.float32), torch.as_tensor(std133, dtype=torch.float32))
        return cls(cfg, tokenizer)

    def _losses(self, batch: dict) -> tuple[dict, torch.Tensor]:
        motion, mask = batch["motion"], batch["mask"]  # (B, T, 133), (B, T)
        out = self.tokenizer(motion)
        recon = out["recon"]
        per_frame = F.smooth_l1_loss(recon, motion, reduction="none").mean(-1)  # (B, T)
        recon_loss = _masked_mean(per_frame, mask)
        commit = sum(out[f"commit_{p}"] for p in PARTS)
        total = recon_loss + self.cfg.LOSS.COMMIT_WEIGHT * commit
        losses = {"loss_recon": recon_loss, "loss_commit": commit}
        if self.cfg.LOSS.JOINT_WEIGHT > 0:
            losses["loss_joints"] = self._joint_loss(recon, motion, mask)
            total = total + self.cfg.LOSS.JOINT_WEIGHT * losses["loss_joints"]
        losses["loss"] = total
        for p in PARTS:
            losses[f"perplexity_{p}"] = out[f"perplexity_{p}"]
            losses[f"dead_codes_{p}"] = torch.as_tensor(out[f"dead_codes_{p}"], dtype=torch.float32)
        return losses, recon

    def _joint_loss(self, recon: torch.Tensor, motion: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean joint distance (m) of each part rooted as the metric roots it (body at the pelvis, hands at
        their wrists), averaged over the parts: the feature loss weighs every axis-angle number alike, while
        a shoulder's error moves the whole arm."""
        pred = self.joints(recon.float())  # (B, T, J, 3)
        with torch.no_grad():
            ref = self.joints(motion.float())
        per_part = []
        for part in self.kinematics.parts.values():
            distances = (part.local(pred) - part.local(ref)).norm(dim=-1).mean(-1)  # (B, T)
            per_part.append(_masked_mean(distances, mask))
        return torch.stack(per_part).mean()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses, _ = self._losses(batch)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=False, batch_size=len(batch["names"]))
        self.log("loss", losses["loss"], prog_bar=True, logger=False, batch_size=len(batch["names"]))
        return losses["loss"]

    def joints(self, motion_norm: torch.Tensor) -> torch.Tensor:
        """(B, T, 133) normalised features -> (B, T, J, 3) joints."""
        raw = self.tokenizer.denormalize(motion_norm)
        return self.kinematics(features_to_smplx(raw))

    def _eval_step(self, batch: dict, metrics: ReconstructionMetrics, stage: str) -> torch.Tensor:
        losses, recon = self._losses(batch)
        metrics.update(self.joints(recon.float()), self.joints(batch["motion"]), batch["lengths"])
        self.log_dict({f"{stage}/{k}": v for k, v in losses.items()}, sync_dist=True,
                      batch_size=len(batch["names"]))
        return recon

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.val_metrics.compute().items()}, sync_dist=True)
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self.test_per_sample: dict[str, dict[str, float]] = {}

    def test_step(self, batch: dict, batch_idx: int) -> None:
        _, recon = self._losses(batch)
        pred, ref = self.joints(recon.float()), self.joints(batch["motion"])  # (B, T, J, 3)
        self.test_metrics.update(pred, ref, batch["lengths"])
        for k, name in enumerate(batch["names"]):
            one = ReconstructionMetrics(self.kinematics.parts).to(self.device)
            one.update(pred[k : k + 1], ref[k : k + 1], batch["lengths"][k : k + 1])
            self.test_per_sample[name] = {key: float(value) for key, value in one.compute().items()}

    def configure_optimizers(self) -> dict:
        return adamw_cosine(self.tokenizer.parameters(), self.cfg, int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["sasoke"] = {"stage": "vae", "config": OmegaConf.to_container(self.cfg),
                                **self.tokenizer.checkpoint_metadata()}
        # kinematics are rebuilt from the config, not stored
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("tokenizer.")}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        stage = checkpoint.get("sasoke", {}).get("stage")
        if stage != "vae":
            last = exp_dir(self.cfg) / "checkpoints" / "last.ckpt"
            raise CheckpointError(f"cannot resume stage 1 (vae) from {last}: it is a stage {stage!r} checkpoint. "
                                  f"NAME={self.cfg.NAME} already holds another run; choose a new NAME")
        for key, value in self.kinematics.state_dict(prefix="kinematics.").items():
            checkpoint["state_dict"].setdefault(key, value)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T) values over the frames where mask (B, T) is 1: padded frames of shorter clips must
    not count."""
    return (values * mask).sum() / mask.sum().clamp(min=1)
