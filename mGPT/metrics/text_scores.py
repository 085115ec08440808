"""Translation scores for back-translation: BLEU-1..4 and chrF (sacrebleu) and ROUGE-L (torchmetrics).

Hypotheses and references are first brought to the project's one spelling of Arabic (normalize_arabic: no
diacritics, tatweel or punctuation, unified alef, hamza, taa marbuta and yaa forms), so a score never
depends on how a sentence was typed. After that the words are the space-separated tokens: sacrebleu runs
with tokenize="none" and ROUGE-L with str.split. ROUGE's usual default tokenizer keeps only [a-z0-9] and
would score every Arabic sentence as empty.

Corpus values: BLEU and chrF from the n-gram statistics of the whole corpus (sacrebleu's corpus_score);
ROUGE-L as the mean of the sentence F1 values, as sign-language translation papers report it. Per sentence:
sacrebleu's sentence BLEU-4 (with effective order, so short sentences are not all 0), chrF and ROUGE-L.
Every value is on a 0-100 scale.
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF
from torchmetrics.functional.text.rouge import rouge_score

from mGPT.data.arabic import normalize_arabic

BLEU_ORDERS = (1, 2, 3, 4)
CORPUS_KEYS = ("BLEU1", "BLEU2", "BLEU3", "BLEU4", "chrF", "ROUGE_L")
SENTENCE_KEYS = ("BLEU4", "chrF", "ROUGE_L")


def _normalized(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of sentences, not one string")
    return [normalize_arabic(text) for text in texts]


def corpus_bleu(order: int) -> BLEU:
    """sacrebleu's BLEU up to n-grams of `order` (cumulative, as BLEU-1..4 are reported), on our words."""
    return BLEU(max_ngram_order=order, tokenize="none")


def _rouge_l(hypotheses: list[str], references: list[str]) -> list[float]:
    """Sentence ROUGE-L F1 (0-100) per pair; an empty sentence scores 0."""
    values = []
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        if not hypothesis or not reference:
            values.append(0.0)
            continue
        score = rouge_score(hypothesis, reference, rouge_keys=("rougeL",), normalizer=normalize_arabic,
                            tokenizer=str.split)
        values.append(100 * float(score["rougeL_fmeasure"]))
    return values


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """BLEU1..BLEU4, chrF, ROUGE_L of the corpus, one reference per hypothesis."""
    hyps, refs = _normalized(hypotheses, "hypotheses"), _normalized(references, "references")
    if len(hyps) != len(refs) or not hyps:
        raise ValueError(f"need as many hypotheses as references, at least one: got {len(hyps)} and {len(refs)}")
    scores = {f"BLEU{n}": float(corpus_bleu(n).corpus_score(hyps, [refs]).score) for n in BLEU_ORDERS}
    scores["chrF"] = float(CHRF().corpus_score(hyps, [refs]).score)
    rouge = _rouge_l(hyps, refs)
    scores["ROUGE_L"] = sum(rouge) / len(rouge)
    return scores


def sentence_scores(hypotheses: Sequence[str], references: Sequence[str]) -> list[dict[str, float]]:
    """BLEU4 (effective order), chrF and ROUGE_L of each hypothesis against its reference."""
    hyps, refs = _normalized(hypotheses, "hypotheses"), _normalized(references, "references")
    if len(hyps) != len(refs):
        raise ValueError(f"need as many hypotheses as references: got {len(hyps)} and {len(refs)}")
    bleu, chrf = BLEU(tokenize="none", effective_order=True), CHRF()
    return [{"BLEU4": float(bleu.sentence_score(h, [r]).score), "chrF": float(chrf.sentence_score(h, [r]).score),
             "ROUGE_L": rouge}
            for h, r, rouge in zip(hyps, refs, _rouge_l(hyps, refs), strict=True)]


def signatures() -> dict[str, str]:
    """sacrebleu's signature strings, which make a score reproducible (version, tokenizer, smoothing)."""
    bleu, chrf = corpus_bleu(4), CHRF()
    bleu.corpus_score(["a"], [["a"]])  # the signature names the settings once a score was computed
    chrf.corpus_score(["a"], [["a"]])
    return {"BLEU": str(bleu.get_signature()), "chrF": str(chrf.get_signature()),
            "ROUGE_L": "torchmetrics rouge_score, rougeL F1, normalize_arabic + str.split, mean over sentences"}
