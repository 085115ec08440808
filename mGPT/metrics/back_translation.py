"""Back-translation (SPEC 10): the sign-to-text evaluator reads signing, its text is scored against the sentence.

Any motion source goes through the same path: SMPL-X parameters (T, 179) -> the 133-dim feature with the
length rules the evaluator was trained with -> its train statistics -> greedy translation -> BLEU, chrF,
ROUGE-L (mGPT.metrics.text_scores). The score is only as good as the evaluator: report the ground-truth
motion's score next to the generated one's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from mGPT.archs.slt import SignToText
from mGPT.data.features import clip_features
from mGPT.metrics.text_scores import corpus_scores, sentence_scores, signatures


@torch.no_grad()
def translate_params(evaluator: SignToText, params: Sequence[np.ndarray], batch_size: int = 32,
                     progress: str | None = None) -> list[str]:
    """The evaluator's sentence for each clip of SMPL-X parameters (T_i, 179), in order."""
    evaluator.eval()
    device = evaluator.mean.device
    lengths = evaluator.sizes["min_frames"], evaluator.sizes["max_frames"]  # the rules of its training clips
    features = [torch.as_tensor(clip_features(np.asarray(p, dtype=np.float32), *lengths)) for p in params]
    hypotheses: list[str] = []
    starts = range(0, len(features), batch_size)
    for start in tqdm(starts, desc=progress, unit="batch", disable=progress is None):
        chunk = features[start:start + batch_size]
        lengths = torch.tensor([len(f) for f in chunk], device=device)  # (B,)
        motion = torch.zeros(len(chunk), int(lengths.max()), chunk[0].shape[-1], device=device)  # (B, T, 133)
        for row, f in enumerate(chunk):
            motion[row, : len(f)] = evaluator.normalize(f.to(device))
        hypotheses += evaluator.translate(motion, lengths)
    return hypotheses


def score_translations(names: Sequence[str], hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """{"corpus": {BLEU1..4, chrF, ROUGE_L}, "per_sample": {name: {reference, hypothesis, BLEU4, chrF,
    ROUGE_L}}, "samples", "signatures"}, all scores 0-100."""
    if not (len(names) == len(hypotheses) == len(references)):
        raise ValueError(f"{len(names)} names, {len(hypotheses)} hypotheses and {len(references)} references")
    per_sample = {
        name: {"reference": reference, "hypothesis": hypothesis, **scores}
        for name, hypothesis, reference, scores in zip(names, hypotheses, references,
                                                       sentence_scores(hypotheses, references), strict=True)
    }
    return {"corpus": corpus_scores(hypotheses, references), "per_sample": per_sample, "samples": len(names),
            "signatures": signatures()}


def back_translate(evaluator: SignToText, names: Sequence[str], params: Sequence[np.ndarray],
                   references: Sequence[str], batch_size: int = 32, progress: str | None = None) -> dict:
    """Translate every clip of `params` and score it against its reference sentence (score_translations)."""
    return score_translations(names, translate_params(evaluator, params, batch_size, progress), references)


def format_row(label: str, corpus: dict[str, float]) -> str:
    return f"{label:<28}" + "".join(f"{corpus[k]:>9.2f}" for k in ("BLEU1", "BLEU2", "BLEU3", "BLEU4", "chrF",
                                                                    "ROUGE_L"))


def format_header() -> str:
    return f"{'motion source':<28}" + "".join(f"{k:>9}" for k in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "chrF",
                                                                   "ROUGE-L"))
