import pytest
import torch
import torch.nn.functional as F

from mGPT.archs.vqvae import VQVAE, Decoder, EMAQuantizer, Encoder, ResidualStack


def tiny_vqvae(nfeats: int = 6, code_num: int = 8, width: int = 32, code_dim: int = 16) -> VQVAE:
    return VQVAE(nfeats, code_num, code_dim=code_dim, width=width)


def test_encoder_decoder_shapes():
    encoder = Encoder(nfeats=6, code_dim=16, width=32, down_t=2, depth=3, dilation_growth=3)
    decoder = Decoder(nfeats=6, code_dim=16, width=32, down_t=2, depth=3, dilation_growth=3)
    z = encoder(torch.randn(2, 6, 24))
    assert z.shape == (2, 16, 6)
    assert decoder(z).shape == (2, 6, 24)


def test_residual_stack_widest_dilation_first():
    stack = ResidualStack(width=8, depth=3, dilation_growth=3)
    assert [block.conv1.dilation[0] for block in stack.model] == [9, 3, 1]
    assert [block.conv1.padding[0] for block in stack.model] == [9, 3, 1]
    assert stack(torch.randn(1, 8, 5)).shape == (1, 8, 5)


def test_vqvae_forward_encode_decode_shapes():
    torch.manual_seed(0)
    vqvae = tiny_vqvae()
    x = torch.randn(3, 16, 6)
    recon, commit_loss, perplexity = vqvae(x)
    assert recon.shape == (3, 16, 6)
    assert commit_loss.dim() == 0 and commit_loss >= 0
    assert 1.0 <= perplexity <= 8.0
    codes = vqvae.encode(x)
    assert codes.shape == (3, 4) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < 8
    assert vqvae.decode(codes).shape == (3, 16, 6)


def test_parameter_count_and_soke_key_names_at_width_512():
    vqvae = VQVAE(nfeats=43, code_num=96)
    n_params = sum(p.numel() for p in vqvae.parameters())
    assert abs(n_params - 18.8e6) / 18.8e6 < 0.02
    shapes = {k: tuple(v.shape) for k, v in vqvae.state_dict().items()}
    assert shapes["encoder.model.0.weight"] == (512, 43, 3)
    assert shapes["encoder.model.3.0.weight"] == (512, 512, 4)
    assert shapes["encoder.model.2.1.model.0.conv1.weight"] == (512, 512, 3)
    assert shapes["encoder.model.2.1.model.2.conv2.weight"] == (512, 512, 1)
    assert shapes["encoder.model.4.weight"] == (512, 512, 3)
    assert shapes["decoder.model.2.0.model.0.conv1.weight"] == (512, 512, 3)
    assert shapes["decoder.model.3.2.weight"] == (512, 512, 3)
    assert shapes["decoder.model.4.weight"] == (512, 512, 3)
    assert shapes["decoder.model.6.weight"] == (43, 512, 3)
    assert shapes["quantizer.codebook"] == (96, 512)


@pytest.mark.parametrize("frames", [0, 6, 17])
def test_frames_not_multiple_of_4_is_a_clear_error(frames):
    vqvae = tiny_vqvae()
    with pytest.raises(ValueError, match="multiple of 4"):
        vqvae(torch.randn(1, frames, 6))
    with pytest.raises(ValueError, match="multiple of 4"):
        vqvae.encode(torch.randn(1, frames, 6))


def test_wrong_feature_count_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(B, T, 6\)"):
        tiny_vqvae().encode(torch.randn(1, 8, 7))


def test_decode_rejects_codes_outside_the_codebook():
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        tiny_vqvae().decode(torch.tensor([[0, 8]]))


def test_quantizer_picks_nearest_code_with_straight_through_gradient():
    torch.manual_seed(0)
    quantizer = EMAQuantizer(code_num=5, code_dim=3).eval()
    quantizer.codebook.copy_(torch.randn(5, 3))
    z = torch.randn(2, 3, 4, requires_grad=True)  # (B, code_dim, N)
    quantized, codes, commit_loss, perplexity = quantizer(z)

    flat = z.detach().permute(0, 2, 1).reshape(-1, 3)
    expected_codes = torch.cdist(flat, quantizer.codebook).argmin(1)
    assert torch.equal(codes.reshape(-1), expected_codes)
    expected_quantized = quantizer.codebook[expected_codes].reshape(2, 4, 3).permute(0, 2, 1)
    torch.testing.assert_close(quantized, expected_quantized)
    torch.testing.assert_close(commit_loss, ((flat - quantizer.codebook[expected_codes]) ** 2).mean())
    usage = torch.bincount(expected_codes, minlength=5).float() / 8
    nonzero = usage[usage > 0]
    torch.testing.assert_close(perplexity, torch.exp(-(nonzero * nonzero.log()).sum()), atol=1e-5, rtol=1e-5)

    quantized.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))


def test_codebook_initialised_from_first_training_batch():
    torch.manual_seed(0)
    quantizer = EMAQuantizer(code_num=4, code_dim=3)
    z = torch.randn(2, 3, 10) + 5.0  # away from the all-zero codebook of a fresh quantizer
    quantizer.eval()(z)
    assert not bool(quantizer.initialised), "evaluation must not initialise the codebook"
    quantizer.train()(z)
    assert bool(quantizer.initialised)
    encodings = z.permute(0, 2, 1).reshape(-1, 3)
    # right after initialisation each code is the mean of the encodings assigned to it, which were drawn
    # from the batch itself, so every code lies within the batch's bounding box
    assert (quantizer.codebook >= encodings.min(0).values - 1e-6).all()
    assert (quantizer.codebook <= encodings.max(0).values + 1e-6).all()


def test_ema_update_matches_hand_computed_moving_average():
    quantizer = EMAQuantizer(code_num=2, code_dim=2, decay=0.9).train()
    quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    quantizer.reset_ema_from_codebook()
    # three encodings near code 0, one near code 1: (B=1, code_dim=2, N=4)
    z = torch.tensor([[[1.0, 2.0, 3.0, 9.0], [0.0, 0.0, 0.0, 11.0]]])
    _, codes, _, _ = quantizer(z)
    assert codes.tolist() == [[0, 0, 0, 1]]
    expected_count = torch.tensor([0.9 * 1 + 0.1 * 3, 0.9 * 1 + 0.1 * 1])
    expected_sum = torch.tensor([[0.9 * 0 + 0.1 * 6, 0.0], [0.9 * 10 + 0.1 * 9, 0.9 * 10 + 0.1 * 11]])
    torch.testing.assert_close(quantizer.code_count, expected_count)
    torch.testing.assert_close(quantizer.code_sum, expected_sum)
    torch.testing.assert_close(quantizer.codebook, expected_sum / expected_count[:, None])
    assert int(quantizer.dead_codes) == 0


def test_ema_is_frozen_in_eval_mode_and_in_encode():
    torch.manual_seed(0)
    vqvae = tiny_vqvae().train()
    x = torch.randn(4, 16, 6)
    vqvae(x)  # initialises the codebook
    before = {k: v.clone() for k, v in vqvae.quantizer.state_dict().items()}
    vqvae.encode(x)
    vqvae.eval()(x)
    for key, value in vqvae.quantizer.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_dead_codes_are_reset_to_current_encodings():
    torch.manual_seed(0)
    quantizer = EMAQuantizer(code_num=6, code_dim=3).train()
    quantizer.codebook.copy_(torch.randn(6, 3))
    quantizer.codebook[:2] = 1000.0  # so far away that no encoding picks them
    quantizer.reset_ema_from_codebook()
    quantizer.code_count[:2] = 0.5
    z = torch.randn(2, 3, 16)
    quantizer(z)

    assert int(quantizer.dead_codes) >= 2
    encodings = z.permute(0, 2, 1).reshape(-1, 3)
    for row in quantizer.codebook[:2]:
        assert torch.isclose(encodings, row).all(1).any(), "a reset code must be one of the batch encodings"
    assert (quantizer.code_count >= 1.0 - 1e-6).all()
    torch.testing.assert_close(quantizer.codebook, quantizer.code_sum / quantizer.code_count[:, None])


def _train_steps(vqvae: VQVAE, optimizer: torch.optim.Optimizer, batches: list[torch.Tensor]) -> None:
    for x in batches:
        recon, commit_loss, _ = vqvae(x)
        loss = F.smooth_l1_loss(recon, x) + 0.02 * commit_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_ema_state_survives_state_dict_round_trip():
    torch.manual_seed(0)
    batches = [torch.randn(4, 16, 6) for _ in range(4)]
    trained = tiny_vqvae().train()
    _train_steps(trained, torch.optim.SGD(trained.parameters(), lr=0.01), batches[:3])
    state = trained.state_dict()
    for name in ("codebook", "code_sum", "code_count", "initialised"):
        assert f"quantizer.{name}" in state

    restored = tiny_vqvae().train()
    restored.load_state_dict(state)
    for key, value in trained.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key

    # the next update is the same in both: no re-initialisation from the first batch after loading
    torch.manual_seed(1)
    trained(batches[3])
    torch.manual_seed(1)
    restored(batches[3])
    for name in ("codebook", "code_sum", "code_count"):
        assert torch.equal(getattr(restored.quantizer, name), getattr(trained.quantizer, name)), name

    fresh = tiny_vqvae().train()
    torch.manual_seed(1)
    fresh(batches[3])
    assert not torch.equal(fresh.quantizer.codebook, trained.quantizer.codebook)


def test_bf16_autocast_keeps_quantizer_in_float32():
    torch.manual_seed(0)
    vqvae = tiny_vqvae().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        recon, commit_loss, perplexity = vqvae(torch.randn(2, 8, 6))
    assert recon.dtype == torch.bfloat16
    assert commit_loss.dtype == torch.float32 and perplexity.dtype == torch.float32
    assert vqvae.quantizer.codebook.dtype == torch.float32


def test_encode_and_decode_ignore_autocast():
    torch.manual_seed(0)
    vqvae = tiny_vqvae().train()
    x = torch.randn(2, 16, 6)
    vqvae(x)
    codes = vqvae.encode(x)
    recon = vqvae.decode(codes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(vqvae.encode(x), codes)
        recon_autocast = vqvae.decode(codes)
    assert recon_autocast.dtype == torch.float32
    torch.testing.assert_close(recon_autocast, recon)


@pytest.mark.slow  # 300 training steps: 4.6 s of make test
def test_tiny_vqvae_learns_to_reconstruct_a_toy_signal():
    torch.manual_seed(0)
    t = torch.arange(32, dtype=torch.float32)[None, :, None]  # (1, T, 1)
    freq = torch.rand(8, 1, 6) * 0.3 + 0.05
    phase = torch.rand(8, 1, 6) * 6.28
    signals = torch.sin(freq * t + phase)  # (8, T, 6): a few smooth clips that 32 codes can cover

    vqvae = VQVAE(6, code_num=32, code_dim=32, width=64).train()
    optimizer = torch.optim.AdamW(vqvae.parameters(), lr=2e-3)
    losses = []
    for _ in range(100):
        x = signals[torch.randint(0, 8, (16,))]
        recon, commit_loss, _ = vqvae(x)
        recon_loss = F.smooth_l1_loss(recon, x)
        optimizer.zero_grad()
        (recon_loss + 0.02 * commit_loss).backward()
        optimizer.step()
        losses.append(recon_loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.2 * first, (first, last)


def _ddp_quantizer_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        quantizer = _quantizer_for_ddp_test()
        full_batch = _ddp_test_batch()
        quantizer(full_batch[rank : rank + 1])  # each rank sees half of the batch
        torch.save(quantizer.state_dict(), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _quantizer_for_ddp_test():
    from mGPT.archs.vqvae import EMAQuantizer

    quantizer = EMAQuantizer(code_num=8, code_dim=4, decay=0.9).train()
    quantizer.codebook.copy_(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)))
    quantizer.reset_ema_from_codebook()
    # counts well above 1, so no code is reset: the update must then be exactly the EMA formula
    quantizer.code_sum.mul_(10.0)
    quantizer.code_count.fill_(10.0)
    return quantizer


def _ddp_test_batch() -> torch.Tensor:
    return torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(1))  # (B, code_dim, N)


@pytest.mark.slow  # spawns two processes: 5 s of make test
def test_codebook_learns_from_every_ddp_rank(tmp_path):
    """2 gloo processes, half a batch each, end with the codebook one process gets from the whole batch."""
    import torch.multiprocessing as mp

    mp.spawn(_ddp_quantizer_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    single = _quantizer_for_ddp_test()
    single(_ddp_test_batch())
    for key in ("codebook", "code_sum", "code_count"):
        torch.testing.assert_close(ranks[0][key], ranks[1][key])
        torch.testing.assert_close(ranks[0][key], single.state_dict()[key])
