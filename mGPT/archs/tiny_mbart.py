"""A small random-weight mBART in the folder format of facebook/mbart-large-cc25.

The generator starts from mBART-large-cc25 (12 + 12 layers, d_model 1024, 250k pieces, a few GB).
Tests, the demo config and the decoding bench need the same `from_pretrained` code path without that
download, so this trains a sentencepiece model on the corpus sentences and saves, into one folder:

    config.json, generation_config.json, model.safetensors   (MBartForConditionalGeneration)
    sentencepiece.bpe.model, tokenizer.json, tokenizer_config.json   (MBartTokenizer)

Token ids follow mBART's fairseq layout, as the real model's do: <s>=0, <pad>=1, </s>=2, <unk>=3, then the
sentencepiece pieces, then the 25 language codes (ar_AR first) and <mask>. Same sentences and seed give
byte-identical files.
"""

import io
import tempfile
from pathlib import Path

import sentencepiece as spm
import torch
from transformers import MBartConfig, MBartForConditionalGeneration, MBartTokenizer

from mGPT.archs.prune_mbart import collect_sentences
from mGPT.errors import ConfigError, DataError

SENTENCEPIECE_FILE = "sentencepiece.bpe.model"
DEFAULT_VOCAB_SIZE = 4000
# mBART-cc25 attends over at most 1024 positions; the source holds text plus keyword sign tokens.
MAX_POSITIONS = 1024


def train_sentencepiece(sentences: list[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> bytes:
    """A unigram sentencepiece model (serialized) with at most `vocab_size` pieces.

    The limit is soft: a small corpus yields fewer pieces instead of an error. Pieces 0..2 are <unk>, <s>,
    </s>, the layout mBART's tokenizer expects (it skips them and puts its own specials first).
    """
    sentences = [s.strip() for s in sentences if s.strip()]
    if not sentences:
        raise DataError("the corpus has no sentences: give a text file with one sentence per line")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            character_coverage=1.0,
            # One thread and no sentence sampling keep the result identical from run to run.
            num_threads=1,
            input_sentence_size=0,
            minloglevel=2,
        )
    except RuntimeError as err:
        raise ConfigError(f"sentencepiece training failed with vocab_size={vocab_size}: {err}. "
                          "Give a larger --vocab-size.") from err
    return model.getvalue()


def random_mbart_config(
    vocab_size: int, d_model: int = 256, layers: int = 3, attention_heads: int = 4, ffn_dim: int = 512
) -> MBartConfig:
    """An MBartConfig shaped like mBART-large-cc25 (pre-norm, scaled embeddings, gelu), only smaller."""
    return MBartConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=attention_heads,
        decoder_attention_heads=attention_heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_position_embeddings=MAX_POSITIONS,
        scale_embedding=True,
        activation_function="gelu",
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_eos_token_id=2,
    )


def make_tiny_mbart(
    sentences: list[str],
    out_dir: str | Path,
    d_model: int = 256,
    layers: int = 3,
    vocab_size: int | None = None,
    seed: int = 0,
    *,
    attention_heads: int = 4,
    ffn_dim: int = 512,
) -> Path:
    """Train a tokenizer on `sentences`, build a random mBART around it, save both into `out_dir`.

    `layers` is the depth of the encoder and of the decoder. Load the result with
    `MBartForConditionalGeneration.from_pretrained(out_dir)` and `MBartTokenizer.from_pretrained(out_dir)`,
    exactly like the real mBART-large-cc25 folder.
    """
    if min(d_model, layers, attention_heads, ffn_dim) < 1 or d_model % attention_heads:
        raise ConfigError(f"d_model={d_model}, layers={layers}, attention_heads={attention_heads}, "
                          f"ffn_dim={ffn_dim}: all must be positive and d_model divisible by attention_heads")
    out_dir = Path(out_dir)
    spm_bytes = train_sentencepiece(sentences, vocab_size or DEFAULT_VOCAB_SIZE)

    # The tokenizer is converted from a folder that holds only the sentencepiece model, as it would be for
    # a fresh mBART download, so no stale tokenizer.json in out_dir can take precedence.
    with tempfile.TemporaryDirectory() as spm_dir:
        (Path(spm_dir) / SENTENCEPIECE_FILE).write_bytes(spm_bytes)
        tokenizer = MBartTokenizer.from_pretrained(spm_dir, src_lang="ar_AR", local_files_only=True)

    torch.manual_seed(seed)
    config = random_mbart_config(len(tokenizer), d_model, layers, attention_heads, ffn_dim)
    model = MBartForConditionalGeneration(config)

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / SENTENCEPIECE_FILE).write_bytes(spm_bytes)
    return out_dir


def read_corpus(path: str | Path) -> list[str]:
    """Distinct sentences of a text file (one per line) or of every split CSV of an Isharah data root."""
    path = Path(path)
    if path.is_dir():
        # The same sentences the pruning script keeps for the real model.
        return collect_sentences(path)
    if not path.is_file():
        raise DataError(f"corpus {path} does not exist: give a text file or an Isharah data root")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return list(dict.fromkeys(line for line in lines if line))
