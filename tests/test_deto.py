import datetime
import logging

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from mGPT.archs.deto import DETO, load_tokenizer
from mGPT.errors import CheckpointError, ConfigError

PART_SIZES = {"body": (43, 96), "lhand": (45, 192), "rhand": (45, 192)}
SOKE_PREFIXES = {"body": "vae", "lhand": "hand_vae", "rhand": "rhand_vae"}


def vq_kwargs(nfeats: int, code_num: int, width: int = 32, code_dim: int = 16) -> dict:
    return dict(nfeats=nfeats, code_num=code_num, code_dim=code_dim, width=width, down_t=2, depth=3,
                dilation_growth=3, ema_decay=0.99)


def tiny_deto(seed: int = 0) -> DETO:
    torch.manual_seed(seed)
    mean = torch.linspace(-1.0, 1.0, 133)
    std = torch.linspace(0.5, 2.0, 133)
    return DETO(vq_kwargs(43, 8), vq_kwargs(45, 12), vq_kwargs(45, 12), mean, std)


def trained_tiny_deto() -> DETO:
    """A tiny DETO after one training forward, so its codebooks are initialised from data."""
    deto = tiny_deto().train()
    deto(torch.randn(4, 16, 133))
    return deto.eval()


def manual_parts(x133: torch.Tensor) -> list[torch.Tensor]:
    body = torch.cat([x133[..., 0:30], x133[..., 120:133]], dim=-1)
    return [body, x133[..., 30:75], x133[..., 75:120]]


def test_forward_returns_reconstruction_and_part_statistics():
    deto = tiny_deto().train()
    out = deto(torch.randn(2, 16, 133))
    assert out["recon"].shape == (2, 16, 133)
    for part in ("body", "lhand", "rhand"):
        assert out[f"commit_{part}"].dim() == 0
        assert out[f"perplexity_{part}"] >= 1.0
        assert out[f"dead_codes_{part}"].dim() == 0


def test_submodule_names_match_soke_prefixes():
    keys = tiny_deto().state_dict().keys()
    for prefix in SOKE_PREFIXES.values():
        assert f"{prefix}.encoder.model.0.weight" in keys
        assert f"{prefix}.quantizer.codebook" in keys
    assert "mean" in keys and "std" in keys


def test_wrong_part_size_is_a_config_error():
    with pytest.raises(ConfigError, match="VQ.lhand"):
        DETO(vq_kwargs(43, 8), vq_kwargs(43, 12), vq_kwargs(45, 12), torch.zeros(133), torch.ones(133))


def test_encode_normalises_with_the_tokenizer_statistics():
    deto = trained_tiny_deto()
    x = torch.randn(2, 16, 133) * 3
    codes = deto.encode(x)
    assert codes.shape == (2, 4, 3) and codes.dtype == torch.long

    x_norm = (x - deto.mean) / (deto.std + 1e-10)
    expected = [vae.encode(part) for vae, part in zip((deto.vae, deto.hand_vae, deto.rhand_vae),
                                                       manual_parts(x_norm), strict=True)]
    assert torch.equal(codes, torch.stack(expected, dim=-1))
    assert codes[..., 0].max() < 8 and codes[..., 1:].max() < 12


def test_encode_rejects_bad_shapes():
    deto = tiny_deto()
    with pytest.raises(ValueError, match="133"):
        deto.encode(torch.randn(1, 16, 179))
    with pytest.raises(ValueError, match="multiple of 4"):
        deto.encode(torch.randn(1, 18, 133))


def test_decode_denormalises_with_stored_statistics_in_feature_order():
    deto = trained_tiny_deto()
    # make every decoder output exactly 0 (normalised), except the body which outputs exactly 1
    for vae in (deto.vae, deto.hand_vae, deto.rhand_vae):
        last = vae.decoder.model[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
    torch.nn.init.ones_(deto.vae.decoder.model[-1].bias)

    features = deto.decode(torch.tensor([[[1, 2, 3], [0, 11, 5]]]))
    assert features.shape == (1, 8, 133)
    expected = deto.mean.clone()
    body_dims = list(range(0, 30)) + list(range(120, 133))
    expected[body_dims] += deto.std[body_dims]
    torch.testing.assert_close(features, expected.expand(1, 8, 133))


def test_decode_names_the_part_with_out_of_range_codes():
    with pytest.raises(ValueError, match="lhand"):
        tiny_deto().decode(torch.tensor([[[0, 12, 0]]]))


def test_config_rebuilds_the_same_architecture():
    deto = tiny_deto()
    config = deto.config()
    assert config["lhand"] == vq_kwargs(45, 12)
    rebuilt = DETO(config["body"], config["lhand"], config["rhand"], deto.mean, deto.std)
    rebuilt.load_state_dict(deto.state_dict())
    assert rebuilt.fingerprint() == deto.fingerprint()


def test_fingerprint_follows_weights_and_statistics_but_not_ema_state():
    deto = trained_tiny_deto()
    reference = deto.fingerprint()
    assert len(reference) == 64

    deto.hand_vae.quantizer.code_count.mul_(3.0)
    deto.rhand_vae.quantizer.code_sum.add_(1.0)
    assert deto.fingerprint() == reference

    deto.std[5] += 0.1
    assert deto.fingerprint() != reference
    deto.std[5] -= 0.1
    with torch.no_grad():
        deto.vae.encoder.model[0].bias[0] += 1e-3
    assert deto.fingerprint() != reference


def test_checkpoint_metadata_holds_config_statistics_and_fingerprint():
    deto = tiny_deto()
    meta = deto.checkpoint_metadata()
    assert meta["tokenizer_config"] == deto.config()
    assert len(meta["mean133"]) == 133 and meta["mean133"][0] == pytest.approx(-1.0)
    assert meta["std133"][-1] == pytest.approx(2.0)
    assert meta["fingerprint"] == deto.fingerprint()


def save_our_checkpoint(deto: DETO, path, stage: str = "vae") -> None:
    """What the stage-1 LightningModule writes: weights under `tokenizer.`, metadata under `sasoke`."""
    checkpoint = {
        "state_dict": {f"tokenizer.{k}": v for k, v in deto.state_dict().items()},
        "epoch": 3,
        "global_step": 120,
        "hyper_parameters": {"cfg": OmegaConf.create({"NAME": "demo", "TRAIN": {"LR": 2e-4}})},
        "sasoke": {"stage": stage, "config": {"NAME": "demo"}, **deto.checkpoint_metadata()},
    }
    torch.save(checkpoint, path)


def test_our_checkpoint_round_trip(tmp_path):
    deto = trained_tiny_deto()
    save_our_checkpoint(deto, tmp_path / "last.ckpt")
    loaded = load_tokenizer(tmp_path / "last.ckpt")

    assert not loaded.training
    assert loaded.fingerprint() == deto.fingerprint()
    assert loaded.config() == deto.config()
    assert loaded.load_report.source == "sasoke"
    assert loaded.load_report.missing == [] and loaded.load_report.unexpected == []
    assert bool(loaded.vae.quantizer.initialised)
    torch.testing.assert_close(loaded.hand_vae.quantizer.code_count, deto.hand_vae.quantizer.code_count)
    x = torch.randn(2, 16, 133)
    assert torch.equal(loaded.encode(x), deto.encode(x))


def test_our_checkpoint_ignores_given_statistics(tmp_path):
    deto = trained_tiny_deto()
    save_our_checkpoint(deto, tmp_path / "best.ckpt")
    torch.save(torch.zeros(179), tmp_path / "mean.pt")
    torch.save(torch.ones(179), tmp_path / "std.pt")
    loaded = load_tokenizer(tmp_path / "best.ckpt", tmp_path / "mean.pt", tmp_path / "std.pt")
    torch.testing.assert_close(loaded.mean, deto.mean)


def test_generator_checkpoint_is_refused(tmp_path):
    save_our_checkpoint(tiny_deto(), tmp_path / "lm.ckpt", stage="lm")
    with pytest.raises(CheckpointError, match="generator") as info:
        load_tokenizer(tmp_path / "lm.ckpt")
    assert "lm.ckpt" in str(info.value) and "tokenizer checkpoint" in str(info.value)


def test_missing_and_invalid_files_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.ckpt"):
        load_tokenizer(tmp_path / "nowhere.ckpt")
    (tmp_path / "notes.ckpt").write_text("this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_tokenizer(tmp_path / "notes.ckpt")
    torch.save([1, 2, 3], tmp_path / "list.ckpt")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_tokenizer(tmp_path / "list.ckpt")
    torch.save({"epoch": 1}, tmp_path / "empty.ckpt")
    with pytest.raises(CheckpointError, match="no 'state_dict'"):
        load_tokenizer(tmp_path / "empty.ckpt")


def test_unsafe_pickle_needs_explicit_trust(tmp_path):
    deto = trained_tiny_deto()
    save_our_checkpoint(deto, tmp_path / "ours.ckpt")
    checkpoint = torch.load(tmp_path / "ours.ckpt", weights_only=False)
    checkpoint["made_on"] = datetime.date(2025, 1, 1)  # an arbitrary Python object, not plain data
    torch.save(checkpoint, tmp_path / "odd.ckpt")
    with pytest.raises(CheckpointError, match="trust_pickle=True") as info:
        load_tokenizer(tmp_path / "odd.ckpt")
    assert "datetime.date" in str(info.value)
    assert load_tokenizer(tmp_path / "odd.ckpt", trust_pickle=True).fingerprint() == deto.fingerprint()


# ---- SOKE's released checkpoint -----------------------------------------------------------------------


def soke_state_dict(width: int) -> dict[str, torch.Tensor]:
    """Random weights under SOKE's exact key names (SPEC 3); code_dim = width as in SOKE."""
    generator = torch.Generator().manual_seed(0)

    def conv(out_ch: int, in_ch: int, k: int) -> dict[str, torch.Tensor]:
        scale = (in_ch * k) ** -0.5
        return {"weight": torch.randn(out_ch, in_ch, k, generator=generator) * scale,
                "bias": torch.randn(out_ch, generator=generator) * scale}

    state: dict[str, torch.Tensor] = {}

    def put(name: str, tensors: dict[str, torch.Tensor]) -> None:
        for suffix, tensor in tensors.items():
            state[f"{name}.{suffix}"] = tensor

    for part, (nfeats, code_num) in PART_SIZES.items():
        p = SOKE_PREFIXES[part]
        put(f"{p}.encoder.model.0", conv(width, nfeats, 3))
        for i in (2, 3):
            put(f"{p}.encoder.model.{i}.0", conv(width, width, 4))
            for j in (0, 1, 2):
                put(f"{p}.encoder.model.{i}.1.model.{j}.conv1", conv(width, width, 3))
                put(f"{p}.encoder.model.{i}.1.model.{j}.conv2", conv(width, width, 1))
        put(f"{p}.encoder.model.4", conv(width, width, 3))
        put(f"{p}.decoder.model.0", conv(width, width, 3))
        for i in (2, 3):
            for j in (0, 1, 2):
                put(f"{p}.decoder.model.{i}.0.model.{j}.conv1", conv(width, width, 3))
                put(f"{p}.decoder.model.{i}.0.model.{j}.conv2", conv(width, width, 1))
            put(f"{p}.decoder.model.{i}.2", conv(width, width, 3))
        put(f"{p}.decoder.model.4", conv(width, width, 3))
        put(f"{p}.decoder.model.6", conv(nfeats, width, 3))
        state[f"{p}.quantizer.codebook"] = torch.randn(code_num, width, generator=generator) * 0.5
    return state


def reference_soke_codes(state: dict, prefix: str, x_norm: torch.Tensor) -> torch.Tensor:
    """SOKE's encoder + nearest-code lookup written out with functional ops: (B, T, F) -> (B, T/4)."""

    def w(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return state[f"{prefix}.encoder.model.{name}.weight"], state[f"{prefix}.encoder.model.{name}.bias"]

    h = F.relu(F.conv1d(x_norm.transpose(1, 2), *w("0"), padding=1))
    for i in (2, 3):
        h = F.conv1d(h, *w(f"{i}.0"), stride=2, padding=1)
        for j, dilation in zip((0, 1, 2), (9, 3, 1), strict=True):
            inner = F.conv1d(F.relu(h), *w(f"{i}.1.model.{j}.conv1"), padding=dilation, dilation=dilation)
            h = h + F.conv1d(F.relu(inner), *w(f"{i}.1.model.{j}.conv2"))
    h = F.conv1d(h, *w("4"), padding=1).transpose(1, 2)  # (B, N, D)
    codebook = state[f"{prefix}.quantizer.codebook"]
    return torch.cdist(h, codebook[None].expand(h.shape[0], -1, -1)).argmin(-1)


def soke_stats() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(179, generator=generator) * 0.3, torch.rand(179, generator=generator) + 0.2


def write_soke_files(tmp_path, width: int) -> dict:
    state = soke_state_dict(width)
    state["lm.model.shared.weight"] = torch.zeros(4, 8)  # a generator's weights: unused by the tokenizer
    checkpoint = {"state_dict": state, "epoch": 499,
                  "hyper_parameters": {"cfg": OmegaConf.create({"model": {"code_num": 96}})}}
    torch.save(checkpoint, tmp_path / "tokenizer.ckpt")
    mean179, std179 = soke_stats()
    torch.save(mean179, tmp_path / "mean.pt")
    torch.save(std179, tmp_path / "std.pt")
    return state


@pytest.mark.parametrize("width", [32, pytest.param(512, marks=pytest.mark.slow)])
def test_soke_checkpoint_codes_match_an_independent_forward_pass(tmp_path, width, caplog):
    state = write_soke_files(tmp_path, width)
    with caplog.at_level(logging.INFO, logger="mGPT.archs.deto"):
        deto = load_tokenizer(tmp_path / "tokenizer.ckpt", tmp_path / "mean.pt", tmp_path / "std.pt")

    assert deto.config()["body"] == dict(nfeats=43, code_num=96, code_dim=width, width=width, down_t=2,
                                         depth=3, dilation_growth=3, ema_decay=0.99)
    report = deto.load_report
    assert report.source == "soke"
    assert report.missing == []
    assert report.unexpected == ["lm.model.shared.weight"]
    assert "mean" in report.filled and "vae.quantizer.code_sum" in report.filled
    assert "1 unused key(s) (1 under 'lm.')" in caplog.text
    # SOKE saved no EMA state: it restarts from the trained codebook instead of a data batch
    assert bool(deto.hand_vae.quantizer.initialised)
    torch.testing.assert_close(deto.hand_vae.quantizer.code_sum, state["hand_vae.quantizer.codebook"])

    mean179, std179 = soke_stats()
    keep = list(range(36, 159)) + list(range(169, 179))  # upper body, hands, jaw, expression
    mean133, std133 = mean179[keep], std179[keep]
    torch.testing.assert_close(deto.mean, mean133)

    x = torch.randn(2, 16, 133, generator=torch.Generator().manual_seed(2)) * std133 + mean133
    codes = deto.encode(x)
    x_norm = (x - mean133) / (std133 + 1e-10)
    for column, (part_x, prefix) in enumerate(zip(manual_parts(x_norm), SOKE_PREFIXES.values(), strict=True)):
        assert torch.equal(codes[..., column], reference_soke_codes(state, prefix, part_x)), prefix
    assert len(codes[..., 1].unique()) > 1, "random weights should spread encodings over several codes"


def test_soke_checkpoint_accepts_133_dim_statistics(tmp_path):
    write_soke_files(tmp_path, width=32)
    mean179, std179 = soke_stats()
    keep = list(range(36, 159)) + list(range(169, 179))
    torch.save(mean179[keep], tmp_path / "mean133.pt")
    torch.save(std179[keep], tmp_path / "std133.pt")
    deto = load_tokenizer(tmp_path / "tokenizer.ckpt", tmp_path / "mean133.pt", tmp_path / "std133.pt")
    torch.testing.assert_close(deto.std, std179[keep])


def test_soke_checkpoint_without_statistics_is_refused(tmp_path):
    write_soke_files(tmp_path, width=32)
    with pytest.raises(CheckpointError, match="MEAN_PATH") as info:
        load_tokenizer(tmp_path / "tokenizer.ckpt")
    assert "SOKE" in str(info.value) and "std.pt" in str(info.value)
    with pytest.raises(CheckpointError, match="missing_mean.pt"):
        load_tokenizer(tmp_path / "tokenizer.ckpt", tmp_path / "missing_mean.pt", tmp_path / "std.pt")
    torch.save(torch.zeros(100), tmp_path / "short.pt")
    with pytest.raises(CheckpointError, match="179"):
        load_tokenizer(tmp_path / "tokenizer.ckpt", tmp_path / "short.pt", tmp_path / "std.pt")


def test_checkpoint_without_tokenizer_weights_is_refused(tmp_path):
    state = {k: v for k, v in soke_state_dict(width=32).items() if not k.startswith("rhand_vae.")}
    torch.save({"state_dict": state}, tmp_path / "partial.ckpt")
    torch.save(torch.zeros(179), tmp_path / "mean.pt")
    torch.save(torch.ones(179), tmp_path / "std.pt")
    with pytest.raises(CheckpointError, match="rhand_vae.encoder.model.0.weight"):
        load_tokenizer(tmp_path / "partial.ckpt", tmp_path / "mean.pt", tmp_path / "std.pt")


def test_frames_per_code_follows_down_t_and_sets_encoded_and_decoded_lengths():
    """DOWN_T 3: one code per 8 frames, for encoding and decoding alike."""
    parts = [{**vq_kwargs(n, c), "down_t": 3} for n, c in ((43, 8), (45, 12), (45, 12))]
    deto = DETO(*parts, torch.zeros(133), torch.ones(133)).eval()
    assert deto.frames_per_code == 8 and tiny_deto().frames_per_code == 4
    codes = deto.encode(torch.randn(2, 48, 133))
    assert codes.shape == (2, 6, 3)
    assert deto.decode(codes[:, :5]).shape == (2, 40, 133)
    with pytest.raises(ValueError, match="multiple of 8"):
        deto.encode(torch.randn(1, 44, 133))


def test_parts_with_different_down_t_are_refused():
    sizes = ((43, 8), (45, 12), (45, 12))
    parts = [{**vq_kwargs(n, c), "down_t": d} for (n, c), d in zip(sizes, (2, 3, 2), strict=True)]
    with pytest.raises(ConfigError, match=r"DOWN_T must be equal \(got body 2, lhand 3, rhand 2\)"):
        DETO(*parts, torch.zeros(133), torch.ones(133))
