"""The multi-head mBART generator on a tiny random mBART: sources, losses, masks, decoding."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mGPT.archs.amg import EXTRA_TOKENS, PARTS, SignGenerator
from mGPT.archs.prune_mbart import VOCAB_MAP_FILE, prune_mbart
from mGPT.archs.tiny_mbart import make_tiny_mbart
from mGPT.errors import ConfigError, DataError

SIZES = (8, 12, 12)
TRAIN_TEXTS = [
    "مرحبا بك في المدرسة",
    "أين المستشفى من فضلك",
    "شكرا جزيلا لك يا صديقي",
    "كم عمرك اليوم",
]
OTHER_TEXTS = ["ذهبت إلى السوق مع أمي", "المدرسة اليوم", "صديقي في السوق يا أمي من فضلك"]
KEYWORD = ("مدرسة", np.array([[1, 2, 3], [7, 11, 0]]))


def _random_codes(lengths: list[int], seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.stack([torch.randint(0, n, (length,), generator=gen) for n in SIZES], dim=1)
            for length in lengths]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mbart(TRAIN_TEXTS + OTHER_TEXTS, tmp_path_factory.mktemp("amg") / "mbart",
                           d_model=64, layers=2)


def _generator(tiny_dir: Path, **kwargs) -> SignGenerator:
    torch.manual_seed(0)
    return SignGenerator(tiny_dir, codebook_sizes=SIZES, **kwargs).eval()


def scramble(generator: SignGenerator, seed: int) -> SignGenerator:
    """Random weights large enough that outputs depend on the inputs (mBART's 0.02 init barely does)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for weight in generator.parameters():
            if weight.ndim == 2:
                weight.normal_(0.0, 0.5)
    return generator


@pytest.fixture
def scrambled(tiny_dir: Path) -> SignGenerator:
    return scramble(_generator(tiny_dir), seed=1)


@pytest.fixture(scope="module")
def trained(tiny_dir: Path) -> tuple[SignGenerator, list[torch.Tensor]]:
    """A generator overfitted on TRAIN_TEXTS, whose code sequences have different lengths."""
    generator = _generator(tiny_dir)
    codes = _random_codes([3, 6, 9, 5], seed=1)
    optimizer = torch.optim.AdamW(generator.parameters(), lr=1e-3)
    for _ in range(300):
        generator.train()
        loss = generator(TRAIN_TEXTS, codes)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        generator.eval()
        with torch.no_grad():
            out = generator(TRAIN_TEXTS, codes)
        if all(out[f"acc_{part}"] == 1.0 for part in PARTS):
            break
    return generator, codes


def test_new_token_rows_follow_the_pretrained_vocabulary(tiny_dir: Path) -> None:
    generator = _generator(tiny_dir)
    base = len(generator.tokenizer)
    assert generator.tgt_lang_row == base
    assert generator.body_token_ids.tolist() == list(range(base + 1, base + 1 + SIZES[0] + EXTRA_TOKENS))
    assert generator.lhand_token_ids[0] == generator.body_token_ids[-1] + 1
    assert generator.rhand_token_ids[0] == generator.lhand_token_ids[-1] + 1
    assert generator.mbart.get_input_embeddings().num_embeddings == base + 1 + sum(SIZES) + 3 * EXTRA_TOKENS
    assert generator.mbart.final_logits_bias.shape[1] == generator.mbart.lm_head.weight.shape[0]


def test_source_is_text_then_keyword_word_and_triplets_then_eos_and_language(tiny_dir: Path) -> None:
    generator = _generator(tiny_dir)
    tokenizer = generator.tokenizer
    rows, mask = generator.encode_source([TRAIN_TEXTS[0], TRAIN_TEXTS[3]], [[KEYWORD], None])
    text_ids = tokenizer(TRAIN_TEXTS[0], add_special_tokens=False)["input_ids"]
    word_ids = tokenizer(KEYWORD[0], add_special_tokens=False)["input_ids"]
    body, lhand, rhand = generator.part_token_ids
    triplets = [body[1], lhand[2], rhand[3], body[7], lhand[11], rhand[0]]
    suffix = [2, tokenizer.convert_tokens_to_ids("ar_AR")]
    expected = text_ids + word_ids + [int(t) for t in triplets] + suffix
    assert rows[0].tolist() == expected
    short = tokenizer(TRAIN_TEXTS[3])["input_ids"]  # text, </s>, ar_AR
    assert rows[1, : len(short)].tolist() == short
    assert (rows[1, len(short) :] == generator.pad_row).all()
    assert mask.sum(1).tolist() == [len(expected), len(short)]


def test_keyword_codes_outside_the_codebook_name_the_word(tiny_dir: Path) -> None:
    generator = _generator(tiny_dir)
    with pytest.raises(DataError, match="keyword 'مدرسة' of sample 0"):
        generator.encode_source([TRAIN_TEXTS[0]], [[(KEYWORD[0], np.array([[8, 0, 0]]))]])


def test_long_text_is_truncated_with_a_warning_naming_the_sample(tiny_dir: Path) -> None:
    generator = _generator(tiny_dir, max_text_tokens=4)
    with pytest.warns(UserWarning, match=r"sample 1 .*keeping the first 4"):
        rows, mask = generator.encode_source(["كم", TRAIN_TEXTS[2]])
    assert mask[1].sum() == 4 + 2


def test_fused_decoder_embedding_is_the_weighted_sum_of_scaled_rows(tiny_dir: Path) -> None:
    for hand_weight in (0.4, 0.25):
        generator = _generator(tiny_dir, hand_weight=hand_weight)
        table = generator.mbart.get_input_embeddings().weight * math.sqrt(64)
        steps = torch.stack([generator.code_rows(c) for c in _random_codes([5, 5], seed=2)])  # (2, 5, 3)
        expected = ((1 - 2 * hand_weight) * table[steps[..., 0]] + hand_weight * table[steps[..., 1]]
                    + hand_weight * table[steps[..., 2]])
        torch.testing.assert_close(generator.embed_steps(steps), expected)


def test_losses_are_cross_entropy_over_each_heads_window_of_the_shared_projection(scrambled) -> None:
    codes = _random_codes([4], seed=3)
    with torch.no_grad():
        out = scrambled(TRAIN_TEXTS[:1], codes)
        rows, mask = scrambled.encode_source(TRAIN_TEXTS[:1])
        steps = torch.cat([torch.full((1, 3), scrambled.tgt_lang_row), scrambled.code_rows(codes[0])])
        all_logits = scrambled.mbart(input_ids=rows, attention_mask=mask,
                                     decoder_inputs_embeds=scrambled.embed_steps(steps[None])).logits[0]
    for p, part in enumerate(PARTS):
        window = torch.cat([scrambled.part_token_ids[p], torch.tensor([scrambled.eos_row])])
        labels = torch.cat([codes[0][:, p], torch.tensor([SIZES[p] + EXTRA_TOKENS])])
        expected = F.cross_entropy(all_logits[:, window], labels)
        torch.testing.assert_close(out[f"loss_{part}"], expected)
    torch.testing.assert_close(out["loss"], out["loss_body"] + out["loss_lhand"] + out["loss_rhand"])


def test_padding_leaks_neither_into_sources_nor_into_losses(scrambled) -> None:
    texts = [OTHER_TEXTS[2], TRAIN_TEXTS[3]]  # long text with few codes, short text with many
    codes = _random_codes([2, 9], seed=4)
    with torch.no_grad():
        batch = scrambled(texts, codes)
        alone = [scrambled([t], [c]) for t, c in zip(texts, codes, strict=True)]
    counts = [len(c) + 1 for c in codes]  # codes plus </s>
    for part in PARTS:
        mean = sum(n * a[f"loss_{part}"] for n, a in zip(counts, alone, strict=True)) / sum(counts)
        torch.testing.assert_close(batch[f"loss_{part}"], mean)
        accuracy = sum(n * a[f"acc_{part}"] for n, a in zip(counts, alone, strict=True)) / sum(counts)
        torch.testing.assert_close(batch[f"acc_{part}"], accuracy)


def test_codes_outside_the_codebook_are_a_data_error_naming_the_sample(tiny_dir: Path) -> None:
    generator = _generator(tiny_dir)
    bad = torch.tensor([[0, 0, 12]])
    with pytest.raises(DataError, match="sample 1"):
        generator(TRAIN_TEXTS[:2], [_random_codes([2], seed=5)[0], bad])


def test_overfits_four_sentences_and_reproduces_them_greedily(trained) -> None:
    generator, codes = trained
    with torch.no_grad():
        out = generator(TRAIN_TEXTS, codes)
    assert [float(out[f"acc_{part}"]) for part in PARTS] == [1.0, 1.0, 1.0]
    generated = generator.generate(TRAIN_TEXTS)
    for got, want in zip(generated, codes, strict=True):
        assert torch.equal(got, want)


def test_batch_gives_each_sample_what_it_gets_alone(trained) -> None:
    generator, _ = trained
    texts = TRAIN_TEXTS + OTHER_TEXTS
    keywords = [None] * len(TRAIN_TEXTS) + [[KEYWORD], None, [KEYWORD]]
    batch = generator.generate(texts, keywords, max_steps=12)
    assert len({len(codes) for codes in batch}) > 2  # samples stop at different steps
    for i, text in enumerate(texts):
        assert torch.equal(generator.generate([text], [keywords[i]], max_steps=12)[0], batch[i])


def test_cached_and_uncached_decoding_give_identical_tokens(trained, scrambled) -> None:
    texts = TRAIN_TEXTS + OTHER_TEXTS
    for generator, steps in ((trained[0], 12), (scrambled, 30)):
        cached = generator.generate(texts, max_steps=steps)
        recomputed = generator.generate(texts, max_steps=steps, use_cache=False)
        assert len({tuple(c.flatten().tolist()) for c in cached}) > 1  # outputs depend on the text
        for a, b in zip(cached, recomputed, strict=True):
            assert torch.equal(a, b)


def test_generation_only_emits_real_codes_and_only_the_body_ends(scrambled) -> None:
    # Make </s> and the 3 extra SOKE tokens of every part the most likely choice of every head.
    bias = scrambled.mbart.final_logits_bias[0]
    with torch.no_grad():
        for ids, size in zip(scrambled.part_token_ids, SIZES, strict=True):
            bias[ids[size:]] = 100.0
        bias[scrambled.eos_row] = 100.0
    ended = scrambled.generate(TRAIN_TEXTS, max_steps=10, min_steps=4)
    assert [len(c) for c in ended] == [4] * len(TRAIN_TEXTS)
    never_ended = scrambled.generate(TRAIN_TEXTS, max_steps=10, min_steps=10)
    assert [len(c) for c in never_ended] == [10] * len(TRAIN_TEXTS)
    for codes in ended + never_ended:
        assert (codes >= 0).all() and (codes < torch.tensor(SIZES)).all()


def test_top_1_sampling_is_greedy_and_temperature_must_be_positive(scrambled) -> None:
    greedy = scrambled.generate(TRAIN_TEXTS[:2], max_steps=8)
    sampled = scrambled.generate(TRAIN_TEXTS[:2], max_steps=8, do_sample=True, top_k=1, temperature=0.7)
    assert all(torch.equal(a, b) for a, b in zip(greedy, sampled, strict=True))
    with pytest.raises(ConfigError, match="temperature"):
        scrambled.generate(TRAIN_TEXTS[:1], do_sample=True, temperature=0.0)


def test_a_seeded_generator_repeats_sampling_and_leaves_the_global_rng_alone(scrambled) -> None:
    def sample(seed: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return scrambled.generate(TRAIN_TEXTS, max_steps=8, do_sample=True, temperature=2.0, generator=generator)

    global_state = torch.random.get_rng_state()
    first, again, other = sample(0), sample(0), sample(1)
    assert torch.equal(torch.random.get_rng_state(), global_state)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert any(len(a) != len(b) or not torch.equal(a, b) for a, b in zip(first, other, strict=True))


def _copy_with_vocab_map(tiny_dir: Path, target: Path, vocab_map: np.ndarray) -> Path:
    shutil.copytree(tiny_dir, target)
    np.save(target / VOCAB_MAP_FILE, vocab_map)
    return target


def test_vocab_map_sends_token_ids_to_rows_and_dropped_ones_to_unk(tiny_dir: Path, tmp_path: Path) -> None:
    plain = _generator(tiny_dir)
    ids = plain.tokenizer(TRAIN_TEXTS[0], add_special_tokens=False)["input_ids"]
    vocab_map = np.arange(len(plain.tokenizer), dtype=np.int64)
    vocab_map[[ids[0], ids[1]]] = vocab_map[[ids[1], ids[0]]]
    vocab_map[ids[2]] = -1
    mapped = _generator(_copy_with_vocab_map(tiny_dir, tmp_path / "mapped", vocab_map))
    rows, _ = mapped.encode_source(TRAIN_TEXTS[:1])
    expected = [ids[1], ids[0], 3] + [vocab_map[i] if vocab_map[i] >= 0 else 3 for i in ids[3:]]
    assert rows[0, : len(ids)].tolist() == expected


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m[:10], "vocab_map.npy must be a 1-D integer array"),
    (lambda m: np.where(m == 2, -1, m), r"vocab_map.npy drops </s>"),
])
def test_bad_vocab_map_is_a_config_error_naming_the_file(tiny_dir: Path, tmp_path: Path, edit, message):
    vocab_map = edit(np.arange(len(_generator(tiny_dir).tokenizer), dtype=np.int64))
    with pytest.raises(ConfigError, match=message):
        _generator(_copy_with_vocab_map(tiny_dir, tmp_path / "bad", vocab_map))


def test_pruned_folder_encodes_like_the_full_one(tiny_dir: Path, tmp_path: Path) -> None:
    prune_mbart(tiny_dir, tmp_path / "pruned", TRAIN_TEXTS)
    full, pruned = _generator(tiny_dir), _generator(tmp_path / "pruned")
    assert pruned.tgt_lang_row < full.tgt_lang_row
    with torch.no_grad():
        states = [g.mbart.model.encoder(*g.encode_source(TRAIN_TEXTS)).last_hidden_state
                  for g in (full, pruned)]
    torch.testing.assert_close(states[0], states[1])


def test_missing_folder_or_files_are_config_errors_with_the_fix(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere does not exist.*make_tiny_mbart\.py"):
        SignGenerator(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(tiny_dir / "config.json", partial)
    message = r"partial has no model\.safetensors.*; no tokenizer\.json.*prepare_mbart"
    with pytest.raises(ConfigError, match=message):
        SignGenerator(partial)


def test_attention_is_pytorch_sdpa_and_equals_eager_with_padding_masked(scrambled) -> None:
    """test_padding_leaks_neither_into_sources_nor_into_losses checks the masks with the same (sdpa) attention."""
    assert scrambled.mbart.config._attn_implementation == "sdpa"
    texts = [OTHER_TEXTS[2], TRAIN_TEXTS[3]]  # the second source and the first target are padded
    codes = _random_codes([2, 9], seed=5)
    keywords = [[KEYWORD], None]
    with torch.no_grad():
        fused = scrambled(texts, codes, keywords)
        short_alone = scrambled.mbart.model.encoder(*scrambled.encode_source(texts[1:])).last_hidden_state[0]
        short_padded = scrambled.mbart.model.encoder(*scrambled.encode_source(texts, keywords)).last_hidden_state[1]
        scrambled.mbart.set_attn_implementation("eager")
        try:
            eager = scrambled(texts, codes, keywords)
        finally:
            scrambled.mbart.set_attn_implementation("sdpa")
    for key, value in eager.items():
        torch.testing.assert_close(fused[key], value, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(short_padded[: len(short_alone)], short_alone)
