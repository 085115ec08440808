"""Beam search (mGPT.archs.beam) on a tiny random mBART: against an exhaustive search, limits, batching."""

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mGPT.archs.amg import SignGenerator
from mGPT.archs.beam import beam_decode
from mGPT.archs.tiny_mbart import make_tiny_mbart
from mGPT.errors import ConfigError
from tests.test_amg import scramble

SIZES = (4, 6, 6)
TEXTS = ["مرحبا بك في المدرسة", "أين المستشفى من فضلك", "كم عمرك اليوم"]


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> SignGenerator:
    """Random weights, so that every step's choice depends on the prefix."""
    mbart_dir = make_tiny_mbart(TEXTS, tmp_path_factory.mktemp("beam") / "mbart", d_model=32, layers=1)
    torch.manual_seed(0)
    return scramble(SignGenerator(mbart_dir, codebook_sizes=SIZES).eval(), seed=5)


def _step_log_probs(model: SignGenerator, text: str, prefix: list[tuple[int, int, int]]):
    """Log-probabilities of the next step after `prefix`, recomputed from scratch: body (V_0,), hands' best."""
    source, mask = model.encode_source([text])
    states = model.mbart.model.encoder(input_ids=source, attention_mask=mask).last_hidden_state
    rows = torch.full((1, 1, 3), model.tgt_lang_row)
    if prefix:
        rows = torch.cat([rows, model.code_rows(torch.tensor(prefix))[None]], dim=1)
    hidden = model.mbart.model.decoder(inputs_embeds=model.embed_steps(rows), encoder_hidden_states=states,
                                       encoder_attention_mask=mask).last_hidden_state[0, -1]
    logits = [F.linear(hidden, *projection) for projection in model.head_projections()]
    body = F.log_softmax(logits[0].masked_fill(~model._allowed(0, eos=True), float("-inf")), -1)
    hands = [F.log_softmax(logits[p].masked_fill(~model._allowed(p, eos=False), float("-inf")), -1).max(-1)
             for p in (1, 2)]
    return body, hands


@torch.no_grad()
def _exhaustive_best(model: SignGenerator, text: str, max_steps: int, length_penalty: float) -> list:
    """The best-scoring hypothesis over every body sequence of up to max_steps codes, by brute force."""
    eos, best = int(model.eos_labels[0]), (-math.inf, None)
    for length in range(max_steps + 1):
        for body_codes in itertools.product(range(SIZES[0]), repeat=length):
            prefix, score = [], 0.0
            for code in body_codes:
                body, hands = _step_log_probs(model, text, prefix)
                score += float(body[code] + hands[0].values + hands[1].values)
                prefix.append((code, int(hands[0].indices), int(hands[1].indices)))
            if length < max_steps:  # ended by </s>; at the cap it ends without one
                score += float(_step_log_probs(model, text, prefix)[0][eos])
            normalised = score / (length + 1) ** length_penalty
            if normalised > best[0]:
                best = (normalised, prefix)
    return best[1]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_a_beam_wide_enough_finds_the_exhaustive_best(generator: SignGenerator, length_penalty: float) -> None:
    max_steps = 3
    decoded = beam_decode(generator, TEXTS, num_beams=SIZES[0] ** max_steps, length_penalty=length_penalty,
                          max_steps=max_steps)
    greedy = generator.generate(TEXTS, max_steps=max_steps)
    differs = 0
    for text, codes, greedy_codes in zip(TEXTS, decoded.codes, greedy, strict=True):
        assert codes.tolist() == [list(step) for step in _exhaustive_best(generator, text, max_steps, length_penalty)]
        differs += not torch.equal(codes, greedy_codes)
    assert differs  # the search finds something greedy decoding does not


def test_one_beam_per_sample_and_a_batch_decode_alike(generator: SignGenerator) -> None:
    together = beam_decode(generator, TEXTS, num_beams=3, max_steps=8)
    for i, text in enumerate(TEXTS):
        alone = beam_decode(generator, [text], num_beams=3, max_steps=8)
        assert torch.equal(alone.codes[0], together.codes[i])
        assert bool(alone.at_cap[0]) == bool(together.at_cap[i])


def test_limits_and_real_codes(generator: SignGenerator) -> None:
    bias = generator.mbart.final_logits_bias[0]
    saved = bias.clone()
    try:
        with torch.no_grad():
            bias[generator.eos_row] = 100.0  # </s> wins every step it is allowed
        ended = beam_decode(generator, TEXTS, num_beams=2, max_steps=10, min_steps=4)
        assert [len(c) for c in ended.codes] == [4] * len(TEXTS) and not ended.at_cap.any()
        with torch.no_grad():
            bias[generator.eos_row] = -100.0  # </s> never wins: every sample runs to its limit
        capped = beam_decode(generator, TEXTS, num_beams=2, max_steps=6)
        assert [len(c) for c in capped.codes] == [6] * len(TEXTS) and capped.at_cap.all()
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    for codes in ended.codes + capped.codes:
        assert (codes >= 0).all() and (codes < torch.tensor(SIZES)).all()
    with pytest.raises(ConfigError, match="TEST.NUM_BEAMS"):
        beam_decode(generator, TEXTS, num_beams=0)


def test_an_empty_batch(generator: SignGenerator) -> None:
    assert beam_decode(generator, [], num_beams=2).codes == []


def test_test_decoding_beam_runs_beam_search_in_the_module(tiny_mbart: Path) -> None:
    from mGPT.models.lm_module import GeneratorModule
    from tests.test_length import _lm_config, _never_ending_module, _tiny_deto

    torch.manual_seed(0)  # </s> never wins, so every sample runs to LM.MAX_MOTION_TOKENS (8) steps
    module = _never_ending_module(_lm_config(tiny_mbart, "TEST.DECODING=beam", "TEST.NUM_BEAMS=3",
                                             "TEST.LENGTH_PENALTY=0.5"))
    texts = ["أنا أذهب إلى المدرسة", "الكتاب على الطاولة"]
    decoded, params = module.decode_smplx(texts, None)
    expected = beam_decode(module.generator, texts, num_beams=3, length_penalty=0.5)
    assert all(torch.equal(a, b) for a, b in zip(decoded.codes, expected.codes, strict=True))
    assert [len(c) for c in decoded.codes] == [8, 8]
    assert [len(p) for p in params] == [32, 32]  # 4 frames per code step
    greedy = module.decode_smplx(texts, None, decoding="greedy")[0]
    assert all(torch.equal(a, b) for a, b in zip(greedy.codes, module.generator.generate(texts), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(greedy.codes, decoded.codes, strict=True))
    with pytest.raises(ConfigError, match="TEST.DECODING"):
        module.decode_smplx(texts, None, decoding="beams")
    with pytest.raises(ConfigError, match="TEST.DECODING must be one of greedy, sample, beam"):
        GeneratorModule(_lm_config(tiny_mbart, "TEST.DECODING=nucleus"), _tiny_deto())
