"""Shrink mBART-large-cc25's 250k-token vocabulary to the tokens our Arabic text uses.

The embedding matrix (tied with the output projection) is about half of mBART's
parameters, and almost all of its rows belong to languages we never see. We keep
the rows of every token that the Isharah sentences and the dictionary words produce,
plus all special tokens and language codes, in their original order.

The pruned folder keeps the ORIGINAL tokenizer, so text tokenizes exactly as before,
and adds `vocab_map.npy`: int64 array, index = original token id, value = row in the
pruned embedding (-1 for dropped tokens). The model maps ids through it in one lookup.
SOKE's pruned model kept only English/Chinese/German rows, so Arabic became <unk>.
"""

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import MBartForConditionalGeneration, MBartTokenizer
from transformers.models.mbart.modeling_mbart import MBartScaledWordEmbedding
from transformers.models.mbart.tokenization_mbart import FAIRSEQ_LANGUAGE_CODES

from mGPT.data.arabic import normalize_arabic
from mGPT.data.isharah import read_split_csv, split_csv_path
from mGPT.errors import CheckpointError, ConfigError, DataError

VOCAB_MAP_FILE = "vocab_map.npy"
REPORT_FILE = "pruning.json"
SOURCE_LANGUAGE = "ar_AR"
_SENTENCEPIECE_FILE = "sentencepiece.bpe.model"
_TOKEN_ID_FIELDS = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "decoder_start_token_id",
    "forced_bos_token_id",
    "forced_eos_token_id",
)
_TOKENIZE_CHUNK = 1024


def collect_sentences(data_root: str | Path) -> list[str]:
    """Every distinct SENTENCE of every split CSV found under `data_root`, in split then row order."""
    data_root = Path(data_root)
    split_names = sorted(p.name for p in data_root.glob("*") if p.is_dir())
    csv_paths = [split_csv_path(data_root, name) for name in split_names]
    csv_paths = [path for path in csv_paths if path.is_file()]
    if not csv_paths:
        raise DataError(
            f"no split CSV under {data_root}: expected e.g. {split_csv_path(data_root, 'train')}; "
            "check --data-root"
        )
    sentences: dict[str, None] = {}  # an ordered set
    for path in csv_paths:
        for sentence in read_split_csv(path)["SENTENCE"]:
            if isinstance(sentence, str) and sentence.strip():
                sentences[sentence] = None
    return list(sentences)


def _token_ids(config: object) -> list[int]:
    """All token ids that `config` names (eos_token_id may be a list)."""
    ids = []
    for field in _TOKEN_ID_FIELDS:
        value = getattr(config, field, None)
        ids.extend(value if isinstance(value, list) else [] if value is None else [value])
    return ids


def _remap_token_ids(config: object, vocab_map: np.ndarray) -> None:
    """Rewrite the token ids in `config` as rows of the pruned embedding."""
    for field in _TOKEN_ID_FIELDS:
        value = getattr(config, field, None)
        if isinstance(value, list):
            setattr(config, field, [int(vocab_map[v]) for v in value])
        elif value is not None:
            setattr(config, field, int(vocab_map[value]))


def _load_full_model(src_dir: Path) -> tuple[MBartTokenizer, MBartForConditionalGeneration]:
    if not (src_dir / "config.json").is_file():
        raise CheckpointError(
            f"{src_dir} has no config.json: point --src at the full facebook/mbart-large-cc25 folder "
            "(config, weights, sentencepiece.bpe.model) that the setup notebook downloads"
        )
    try:
        tokenizer = MBartTokenizer.from_pretrained(src_dir, local_files_only=True, src_lang=SOURCE_LANGUAGE)
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot load the mBART tokenizer from {src_dir} ({err}); re-download the folder"
        ) from err
    try:
        model = MBartForConditionalGeneration.from_pretrained(src_dir, local_files_only=True)
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot load the mBART weights from {src_dir} ({err}); re-download the folder"
        ) from err
    return tokenizer, model


def _prune_rows(model: MBartForConditionalGeneration, kept_ids: np.ndarray, vocab_map: np.ndarray) -> None:
    """Keep only rows `kept_ids` (N,) of every vocabulary-sized matrix, in place.

    With tied weights (mBART-cc25) the shared, encoder, decoder and output matrices are one
    tensor; untied, they are separate. Each distinct tensor is sliced once, so ties survive.
    """
    kept_ids = torch.from_numpy(kept_ids)
    pruned: dict[int, nn.Parameter] = {}

    def pruned_weight(weight: torch.Tensor) -> nn.Parameter:  # (V, d_model) -> (N, d_model)
        if id(weight) not in pruned:
            pruned[id(weight)] = nn.Parameter(weight.detach()[kept_ids].clone())
        return pruned[id(weight)]

    def pruned_embedding(old: MBartScaledWordEmbedding) -> MBartScaledWordEmbedding:
        new = MBartScaledWordEmbedding(
            len(kept_ids), old.embedding_dim, int(vocab_map[old.padding_idx]), embed_scale=old.embed_scale
        )
        new.weight = pruned_weight(old.weight)
        return new

    base = model.model
    base.shared = pruned_embedding(base.shared)
    base.encoder.embed_tokens = pruned_embedding(base.encoder.embed_tokens)
    base.decoder.embed_tokens = pruned_embedding(base.decoder.embed_tokens)
    new_head = nn.Linear(model.lm_head.in_features, len(kept_ids), bias=False)
    new_head.weight = pruned_weight(model.lm_head.weight)
    model.lm_head = new_head
    model.final_logits_bias = nn.Buffer(model.final_logits_bias[:, kept_ids].clone())  # (1, N)


def prune_mbart(
    src_dir: str | Path, out_dir: str | Path, sentences: Iterable[str], extra_words: Iterable[str] = ()
) -> dict:
    """Write a pruned copy of the mBART folder `src_dir` to `out_dir`; return counts.

    Kept: tokens of `sentences` and `extra_words` (as written and normalised), special
    tokens, language codes and any token id the config names.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if out_dir.resolve() == src_dir.resolve():
        raise ConfigError(
            f"--out {out_dir} is the full model folder; choose another folder for the pruned model"
        )
    sentences, extra_words = list(sentences), list(extra_words)
    tokenizer, model = _load_full_model(src_dir)
    total = model.config.vocab_size

    # Both spellings, because callers may feed the model raw or normalised text.
    spellings = [spelling for text in (*sentences, *extra_words) for spelling in (text, normalize_arabic(text))]
    texts = list(dict.fromkeys(spelling for spelling in spellings if spelling))
    text_ids = []
    for start in tqdm(range(0, len(texts), _TOKENIZE_CHUNK), desc="tokenizing", unit="chunk"):
        encoded = tokenizer(texts[start : start + _TOKENIZE_CHUNK], add_special_tokens=True)["input_ids"]
        text_ids.extend(np.asarray(ids, dtype=np.int64) for ids in encoded)
    text_ids = np.concatenate(text_ids) if text_ids else np.zeros(0, dtype=np.int64)

    special_ids = [
        *tokenizer.all_special_ids,
        *tokenizer.convert_tokens_to_ids(FAIRSEQ_LANGUAGE_CODES),
        *tokenizer.added_tokens_decoder,
        *_token_ids(model.config),
        *_token_ids(model.generation_config),
    ]
    kept_ids = np.unique(np.concatenate([text_ids, np.asarray(special_ids, dtype=np.int64)]))  # (N,) sorted
    if kept_ids[-1] >= total:
        raise CheckpointError(
            f"the tokenizer in {src_dir} produces id {kept_ids[-1]} but the model has only {total} rows; "
            "tokenizer and weights come from different models, re-download the folder"
        )

    vocab_map = np.full(total, -1, dtype=np.int64)
    vocab_map[kept_ids] = np.arange(len(kept_ids))
    _prune_rows(model, kept_ids, vocab_map)
    model.config.vocab_size = len(kept_ids)
    _remap_token_ids(model.config, vocab_map)
    _remap_token_ids(model.generation_config, vocab_map)
    # Hub leftovers for en->ro translation pipelines, holding original ids.
    if getattr(model.config, "task_specific_params", None):
        model.config.task_specific_params = None

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if (src_dir / _SENTENCEPIECE_FILE).is_file() and not (out_dir / _SENTENCEPIECE_FILE).is_file():
        shutil.copy2(src_dir / _SENTENCEPIECE_FILE, out_dir / _SENTENCEPIECE_FILE)
    np.save(out_dir / VOCAB_MAP_FILE, vocab_map)

    report = {
        "kept": int(len(kept_ids)),
        "total": int(total),
        "sentences": len(sentences),
        "words": len(extra_words),
        "text_tokens": int(len(text_ids)),  # over the distinct spellings, specials included
        "unk_tokens": int(np.count_nonzero(text_ids == tokenizer.unk_token_id)),
        "source": str(src_dir),
    }
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report
