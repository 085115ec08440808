"""One VQ-VAE of the DETO tokenizer: a 1D conv encoder over time, an EMA codebook, a mirrored decoder.

Tensors inside the networks are channels-first, (B, C, T), because that is what Conv1d wants; the public
methods of `VQVAE` take and return (B, T, F), the layout the rest of the project uses.

Module and attribute names follow SOKE's released checkpoint (SPEC 3), so its keys such as
`encoder.model.2.1.model.0.conv1.weight` or `quantizer.codebook` load without any renaming.
"""

import torch
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _from_rank_zero(rows: torch.Tensor) -> torch.Tensor:
    """Random rows drawn on rank 0, so every rank's codebook stays identical."""
    if _distributed():
        torch.distributed.broadcast(rows, src=0)
    return rows


class ResidualBlock(nn.Module):
    """ReLU -> dilated conv k3 -> ReLU -> conv k1, added to the input. Keeps shape (B, C, T)."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, kernel_size=3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(width, width, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class ResidualStack(nn.Module):
    """`depth` residual blocks, widest dilation first (9, 3, 1 for depth 3, growth 3)."""

    def __init__(self, width: int, depth: int = 3, dilation_growth: int = 3):
        super().__init__()
        dilations = [dilation_growth**i for i in reversed(range(depth))]
        self.model = nn.Sequential(*[ResidualBlock(width, d) for d in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Encoder(nn.Module):
    """(B, nfeats, T) -> (B, code_dim, T / 2**down_t)."""

    def __init__(self, nfeats: int, code_dim: int, width: int, down_t: int, depth: int, dilation_growth: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(nfeats, width, 3, padding=1), nn.ReLU()]
        for _ in range(down_t):
            down = nn.Conv1d(width, width, kernel_size=4, stride=2, padding=1)  # halves T exactly
            layers.append(nn.Sequential(down, ResidualStack(width, depth, dilation_growth)))
        layers.append(nn.Conv1d(width, code_dim, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """(B, code_dim, N) -> (B, nfeats, N * 2**down_t)."""

    def __init__(self, nfeats: int, code_dim: int, width: int, down_t: int, depth: int, dilation_growth: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(code_dim, width, 3, padding=1), nn.ReLU()]
        for _ in range(down_t):
            layers.append(
                nn.Sequential(
                    ResidualStack(width, depth, dilation_growth),
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv1d(width, width, 3, padding=1),
                )
            )
        layers += [nn.Conv1d(width, width, 3, padding=1), nn.ReLU(), nn.Conv1d(width, nfeats, 3, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class EMAQuantizer(nn.Module):
    """Nearest-neighbour codebook whose entries follow an exponential moving average of their encodings.

    The codebook is not learned by gradient: in training mode each batch moves every code towards the mean
    of the encodings assigned to it (EMA of per-code sums and counts), and a code whose EMA count drops
    under 1 ("dead") is replaced by a random encoding of the current batch. The EMA state and the
    `initialised` flag are buffers, so a restored model continues training exactly where it stopped
    instead of re-initialising its codebook from the next batch (which SOKE's code does).
    """

    def __init__(self, code_num: int, code_dim: int, decay: float = 0.99):
        super().__init__()
        self.code_num = code_num
        self.code_dim = code_dim
        self.decay = decay
        self.register_buffer("codebook", torch.zeros(code_num, code_dim))
        self.register_buffer("code_sum", torch.zeros(code_num, code_dim))
        self.register_buffer("code_count", torch.zeros(code_num))
        self.register_buffer("initialised", torch.tensor(False))
        # how many codes the latest training update found dead (and reset); for logging only
        self.register_buffer("dead_codes", torch.tensor(0), persistent=False)

    def nearest_codes(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, code_dim) float32 -> (N,) long: index of the closest codebook row in L2."""
        codebook = self.codebook.float()
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)[None]
        )  # (N, code_num)
        return distances.argmin(dim=1)

    def _random_rows(self, flat: torch.Tensor) -> torch.Tensor:
        """code_num random encodings of the batch (N, code_dim) -> (code_num, code_dim).

        With fewer encodings than codes, the batch is tiled with a little noise so the rows still differ.
        """
        if flat.shape[0] < self.code_num:
            repeats = -(-self.code_num // flat.shape[0])
            noise_std = 0.01 / self.code_dim**0.5
            flat = flat.repeat(repeats, 1)
            flat = flat + torch.randn_like(flat) * noise_std
        pick = torch.randperm(flat.shape[0], device=flat.device)[: self.code_num]
        return flat[pick]

    @torch.no_grad()
    def initialise_from(self, flat: torch.Tensor) -> None:
        """Start the codebook (and its EMA state) from random encodings (N, code_dim) of a batch."""
        self.codebook.copy_(_from_rank_zero(self._random_rows(flat)))
        self.reset_ema_from_codebook()

    @torch.no_grad()
    def reset_ema_from_codebook(self) -> None:
        """Make the EMA state agree with the current codebook: sum = codebook, count = 1 per code.

        Used after initialisation and after loading a codebook without EMA state (SOKE's checkpoint).
        """
        self.code_sum.copy_(self.codebook)
        self.code_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        assignment = F.one_hot(codes, self.code_num).to(flat.dtype)  # (N, code_num)
        batch_sum = assignment.t() @ flat  # (code_num, code_dim)
        batch_count = assignment.sum(0)  # (code_num,)
        if _distributed():  # under DDP every rank sees part of the batch: the codebook must learn from all
            torch.distributed.all_reduce(batch_sum)
            torch.distributed.all_reduce(batch_count)
        self.code_sum.mul_(self.decay).add_(batch_sum, alpha=1 - self.decay)
        self.code_count.mul_(self.decay).add_(batch_count, alpha=1 - self.decay)

        dead = self.code_count < 1.0  # (code_num,)
        self.dead_codes.fill_(int(dead.sum()))
        # a reset code restarts with count 1 so that codebook == code_sum / code_count holds for every row
        replacement = _from_rank_zero(self._random_rows(flat))
        self.code_sum[dead] = replacement[dead]
        self.code_count[dead] = 1.0
        self.codebook.copy_(self.code_sum / self.code_count[:, None])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """z: encoder output (B, code_dim, N).

        Returns the straight-through quantized z (B, code_dim, N), codes (B, N), the commitment loss
        (scalar) and the perplexity of this batch's code usage (scalar).
        """
        batch, _, steps = z.shape
        # distances and EMA sums in bf16/fp16 would pick wrong codes and drift the codebook
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = z.float().permute(0, 2, 1).reshape(-1, self.code_dim)  # (B*N, code_dim)
            if self.training and not bool(self.initialised):
                self.initialise_from(flat.detach())
            codes = self.nearest_codes(flat.detach())  # (B*N,)
            quantized = self.codebook[codes]  # (B*N, code_dim), taken before this batch's update
            if self.training:
                self._ema_update(flat.detach(), codes)
            commit_loss = F.mse_loss(flat, quantized)
            usage = torch.bincount(codes, minlength=self.code_num).float() / codes.numel()
            perplexity = torch.exp(-(usage * torch.log(usage + 1e-7)).sum())
            straight_through = flat + (quantized - flat).detach()
        quantized_z = straight_through.reshape(batch, steps, self.code_dim).permute(0, 2, 1)
        return quantized_z, codes.reshape(batch, steps), commit_loss, perplexity

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, N) long -> codebook vectors, channels-first (B, code_dim, N)."""
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.code_num):
            raise ValueError(
                f"codes must lie in [0, {self.code_num}) for this codebook, got values in "
                f"[{int(codes.min())}, {int(codes.max())}]"
            )
        return self.codebook[codes].permute(0, 2, 1)


class VQVAE(nn.Module):
    """Encoder -> EMA quantizer -> decoder for one body part; T frames become T / 2**down_t codes."""

    def __init__(
        self,
        nfeats: int,
        code_num: int,
        code_dim: int = 512,
        width: int = 512,
        down_t: int = 2,
        depth: int = 3,
        dilation_growth: int = 3,
        ema_decay: float = 0.99,
    ):
        super().__init__()
        self._config = dict(
            nfeats=nfeats,
            code_num=code_num,
            code_dim=code_dim,
            width=width,
            down_t=down_t,
            depth=depth,
            dilation_growth=dilation_growth,
            ema_decay=ema_decay,
        )
        self.nfeats = nfeats
        self.frames_per_code = 2**down_t
        self.encoder = Encoder(nfeats, code_dim, width, down_t, depth, dilation_growth)
        self.quantizer = EMAQuantizer(code_num, code_dim, ema_decay)
        self.decoder = Decoder(nfeats, code_dim, width, down_t, depth, dilation_growth)

    def config(self) -> dict:
        """The constructor arguments; `VQVAE(**vqvae.config())` builds the same architecture."""
        return dict(self._config)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.nfeats:
            raise ValueError(f"expected input of shape (B, T, {self.nfeats}), got {tuple(x.shape)}")
        if x.shape[1] == 0 or x.shape[1] % self.frames_per_code:
            raise ValueError(
                f"the number of frames T={x.shape[1]} must be a positive multiple of {self.frames_per_code} "
                f"(one code per {self.frames_per_code} frames); crop or resample the clip first"
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: normalized features (B, T, F) -> (reconstruction (B, T, F), commit loss, perplexity)."""
        self._check_input(x)
        z = self.encoder(x.permute(0, 2, 1))  # (B, code_dim, T / frames_per_code)
        quantized, _, commit_loss, perplexity = self.quantizer(z)
        recon = self.decoder(quantized).permute(0, 2, 1)  # (B, T, F)
        return recon, commit_loss, perplexity

    def _weight_dtype(self) -> torch.dtype:
        return self.encoder.model[0].weight.dtype

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: normalized features (B, T, F) -> codes (B, T / frames_per_code) long. Never touches the codebook.

        Runs outside autocast: codes are discrete, so reduced precision could flip them between runs.
        """
        self._check_input(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self.encoder(x.to(self._weight_dtype()).permute(0, 2, 1))  # (B, code_dim, N)
            flat = z.float().permute(0, 2, 1).reshape(-1, z.shape[1])  # (B*N, code_dim)
            codes = self.quantizer.nearest_codes(flat)
        return codes.reshape(z.shape[0], z.shape[2])

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, N) long -> normalized features (B, N * frames_per_code, F), outside autocast like `encode`."""
        if codes.dim() != 2:
            raise ValueError(f"expected codes of shape (B, N), got {tuple(codes.shape)}")
        with torch.autocast(device_type=codes.device.type, enabled=False):
            quantized = self.quantizer.lookup(codes).to(self._weight_dtype())  # (B, code_dim, N)
            return self.decoder(quantized).permute(0, 2, 1)
