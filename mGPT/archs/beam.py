"""Beam search for the multi-head generator (TEST.DECODING: beam).

Greedy decoding ends a sample at the first step where </s> beats every code. Beam search keeps the
`num_beams` best prefixes of each sample instead, scored by the sum of their log-probabilities, and returns
the finished hypothesis with the best score / (steps + 1) ** length_penalty (the +1 counts the </s>).

The three heads read one decoder state, so given that state they are independent: the best left- and
right-hand codes of a step are their argmax whatever the body code is. The beam therefore branches on the
body head only (codes and </s>), and each candidate carries its hands' argmax and their log-probabilities.
A sample stops when it holds `num_beams` finished hypotheses that its best running prefix cannot beat at
its current length (as transformers' beam search without early stopping decides), or at its step limit.
"""

import torch
import torch.nn.functional as F
from transformers import DynamicCache, EncoderDecoderCache

from mGPT.archs.amg import Decoded, Keywords, SignGenerator, checked_length_options
from mGPT.errors import ConfigError


@torch.no_grad()
def beam_decode(generator: SignGenerator, texts: list[str], keywords: list[Keywords | None] | None = None,
                num_beams: int = 4, length_penalty: float = 1.0, max_steps: int | None = None,
                min_steps: int = 0, length_bound: float | None = None,
                length_steer: float | None = 0.0) -> Decoded:
    """Codes (N_i, 3) per text, the same Decoded as SignGenerator.decode; limits and length options as there."""
    if num_beams < 1:
        raise ConfigError(f"num_beams (TEST.NUM_BEAMS) must be >= 1, got {num_beams}")
    if not texts:
        return Decoded.empty()
    mbart, device, beams, batch = generator.mbart, generator.device, num_beams, len(texts)
    length_bound, length_steer = checked_length_options(length_bound, length_steer)
    encoder_states, source_mask, predicted, allowed_steps = generator.start_decoding(texts, keywords, max_steps,
                                                                                     length_bound)
    encoder_states = encoder_states.repeat_interleave(beams, 0)  # (B K, S, D): row b K + k is beam k of b
    source_mask = source_mask.repeat_interleave(beams, 0)
    predicted_rows = predicted.repeat_interleave(beams)  # (B K,)

    eos = int(generator.eos_labels[0])
    body_allowed = {flag: generator._allowed(0, flag) for flag in (False, True)}
    hand_allowed = [generator._allowed(p, eos=False) for p in (1, 2)]
    projections = generator.head_projections()
    cache = EncoderDecoderCache(DynamicCache(config=mbart.config), DynamicCache(config=mbart.config))
    scores = torch.full((batch, beams), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live prefix per sample at the start; the others join at the first branching
    prefixes = torch.zeros(batch * beams, 0, 3, dtype=torch.long, device=device)  # (B K, t, 3)
    finished: list[list[tuple[float, torch.Tensor, bool]]] = [[] for _ in range(batch)]  # (score, codes, cap)
    done = [False] * batch
    step_embeds = generator.embed_steps(torch.full((batch * beams, 1, 3), generator.tgt_lang_row, device=device))

    for step in range(int(allowed_steps.max())):
        hidden = mbart.model.decoder(inputs_embeds=step_embeds, encoder_hidden_states=encoder_states,
                                     encoder_attention_mask=source_mask, cache=cache,
                                     use_cache=True).last_hidden_state[:, -1]  # (B K, D)
        logits = [F.linear(hidden, *projection) for projection in projections]  # (B K, V_p) each
        if length_steer and step >= min_steps:
            logits[0][:, -1] += generator._end_bonus(step, predicted_rows, length_steer)
        body = F.log_softmax(logits[0].float().masked_fill(~body_allowed[step >= min_steps], float("-inf")), -1)
        hands = [F.log_softmax(logits[p].float().masked_fill(~hand_allowed[p - 1], float("-inf")), -1).max(-1)
                 for p in (1, 2)]  # (values, indices), (B K,) each
        candidates = scores.reshape(-1, 1) + body  # (B K, V_0)
        candidates[:, :-1] += (hands[0].values + hands[1].values)[:, None]  # a code step also pays its hands
        vocabulary = candidates.shape[1]
        best, best_index = candidates.reshape(batch, -1).topk(2 * beams, dim=1)  # (B, 2K): K codes survive
        new_scores = torch.full((batch, beams), float("-inf"), device=device)
        rows = torch.arange(batch * beams, device=device)  # the prefix each row continues (done rows: itself)
        body_codes = torch.zeros(batch * beams, dtype=torch.long, device=device)
        for b in range(batch):
            if done[b]:
                continue
            kept = 0
            for score, index in zip(best[b].tolist(), best_index[b].tolist(), strict=True):
                if score == float("-inf") or kept == beams:
                    break
                row, code = b * beams + index // vocabulary, index % vocabulary
                if code == eos:
                    finished[b].append((score / (step + 1) ** length_penalty, prefixes[row], False))
                    continue
                rows[b * beams + kept], body_codes[b * beams + kept] = row, code
                new_scores[b, kept] = score
                kept += 1
        prefixes = torch.cat([prefixes[rows], torch.stack([body_codes, hands[0].indices[rows],
                                                           hands[1].indices[rows]], dim=1)[:, None]], dim=1)
        scores = new_scores
        cache.reorder_cache(rows)
        for b in range(batch):
            if done[b]:
                continue
            live = scores[b] > float("-inf")
            if step + 1 >= int(allowed_steps[b]):  # the step limit: every live prefix ends here, at the cap
                finished[b] += [(float(s) / (step + 2) ** length_penalty, prefixes[b * beams + k], True)
                                for k, s in enumerate(scores[b].tolist()) if live[k]]
                done[b] = True
            elif not live.any():
                done[b] = True
            elif len(finished[b]) >= beams:
                worst_kept = sorted(f[0] for f in finished[b])[-beams]
                done[b] = float(scores[b].max()) / (step + 2) ** length_penalty <= worst_kept
            if done[b]:
                scores[b] = float("-inf")
        if all(done):
            break
        step_embeds = generator.embed_steps(generator.code_rows(prefixes[:, -1]))[:, None]  # (B K, 1, D)

    codes, at_cap = [], []
    for b in range(batch):
        _, best_codes, capped = max(finished[b], key=lambda hypothesis: hypothesis[0])
        codes.append(best_codes)
        at_cap.append(capped)
    return Decoded(codes, torch.tensor(at_cap, device=device), allowed_steps, predicted)
