"""AMG: the multi-head mBART generator, Arabic text in, sign tokens (body, left hand, right hand) out.

One mBART encoder-decoder produces all three token streams at once (SPEC section 4). Every decoder step
reads one fused embedding of the previous [body, lhand, rhand] tokens,

    (1 - 2a) * E(body) + a * E(lhand) + a * E(rhand),        a = hand_weight,

and the shared output projection is read through three windows, one per part: each head scores only its
own motion tokens plus </s>. Embedding rows appended to mBART's vocabulary:

    ar_SSL | <motion_id_0> .. <motion_id_{n_body+2}> | <hand_id_0> .. | <rhand_id_0> ..

SOKE adds codebook size + 3 tokens per part; the 3 extra tokens stand for no code, so generation masks them.
Within a head, logit index c is code c and index (codebook size + 3) is </s>.

Differences from SOKE's code, on purpose: padding labels are ignored by the losses, the source attention
mask reaches the encoder and the cross-attention, every sample stops on its own </s>, and decoding uses a
key/value cache (use_cache=False recomputes the whole prefix every step, as SOKE does).

Length: a small head on the masked mean of the encoder states predicts log(number of steps) of the target.
Trained with the generator (length_weight), it can bound decoding to ceil(length_bound x predicted) steps and
steer the end token once a sample runs past its predicted length (decode's length_bound, length_steer).
"""

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers import DynamicCache, EncoderDecoderCache, MBartForConditionalGeneration, MBartTokenizer

from mGPT.archs.prune_mbart import VOCAB_MAP_FILE
from mGPT.data.keyword_layout import check_keyword_layout, keyword_positions
from mGPT.errors import ConfigError, DataError
from mGPT.layout import PARTS

EXTRA_TOKENS = 3
IGNORE_INDEX = -100
SETUP_HINT = ("run scripts/prepare_mbart.py (the real mBART-large-cc25, pruned for Isharah) or "
              "scripts/make_tiny_mbart.py (a small demo model) and point LM.MBART_PATH at its output folder")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model")
# PyTorch's fused scaled-dot-product attention: transformers 5 already picks it for mBART when torch has it,
# and falls back to its eager softmax(QK^T)V silently when not. Naming it makes a missing kernel an error.
ATTENTION = "sdpa"

Keywords = Sequence[tuple[str, np.ndarray]]


@dataclass
class Decoded:
    """What decode() made of a batch of texts, per sample in input order."""

    codes: list[torch.Tensor]  # (N_i, 3) each, in codebook index space
    at_cap: torch.Tensor  # (B,) bool: used every step it was allowed without emitting </s>
    allowed_steps: torch.Tensor  # (B,) long: its step limit, max_steps or the length bound, whichever is lower
    predicted_steps: torch.Tensor  # (B,) float: the length head's estimate, in [1, max_motion_tokens]

    @staticmethod
    def empty() -> "Decoded":
        """What decoding no text gives."""
        return Decoded([], torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.long), torch.zeros(0))


def checked_length_options(length_bound: float | None, length_steer: float | None) -> tuple[float, float]:
    """decode()'s length_bound and length_steer as numbers, None meaning 0 (off); bad values name their key."""
    length_bound, length_steer = float(length_bound or 0.0), float(length_steer or 0.0)
    if length_bound != 0.0 and not length_bound >= 1.0:
        raise ConfigError(f"length_bound (LM.LENGTH_BOUND) must be 0 or null (off) or at least 1 (a multiple "
                          f"of the predicted length), got {length_bound}")
    if not length_steer >= 0.0:
        raise ConfigError(f"length_steer (LM.LENGTH_STEER) must be >= 0 (0 = off), got {length_steer}")
    return length_bound, length_steer


def load_mbart(mbart_dir: str | Path, src_lang: str) -> tuple[MBartTokenizer, MBartForConditionalGeneration]:
    """Tokenizer and model from a local mBART folder; nothing is fetched from the hub."""
    mbart_dir = Path(mbart_dir)
    if not mbart_dir.is_dir():
        raise ConfigError(f"mBART folder {mbart_dir} does not exist: {SETUP_HINT}")
    missing = [
        " or ".join(names)
        for names in (("config.json",), _WEIGHT_FILES, _TOKENIZER_FILES)
        if not any((mbart_dir / name).is_file() for name in names)
    ]
    if missing:
        raise ConfigError(f"mBART folder {mbart_dir} has no {'; no '.join(missing)}: {SETUP_HINT}")
    try:
        tokenizer = MBartTokenizer.from_pretrained(mbart_dir, src_lang=src_lang, local_files_only=True)
        model = MBartForConditionalGeneration.from_pretrained(
            mbart_dir, local_files_only=True, dtype=torch.float32, attn_implementation=ATTENTION
        )
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load mBART from {mbart_dir} ({err}): {SETUP_HINT}") from err
    return tokenizer, model


class SignGenerator(nn.Module):
    """Text (plus retrieved keyword signs) -> sign codes (N, 3) = [body, lhand, rhand] per step.

    One step is one code of each part, `frames_per_code` frames of motion (the tokenizer's 2**DOWN_T): at
    most max_motion_tokens steps, so at most `max_frames` frames, come out. The training loss is the sum of
    the three heads' cross-entropies weighted by `head_weights` (LOSS.HEAD_WEIGHTS), plus `length_weight`
    (LOSS.LENGTH_WEIGHT) x the length head's squared error of log steps, the same for training and
    validation. `end_weight` (LOSS.END_WEIGHT) weighs the body head's </s> label in its cross-entropy and
    `label_smoothing` (LOSS.LABEL_SMOOTHING) smooths all three; the defaults (0, 1, 0) are the plain loss.
    `keyword_layout` (LM.KEYWORD_LAYOUT) says where keyword codes go in the source (encode_sources).
    """

    def __init__(
        self,
        mbart_dir: str | Path,
        codebook_sizes: Sequence[int] = (96, 192, 192),
        hand_weight: float = 0.4,
        src_lang: str = "ar_AR",
        max_text_tokens: int = 256,
        max_motion_tokens: int = 100,
        head_weights: Sequence[float] = (1.0, 1.0, 1.0),
        frames_per_code: int = 4,
        length_weight: float = 0.0,
        end_weight: float = 1.0,
        label_smoothing: float = 0.0,
        keyword_layout: str = "after_text",
    ):
        super().__init__()
        self.keyword_layout = check_keyword_layout(keyword_layout)  # LM.KEYWORD_LAYOUT, mGPT.data.keyword_layout
        if len(codebook_sizes) != 3 or min(codebook_sizes) < 1:
            raise ConfigError(f"codebook_sizes must be 3 positive sizes (body, lhand, rhand), "
                              f"got {codebook_sizes}")
        if not 0.0 <= hand_weight <= 0.5:
            raise ConfigError(f"hand_weight (LM.HAND_WEIGHT) must lie in [0, 0.5], got {hand_weight}")
        if len(head_weights) != 3:
            raise ConfigError(f"head_weights (LOSS.HEAD_WEIGHTS) must be 3 numbers, got {head_weights}")
        if frames_per_code < 1:
            raise ConfigError(f"frames_per_code (the tokenizer's 2**DOWN_T) must be positive, got {frames_per_code}")
        if min(max_text_tokens, max_motion_tokens) < 1:
            raise ConfigError(f"LM.MAX_TEXT_TOKENS ({max_text_tokens}) and LM.MAX_MOTION_TOKENS "
                              f"({max_motion_tokens}) must both be positive")
        if not length_weight >= 0.0:
            raise ConfigError(f"length_weight (LOSS.LENGTH_WEIGHT) must be >= 0, got {length_weight}")
        if not end_weight > 0.0:
            raise ConfigError(f"end_weight (LOSS.END_WEIGHT) must be > 0 (1.0 = as any other label), "
                              f"got {end_weight}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing (LOSS.LABEL_SMOOTHING) must lie in [0, 1), got {label_smoothing}")
        self.mbart_dir = Path(mbart_dir)
        self._codebook_sizes = tuple(int(n) for n in codebook_sizes)
        self.hand_weight = float(hand_weight)
        self.head_weights = tuple(float(w) for w in head_weights)
        self.max_text_tokens = int(max_text_tokens)
        self.max_motion_tokens = int(max_motion_tokens)
        self.frames_per_code = int(frames_per_code)
        self.length_weight = float(length_weight)
        self.end_weight = float(end_weight)
        self.label_smoothing = float(label_smoothing)

        self.tokenizer, self.mbart = load_mbart(self.mbart_dir, src_lang)
        positions = self.mbart.config.max_position_embeddings
        if self.max_motion_tokens + 1 > positions:
            raise ConfigError(f"max_motion_tokens (LM.MAX_MOTION_TOKENS) = {max_motion_tokens} does not fit "
                              f"the {positions} decoder positions of {self.mbart_dir}")
        if src_lang not in self.tokenizer.get_vocab():
            raise ConfigError(f"src_lang (LM.SRC_LANG) {src_lang!r} is not a language code of the tokenizer "
                              f"in {self.mbart_dir}; mBART-cc25 uses ar_AR for Arabic")

        base_rows = self.mbart.get_input_embeddings().num_embeddings
        self.register_buffer("vocab_lookup", self._read_vocab_lookup(base_rows), persistent=False)
        special_ids = [self.tokenizer.pad_token_id, self.tokenizer.eos_token_id,
                       self.tokenizer.convert_tokens_to_ids(src_lang)]
        self.pad_row, self.eos_row, self.src_lang_row = self.vocab_lookup[special_ids].tolist()

        self.tgt_lang_row = base_rows  # the ar_SSL token that starts every target (SPEC 4); it has no text form
        first = base_rows + 1
        for part, size in zip(PARTS, self._codebook_sizes, strict=True):
            token_ids = torch.arange(first, first + size + EXTRA_TOKENS)
            self.register_buffer(f"{part}_token_ids", token_ids, persistent=False)
            # The rows of the shared output projection this part's head reads: its tokens, then </s>.
            self.register_buffer(f"{part}_head_rows", torch.cat([token_ids, torch.tensor([self.eos_row])]),
                                 persistent=False)
            first += size + EXTRA_TOKENS
        self.mbart.resize_token_embeddings(first, mean_resizing=False)
        self._init_new_rows(base_rows)
        # Where </s> sits in each head's window, and so its label.
        self.register_buffer("eos_labels", torch.tensor([n + EXTRA_TOKENS for n in self._codebook_sizes]),
                             persistent=False)
        # The body head's class weights: 1 for every code, end_weight for </s> (its last entry).
        body_weights = torch.ones(self._codebook_sizes[0] + EXTRA_TOKENS + 1)
        body_weights[-1] = self.end_weight
        self.register_buffer("body_class_weights", body_weights, persistent=False)
        self.length_head = self._make_length_head(self.mbart.config.d_model)

    def _make_length_head(self, d_model: int) -> nn.Sequential:
        """Pooled encoder state (B, D) -> log steps (B, 1). Untrained (length_weight 0) it is frozen, so DDP
        does not wait for its gradients."""
        # A forked random state: adding the head leaves every other initial weight and dropout draw as it was,
        # so a run without it repeats one from before the head existed.
        with torch.random.fork_rng(devices=[]):
            head = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, 1))
        with torch.no_grad():  # start in the middle of the allowed range rather than at 1 step
            head[-1].bias.fill_(math.log(max(self.max_motion_tokens / 2, 1.0)))
        return head.requires_grad_(self.length_weight > 0)

    @property
    def codebook_sizes(self) -> tuple[int, int, int]:
        return self._codebook_sizes

    @property
    def max_frames(self) -> int:
        """The most frames one generated sequence can decode to: max_motion_tokens steps x frames_per_code."""
        return self.max_motion_tokens * self.frames_per_code

    @property
    def device(self) -> torch.device:
        return self.vocab_lookup.device

    @property
    def part_token_ids(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embedding rows of the body, lhand and rhand motion tokens, each (codebook size + 3,)."""
        return self.body_token_ids, self.lhand_token_ids, self.rhand_token_ids

    def _read_vocab_lookup(self, rows: int) -> torch.Tensor:
        """Tokenizer id -> embedding row, (len(tokenizer),); dropped tokens go to the <unk> row."""
        path = self.mbart_dir / VOCAB_MAP_FILE
        tokenizer_size = len(self.tokenizer)
        if not path.is_file():
            if tokenizer_size > rows:
                raise ConfigError(f"the tokenizer in {self.mbart_dir} has {tokenizer_size} ids but the model "
                                  f"only {rows} rows, and there is no {VOCAB_MAP_FILE}: {SETUP_HINT}")
            return torch.arange(tokenizer_size)
        try:
            vocab_map = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read {path} ({err}); re-run scripts/prepare_mbart.py") from err
        well_formed = (
            vocab_map.ndim == 1 and np.issubdtype(vocab_map.dtype, np.integer)
            and len(vocab_map) >= tokenizer_size and vocab_map.min() >= -1 and vocab_map.max() < rows
        )
        if not well_formed:
            raise ConfigError(f"{path} must be a 1-D integer array of {tokenizer_size} entries in "
                              f"-1..{rows - 1} (got shape {vocab_map.shape}, dtype {vocab_map.dtype}); "
                              "re-run scripts/prepare_mbart.py")
        vocab_map = torch.from_numpy(vocab_map.astype(np.int64))
        needed = {"<unk>": self.tokenizer.unk_token_id, "<pad>": self.tokenizer.pad_token_id,
                  "</s>": self.tokenizer.eos_token_id, "source language": self.tokenizer.cur_lang_code}
        dropped = [name for name, token_id in needed.items() if vocab_map[token_id] < 0]
        if dropped:
            raise ConfigError(f"{path} drops {', '.join(dropped)}; re-run scripts/prepare_mbart.py")
        return torch.where(vocab_map >= 0, vocab_map, vocab_map[self.tokenizer.unk_token_id])

    @torch.no_grad()
    def _init_new_rows(self, first_new_row: int) -> None:
        # Draw new rows with the per-dimension mean and spread of the pretrained ones, so they start on the
        # same scale. (transformers' mean_resizing needs a full-rank covariance; tiny vocabularies have none.)
        weights = {id(w): w for w in (self.mbart.get_input_embeddings().weight, self.mbart.lm_head.weight)}
        for weight in weights.values():  # (V, D); one tensor when input and output embeddings are tied
            old = weight[:first_new_row]
            new = weight[first_new_row:]
            new.copy_(old.mean(0) + old.std(0) * torch.randn_like(new))

    def code_rows(self, codes: torch.Tensor) -> torch.Tensor:
        """Embedding rows (K, 3) of codes (K, 3) = [body, lhand, rhand] in codebook index space."""
        return torch.stack([ids[codes[:, p]] for p, ids in enumerate(self.part_token_ids)], dim=1)

    def _checked_codes(self, codes: torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
        codes = torch.as_tensor(codes, device=self.device)
        if codes.ndim != 2 or codes.shape[1] != 3 or codes.is_floating_point():
            raise DataError(f"{what}: codes must be integers of shape (N, 3), got {tuple(codes.shape)} "
                            f"{codes.dtype}")
        codes = codes.long()
        too_big = codes >= torch.tensor(self._codebook_sizes, device=self.device)
        if (codes < 0).any() or too_big.any():
            raise DataError(f"{what}: codes outside the codebook sizes {self._codebook_sizes}; they must "
                            "come from the tokenizer this generator is configured for")
        return codes

    def encode_sources(
        self, texts: Sequence[str], keywords: Sequence[Keywords | None] | None = None
    ) -> list[torch.Tensor]:
        """Source rows per sample, each (S_i,), unpadded, on the generator's device.

        Per sample (keyword_layout "after_text", SOKE's): the text's tokens, then for each keyword its word's
        tokens followed by its code triplets <motion_id_b><hand_id_l><rhand_id_r>, then </s> and the source
        language code. "inline": each keyword's triplets right after the tokens of the text word it was found
        in, and no second copy of the word (see _inline_pieces). The result depends only on the texts and
        keywords, so a dataset can encode it once (mGPT.models.datamodule) and hand it to
        forward(..., sources=) at every step instead.
        """
        keywords = [list(k or []) for k in keywords] if keywords is not None else [[] for _ in texts]
        if len(keywords) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(keywords)} keyword lists")
        words = [word for sample in keywords for word, _ in sample]
        # inline: each text is tokenised word by word, so a keyword's codes can follow its word's tokens
        units = [str(t).split() if self.keyword_layout == "inline" else [t] for t in texts]
        token_ids = self.tokenizer([u for sample in units for u in sample] + words,
                                   add_special_tokens=False)["input_ids"]
        flat_ids = torch.tensor(list(chain.from_iterable(token_ids)), dtype=torch.long, device=self.device)
        rows = iter(self.vocab_lookup[flat_ids].split([len(ids) for ids in token_ids]))
        unit_rows = [[next(rows) for _ in sample] for sample in units]
        word_rows = rows  # what is left: the keywords' words, in order

        suffix = torch.tensor([self.eos_row, self.src_lang_row], device=self.device)
        positions = self.mbart.config.max_position_embeddings
        sources = []
        for i, text in enumerate(texts):
            sample_rows = self._truncated_text(i, text, unit_rows[i])
            codes = [self.code_rows(self._checked_codes(c, f"keyword {w!r} of sample {i}")).flatten()
                     for w, c in keywords[i]]  # (3 K_j,) each
            sample_words = [next(word_rows) for _ in keywords[i]]
            if self.keyword_layout == "inline":
                pieces = self._inline_pieces(units[i][: len(sample_rows)], sample_rows, keywords[i], codes,
                                             sample_words)
            else:
                pieces = [*sample_rows, *chain.from_iterable(zip(sample_words, codes, strict=True))]
            sources.append(torch.cat([*pieces, suffix]))
            if len(sources[-1]) > positions:
                raise ConfigError(f"sample {i} ({text[:40]!r}) has a source of {len(sources[-1])} tokens, more "
                                  f"than the {positions} positions of mBART: lower LM.MAX_TEXT_TOKENS, "
                                  "LM.MAX_KEYWORDS or LM.MAX_TRIPLETS")
        return sources

    def _truncated_text(self, i: int, text: str, rows: list[torch.Tensor]) -> list[torch.Tensor]:
        """A text's token rows (one tensor per word, or one for the whole text), cut to max_text_tokens
        with a warning; words past the cut are left out."""
        total = sum(len(r) for r in rows)
        if total <= self.max_text_tokens:
            return rows
        warnings.warn(f"sample {i} ({text[:40]!r}) has {total} text tokens, more than "
                      f"max_text_tokens={self.max_text_tokens}; keeping the first {self.max_text_tokens}",
                      stacklevel=4)
        kept, left = [], self.max_text_tokens
        for r in rows:
            if left <= 0:
                break
            kept.append(r[:left])
            left -= len(kept[-1])
        return kept

    @staticmethod
    def _inline_pieces(text_words: list[str], text_rows: list[torch.Tensor], keywords: Keywords,
                       codes: list[torch.Tensor], keyword_rows: list[torch.Tensor]) -> list[torch.Tensor]:
        """The inline source before </s>: each text word's tokens, then the codes of the keyword found in it;
        keywords no (kept) text word refers to follow the text with their word, as after_text places them."""
        at = keyword_positions(text_words, [word for word, _ in keywords])
        after_word = {j: k for k, j in enumerate(at) if j is not None}
        pieces = []
        for j, rows in enumerate(text_rows):
            pieces.append(rows)
            if j in after_word:
                pieces.append(codes[after_word[j]])
        for k, j in enumerate(at):
            if j is None:
                pieces += [keyword_rows[k], codes[k]]
        return pieces

    def pad_sources(self, sources: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample source rows (S_i,) -> rows and attention mask, both (B, S), right-padded, on the device."""
        sources = [s.to(self.device) for s in sources]
        lengths = torch.tensor([len(s) for s in sources], device=self.device)
        source_rows = pad_sequence(sources, batch_first=True, padding_value=self.pad_row)  # (B, S)
        source_mask = torch.arange(source_rows.shape[1], device=self.device) < lengths[:, None]  # (B, S)
        return source_rows, source_mask.long()

    def encode_source(
        self, texts: Sequence[str], keywords: Sequence[Keywords | None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Source rows and attention mask, both (B, S), right-padded (see encode_sources)."""
        return self.pad_sources(self.encode_sources(texts, keywords))

    def embed_steps(self, step_rows: torch.Tensor) -> torch.Tensor:
        """Fused decoder input embeddings (..., D) of step token rows (..., 3) = [body, lhand, rhand]."""
        a = self.hand_weight
        embeddings = self.mbart.get_input_embeddings()(step_rows)  # (..., 3, D), sqrt(D) scale included
        mix = embeddings.new_tensor([1.0 - 2.0 * a, a, a])
        return torch.einsum("...pd,p->...d", embeddings, mix)

    def head_projections(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per head (body, lhand, rhand): weight (V_p, D) and bias (V_p,) cut from the shared projection.

        V_p = codebook size + 4; entry c scores code c, the last entry scores </s>.
        """
        rows = (self.body_head_rows, self.lhand_head_rows, self.rhand_head_rows)
        return [(self.mbart.lm_head.weight[r], self.mbart.final_logits_bias[0, r]) for r in rows]

    def _log_steps(self, encoder_states: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        """The length head's log(steps) (B,) from encoder states (B, S, D) and the source mask (B, S)."""
        mask = source_mask[..., None].to(encoder_states.dtype)  # (B, S, 1)
        pooled = (encoder_states * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, D): padding left out
        return self.length_head(pooled).squeeze(-1).float()  # (B,)

    def _predicted_steps(self, encoder_states: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        """Predicted steps (B,), in [1, max_motion_tokens]: a longer estimate means nothing more than the cap."""
        log_steps = self._log_steps(encoder_states, source_mask).clamp(max=math.log(self.max_motion_tokens))
        return log_steps.exp().clamp(min=1.0)

    @torch.no_grad()
    def predict_steps(self, texts: Sequence[str], keywords: Sequence[Keywords | None] | None = None
                      ) -> torch.Tensor:
        """The length head's estimate of each text's number of steps (B,), in [1, max_motion_tokens]."""
        source_rows, source_mask = self.encode_source(texts, keywords)
        states = self.mbart.model.encoder(input_ids=source_rows, attention_mask=source_mask).last_hidden_state
        return self._predicted_steps(states, source_mask)

    def _decoder_targets(self, codes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder input rows (B, T+1, 3) = [ar_SSL, codes...] and labels (B, T+1, 3) = [codes..., </s>]."""
        start = torch.full((1, 3), self.tgt_lang_row, device=self.device)
        inputs, labels = [], []
        for i, sample_codes in enumerate(codes):
            sample_codes = self._checked_codes(sample_codes, f"sample {i}")
            inputs.append(torch.cat([start, self.code_rows(sample_codes)]))
            labels.append(torch.cat([sample_codes, self.eos_labels[None]]))
        step_rows = pad_sequence(inputs, batch_first=True, padding_value=self.pad_row)
        return step_rows, pad_sequence(labels, batch_first=True, padding_value=IGNORE_INDEX)

    def forward(
        self,
        texts: Sequence[str],
        codes: Sequence[torch.Tensor],
        keywords: Sequence[Keywords | None] | None = None,
        sources: Sequence[torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced losses and token accuracies.

        loss_<part> is each head's cross-entropy over non-padding labels; loss is their sum weighted by
        head_weights, plus length_weight x loss_length (the length head's mean squared error of log steps;
        with length_error, its mean relative error), the one number both training and validation report.
        With length_weight 0 the head is not trained and neither key is there. sources:
        encode_sources(texts, keywords), computed beforehand; then texts and keywords are not tokenised again.
        """
        if len(codes) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(codes)} code sequences")
        if sources is None:
            sources = self.encode_sources(texts, keywords)
        elif len(sources) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(sources)} encoded sources")
        source_rows, source_mask = self.pad_sources(sources)
        step_rows, labels = self._decoder_targets(codes)
        outputs = self.mbart.model(
            input_ids=source_rows,
            attention_mask=source_mask,
            decoder_inputs_embeds=self.embed_steps(step_rows),
            use_cache=False,
        )
        hidden = outputs.last_hidden_state  # (B, T+1, D)

        out = {}
        loss = hidden.new_zeros(())
        for p, (part, projection) in enumerate(zip(PARTS, self.head_projections(), strict=True)):
            logits = F.linear(hidden, *projection)  # (B, T+1, V_p)
            part_labels = labels[..., p]  # (B, T+1)
            part_loss = self._cross_entropy(p, logits.flatten(0, 1), part_labels.flatten())
            real = part_labels != IGNORE_INDEX
            out[f"loss_{part}"] = part_loss
            out[f"acc_{part}"] = (logits.argmax(-1) == part_labels)[real].float().mean().detach()
            loss = loss + self.head_weights[p] * part_loss
        if self.length_weight > 0:  # adding 0 x a loss would still change nothing but the graph; leave it out
            steps = torch.tensor([len(c) for c in codes], device=self.device, dtype=torch.float32)  # (B,)
            log_steps = self._log_steps(outputs.encoder_last_hidden_state, source_mask)  # (B,)
            out["loss_length"] = F.mse_loss(log_steps, steps.clamp(min=1.0).log())
            out["length_error"] = (log_steps.detach().exp() / steps.clamp(min=1.0) - 1.0).abs().mean()
            loss = loss + self.length_weight * out["loss_length"]
        out["loss"] = loss
        return out

    def _cross_entropy(self, part: int, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Head `part`'s cross-entropy of logits (M, V_p) against labels (M,), padding ignored; the body head
        weighs </s> by end_weight. Plain (no weight argument) at end_weight 1, so the loss is bit for bit the
        unweighted one."""
        weight = self.body_class_weights if part == 0 and self.end_weight != 1.0 else None
        return F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE_INDEX,
                               label_smoothing=self.label_smoothing)

    def _allowed(self, part: int, eos: bool) -> torch.Tensor:
        """Which entries (V_p,) of head `part` may be generated: real codes, and </s> if `eos`."""
        size = self._codebook_sizes[part]
        allowed = torch.zeros(size + EXTRA_TOKENS + 1, dtype=torch.bool, device=self.device)
        allowed[:size] = True
        allowed[-1] = eos
        return allowed

    @staticmethod
    def _choose(logits: torch.Tensor, do_sample: bool, temperature: float, top_k: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """One index per row of logits (B, V), greedy or sampled (from `generator`, else torch's global one)."""
        if not do_sample:
            return logits.argmax(-1)
        logits = logits / temperature
        if 0 < top_k < logits.shape[-1]:
            kth_best = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
            logits = logits.masked_fill(logits < kth_best, float("-inf"))
        return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)

    @torch.no_grad()
    def generate(
        self,
        texts: Sequence[str],
        keywords: Sequence[Keywords | None] | None = None,
        max_steps: int | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        use_cache: bool = True,
        min_steps: int = 0,
        generator: torch.Generator | None = None,
        length_bound: float | None = None,
        length_steer: float | None = 0.0,
    ) -> list[torch.Tensor]:
        """Codes (N_i, 3) per text, in codebook index space: decode(...).codes (the arguments are decode's)."""
        return self.decode(texts, keywords, max_steps, do_sample, temperature, top_k, use_cache, min_steps,
                           generator, length_bound, length_steer).codes

    def start_decoding(self, texts: Sequence[str], keywords: Sequence[Keywords | None] | None,
                       max_steps: int | None, length_bound: float) -> tuple[torch.Tensor, ...]:
        """What every decoding starts from: encoder states (B, S, D), the source mask (B, S), the length head's
        predicted steps (B,) and each sample's step limit (B,), max_steps (default max_motion_tokens) or
        ceil(length_bound x predicted) where lower (length_bound 0: off; checked_length_options first)."""
        max_steps = self.max_motion_tokens if max_steps is None else int(max_steps)
        if max_steps + 1 > self.mbart.config.max_position_embeddings:
            raise ConfigError(f"max_steps={max_steps} does not fit the decoder's "
                              f"{self.mbart.config.max_position_embeddings} positions")
        source_rows, source_mask = self.encode_source(texts, keywords)
        encoder_states = self.mbart.model.encoder(
            input_ids=source_rows, attention_mask=source_mask
        ).last_hidden_state  # (B, S, D)
        predicted = self._predicted_steps(encoder_states, source_mask)  # (B,)
        allowed_steps = torch.full((len(texts),), max_steps, device=self.device)  # (B,)
        if length_bound:
            allowed_steps = torch.minimum(allowed_steps, torch.ceil(length_bound * predicted).long())
        return encoder_states, source_mask, predicted, allowed_steps

    @torch.no_grad()
    def decode(
        self,
        texts: Sequence[str],
        keywords: Sequence[Keywords | None] | None = None,
        max_steps: int | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        use_cache: bool = True,
        min_steps: int = 0,
        generator: torch.Generator | None = None,
        length_bound: float | None = None,
        length_steer: float | None = 0.0,
    ) -> Decoded:
        """Codes (N_i, 3) per text, N_i <= max_steps (default max_motion_tokens), with each sample's limits.

        All three heads advance together, one decoder pass per step. A sample ends when its body head emits
        </s> (never before `min_steps`) and leaves the batch. use_cache=False recomputes the whole prefix
        every step, SOKE-style, for comparison. Sampling draws from `generator` when given (a seeded one
        repeats a result without touching torch's global state, which other requests share). Dropout applies
        in training mode: call .eval() first.

        With the length head's estimate L (LM.LENGTH_BOUND, LM.LENGTH_STEER): `length_bound` b > 0 lets a
        sample decode at most ceil(b x L) steps; `length_steer` s > 0 adds s x (t - L) / L to the end logit at
        every step t past L (nothing before), so a sample that runs on grows likelier to end. Both act on the
        logits and limits of the step loop, the same for the cached and the recomputing decoder.
        """
        if not texts:
            return Decoded.empty()
        length_bound, length_steer = checked_length_options(length_bound, length_steer)
        if do_sample and temperature <= 0:
            raise ConfigError(f"temperature (TEST.TEMPERATURE) must be > 0 for sampling, got {temperature}")
        encoder_states, source_mask, predicted, allowed_steps = self.start_decoding(texts, keywords, max_steps,
                                                                                    length_bound)
        batch = len(texts)
        steps = int(allowed_steps.max())
        codes = torch.zeros(batch, steps, 3, dtype=torch.long, device=self.device)
        lengths = allowed_steps.clone()  # a sample that never emits </s> uses every step it may
        at_cap = torch.ones(batch, dtype=torch.bool, device=self.device)
        running = torch.arange(batch, device=self.device)  # sample index of every row still decoding
        cache = None
        if use_cache:
            config = self.mbart.config
            cache = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
        step_embeds = self.embed_steps(torch.full((batch, 1, 3), self.tgt_lang_row, device=self.device))
        prefix = step_embeds  # (B, t+1, D), only kept for full recomputation
        body_allowed = {eos: self._allowed(0, eos) for eos in (False, True)}
        hand_allowed = [self._allowed(p, eos=False) for p in (1, 2)]
        projections = self.head_projections()

        for step in range(steps):
            hidden = self.mbart.model.decoder(
                inputs_embeds=step_embeds if use_cache else prefix,
                encoder_hidden_states=encoder_states,
                encoder_attention_mask=source_mask,
                cache=cache,
                use_cache=use_cache,
            ).last_hidden_state[:, -1]  # (B_run, D)
            logits = [F.linear(hidden, *projection) for projection in projections]  # (B_run, V_p) each
            if length_steer and step >= min_steps:
                logits[0][:, -1] += self._end_bonus(step, predicted[running], length_steer)
            allowed = [body_allowed[step >= min_steps], *hand_allowed]
            choices = torch.stack([
                self._choose(logits[p].masked_fill(~allowed[p], float("-inf")), do_sample, temperature, top_k,
                             generator)
                for p in range(3)
            ], dim=1)  # (B_run, 3)
            codes[running, step] = choices
            ended = choices[:, 0] == self.eos_labels[0]  # (B_run,)
            lengths[running[ended]] = step
            at_cap[running[ended]] = False
            done = ended | (step + 1 >= allowed_steps[running])  # ended, or used its last allowed step
            if done.all():
                break
            if done.any():
                keep = (~done).nonzero().squeeze(1)
                running, choices = running[keep], choices[keep]
                encoder_states, source_mask = encoder_states[keep], source_mask[keep]
                if use_cache:
                    cache.batch_select_indices(keep)
                else:
                    prefix = prefix[keep]
            step_embeds = self.embed_steps(self.code_rows(choices))[:, None]  # (B_run, 1, D)
            if not use_cache:
                prefix = torch.cat([prefix, step_embeds], dim=1)
        return Decoded([codes[i, : lengths[i]] for i in range(batch)], at_cap, allowed_steps, predicted)

    @staticmethod
    def _end_bonus(step: int, predicted: torch.Tensor, strength: float) -> torch.Tensor:
        """strength x the relative overshoot (t - L) / L of step t past the predicted steps L (B,); 0 before L."""
        return strength * (step - predicted).clamp(min=0.0) / predicted
