"""Stage 2 training throughput on CPU: a training step as it was before issue 16, against the step now.

    python bench/bench_training.py [--quick] [--steps 3] [--batch 4] [--threads 1]

Builds a random mBART of mBART-large-cc25's shape (12 + 12 layers, d_model 1024, 16 heads, ffn 4096;
a small vocabulary: only the motion heads' rows are scored) and a synthetic stage 2 split of --items
samples: sentences of 4-14 random Arabic-letter words; motion codes whose length grows with the sentence
(words x U(3, 7) steps, within SOKE's 10..100); keywords from a random sign dictionary holding a fifth of
the words (6-24 codes each), up to LM.MAX_KEYWORDS = 3 per sentence, LM.MAX_TRIPLETS = 10 triplets each.

  before  random batches (RandomSampler); per item a dictionary lookup, per batch the tokenizer (both in
          the step); AdamW's default per-tensor update
  after   batches of similar length (BucketBatchSampler over EpochRandomSampler, as SignDataModule
          trains); sources and keywords encoded once for the split (SignGenerator.encode_sources, as
          CodeTextDataset does); the fused AdamW kernel (mGPT.models.schedule)

Both attend with PyTorch's scaled-dot-product attention: transformers 5 picks it for mBART by itself and
load_mbart now names it, so it is not part of the difference; the check below compares it with the eager
attention. The steps alternate before / after, so that load on a shared machine hits both alike; each
side's first step (allocations, optimizer state) is not timed. A token is a real, non-padding source or
decoder position; padding share = padded positions / all positions. Before timing, one batch goes through
both data paths (losses must be equal) and through eager attention (equal to 1e-5).

With one torch thread (the default) the process's CPU time is the time the work takes when it has a core
to itself; on a shared machine wall time mostly measures waiting, so the speedup is taken over CPU time
(wall-clock tokens/s and their ratio are printed too). The last line is
speedup=<after tokens/s / before tokens/s>.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bench_generate
import numpy as np
import torch
from torch.utils.data import BatchSampler, RandomSampler
from tqdm import tqdm

from mGPT.archs.amg import SignGenerator
from mGPT.archs.tiny_mbart import make_tiny_mbart
from mGPT.data.arabic import tokenize_words
from mGPT.data.buckets import BucketBatchSampler, EpochRandomSampler
from mGPT.data.dictionary import SignDictionary
from mGPT.models.datamodule import collate_text_codes

SEED = 0
CODEBOOK_SIZES = (96, 192, 192)  # SOKE's VQ sizes (body, lhand, rhand)
MAX_KEYWORDS, MAX_TRIPLETS = 3, 10  # configs/default.yaml LM.MAX_KEYWORDS, LM.MAX_TRIPLETS
EPOCH_BATCH = 32  # TRAIN.BATCH_SIZE of configs/soke.yaml, for the padding share of a whole epoch


def synthetic_split(count: int, seed: int = SEED) -> tuple[list[dict], SignDictionary]:
    """Items (text, codes (N, 3)) and the sign dictionary their keywords come from."""
    rng = np.random.default_rng(seed)
    texts = bench_generate.synthetic_sentences(count, seed)
    words = sorted({w for text in texts for w in tokenize_words(text)})
    chosen = rng.choice(len(words), size=len(words) // 5, replace=False)
    dictionary = SignDictionary({words[w]: codes(rng, int(rng.integers(6, 25))) for w in chosen})
    items = []
    for index, text in enumerate(texts):
        steps = int(np.clip(round(len(text.split()) * rng.uniform(3, 7)), 10, 100))
        items.append({"index": index, "name": f"clip{index}", "text": text,
                      "codes": torch.from_numpy(codes(rng, steps))})
    return items, dictionary


def codes(rng: np.random.Generator, steps: int) -> np.ndarray:
    return np.stack([rng.integers(0, n, steps) for n in CODEBOOK_SIZES], axis=1)  # (steps, 3)


def before_batch(items: list[dict], dictionary: SignDictionary) -> dict:
    """The old per-step data path: keywords looked up per item; the generator tokenises the batch."""
    for item in items:
        item["keywords"] = dictionary.keywords_for(item["text"], MAX_KEYWORDS, MAX_TRIPLETS)
    return collate_text_codes(items)


def positions(batch: dict, generator: SignGenerator) -> tuple[int, int]:
    """(real tokens, padded positions) of a batch: sources plus decoder steps (codes + </s>)."""
    sources = batch.get("sources") or generator.encode_sources(batch["texts"], batch["keywords"])
    source_lengths = [len(s) for s in sources]
    step_lengths = [len(c) + 1 for c in batch["codes"]]
    real = sum(source_lengths) + sum(step_lengths)
    return real, len(sources) * (max(source_lengths) + max(step_lengths))


def padding_share(batches: list[list[int]], lengths: np.ndarray) -> float:
    """Over index batches and (N, 2) [steps, source] lengths: padded share of all positions."""
    padded = sum(len(b) * lengths[b].max(axis=0).sum() for b in batches)
    return 1.0 - sum(lengths[b].sum() for b in batches) / padded


def check_losses(generator: SignGenerator, items: list[dict], dictionary: SignDictionary) -> dict:
    """One batch through both data paths and through eager attention; the largest differences."""
    generator.eval()
    with torch.no_grad():
        batch = before_batch([dict(item) for item in items], dictionary)
        old = generator(batch["texts"], batch["codes"], batch["keywords"])
        new = generator(batch["texts"], batch["codes"], sources=[item["source"] for item in items])
        generator.mbart.set_attn_implementation("eager")
        eager = generator(batch["texts"], batch["codes"], sources=[item["source"] for item in items])
        generator.mbart.set_attn_implementation("sdpa")
    generator.train()
    paths = max(abs(float(old[k] - new[k])) for k in old)
    attention = max(abs(float(eager[k] - new[k])) for k in old)
    if paths != 0.0 or attention > 1e-5:
        raise AssertionError(f"losses differ: data paths by {paths:.3e}, eager vs sdpa by {attention:.3e}")
    return {"paths": paths, "attention": attention, "loss": float(new["loss"])}


def shared_moments(optimizer: torch.optim.Optimizer, like: torch.optim.Optimizer) -> None:
    """Point `optimizer`'s AdamW moments at `like`'s: their values do not change what a step costs, and a
    second copy would take 4 bytes x 2 x every parameter (2.9 GB for mBART-large) more."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = like.state[p]
            step = torch.zeros((), dtype=torch.float32, device=p.device)  # the fused kernel's step counter
            optimizer.state[p] = {"step": step, "exp_avg": state["exp_avg"], "exp_avg_sq": state["exp_avg_sq"]}


class Side:
    """One way of training: where its batches come from, how they are prepared, and its optimizer."""

    def __init__(self, name: str, batches: list[list[int]], prepare, optimizer: torch.optim.Optimizer):
        self.name, self.batches, self.prepare, self.optimizer = name, iter(batches), prepare, optimizer
        self.tokens = self.padded = 0
        self.seconds = {"data": 0.0, "forward + backward": 0.0, "optimizer": 0.0}  # wall clock
        self.cpu_phases = dict.fromkeys(self.seconds, 0.0)
        self.cpu_seconds = 0.0

    def step(self, generator: SignGenerator, timed: bool) -> None:
        clocks = [(time.perf_counter(), time.process_time())]
        batch = self.prepare(next(self.batches))
        clocks.append((time.perf_counter(), time.process_time()))
        out = generator(batch["texts"], batch["codes"], batch["keywords"], sources=batch.get("sources"))
        out["loss"].backward()
        clocks.append((time.perf_counter(), time.process_time()))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        clocks.append((time.perf_counter(), time.process_time()))
        if timed:
            real, padded = positions(batch, generator)
            self.tokens += real
            self.padded += padded
            for key, (start, end) in zip(self.seconds, zip(clocks, clocks[1:], strict=False), strict=True):
                self.seconds[key] += end[0] - start[0]
                self.cpu_phases[key] += end[1] - start[1]
            self.cpu_seconds += clocks[-1][1] - clocks[0][1]

    @property
    def tokens_per_s(self) -> float:
        """Per second of wall clock."""
        return self.tokens / sum(self.seconds.values())

    @property
    def tokens_per_cpu_s(self) -> float:
        """Per second of this process's CPU time: the steady number on a shared machine."""
        return self.tokens / self.cpu_seconds


def measure(shape: bench_generate.ModelShape = bench_generate.LARGE, steps: int = 3, batch_size: int = 4,
            items: int = 512, work_dir: Path | None = None) -> dict:
    """Train `steps` timed steps (plus one warm-up) on each side, alternating; tokens/s and padding of each."""
    torch.manual_seed(SEED)
    split, dictionary = synthetic_split(items)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_tiny_mbart([item["text"] for item in split], Path(work_dir or tmp) / shape.name,
                                 d_model=shape.d_model, layers=shape.layers, vocab_size=3000,
                                 attention_heads=shape.heads, ffn_dim=shape.ffn_dim)
        generator = SignGenerator(folder, codebook_sizes=CODEBOOK_SIZES).train()

    encoded = [dict(item) for item in split]  # the after side's split: keywords and sources encoded once
    keywords = [dictionary.keywords_for(item["text"], MAX_KEYWORDS, MAX_TRIPLETS) for item in encoded]
    sources = generator.encode_sources([item["text"] for item in encoded], keywords)
    for item, item_keywords, source in zip(encoded, keywords, sources, strict=True):
        item["keywords"], item["source"] = item_keywords, source
    lengths = np.array([[len(item["codes"]) + 1, len(item["source"])] for item in encoded])  # (N, 2)

    def random_batches(size: int) -> list[list[int]]:
        return list(BatchSampler(RandomSampler(range(items), generator=torch.Generator().manual_seed(SEED)),
                                 size, drop_last=False))

    def bucketed_batches(size: int) -> list[list[int]]:
        return list(BucketBatchSampler(EpochRandomSampler(range(items), SEED), lengths, size))

    checks = check_losses(generator, encoded[:batch_size], dictionary)
    before_optimizer = torch.optim.AdamW(generator.parameters(), lr=1e-5)
    after_optimizer = torch.optim.AdamW(generator.parameters(), lr=1e-5, fused=True)
    before = Side("before", random_batches(batch_size),
                  lambda b: before_batch([dict(split[i]) for i in b], dictionary), before_optimizer)
    after = Side("after", bucketed_batches(batch_size), lambda b: collate_text_codes([encoded[i] for i in b]),
                 after_optimizer)
    for step in tqdm(range(steps + 1), desc=f"{shape.name} training steps (before, after)"):
        before.step(generator, timed=step > 0)
        if step == 0:
            shared_moments(after_optimizer, before_optimizer)
        after.step(generator, timed=step > 0)
    return {
        "model": shape, "steps": steps, "batch_size": batch_size, "items": items, "checks": checks,
        "sides": {side.name: side for side in (before, after)},
        "epoch_padding": {"before": padding_share(random_batches(EPOCH_BATCH), lengths),
                          "after": padding_share(bucketed_batches(EPOCH_BATCH), lengths)},
        "speedup": after.tokens_per_cpu_s / before.tokens_per_cpu_s,
        "wall_speedup": after.tokens_per_s / before.tokens_per_s,
    }


def report(result: dict) -> None:
    shape = result["model"]
    print(f"model: {shape.name} mBART, d_model {shape.d_model}, {shape.layers}+{shape.layers} layers, "
          f"{shape.heads} heads, ffn {shape.ffn_dim}; batch {result['batch_size']}, {result['steps']} timed steps "
          f"per side; torch threads {torch.get_num_threads()}")
    checks = result["checks"]
    print(f"same batch, loss {checks['loss']:.4f}: old vs new data path differ by {checks['paths']:.1e}, "
          f"eager vs sdpa attention by {checks['attention']:.1e}")
    for name, side in result["sides"].items():
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in side.cpu_phases.items())
        print(f"{name:>6}: {side.tokens_per_cpu_s:7.1f} tokens per cpu second, {side.tokens_per_s:7.1f} tokens/s wall "
              f"({side.tokens} tokens in {sum(side.seconds.values()):.1f} s wall, {side.cpu_seconds:.1f} s cpu: "
              f"{parts}), padding {1 - side.tokens / side.padded:.1%} of positions")
    epoch = result["epoch_padding"]
    print(f"padding over one epoch of {result['items']} samples at batch {EPOCH_BATCH}: before {epoch['before']:.1%}, "
          f"after {epoch['after']:.1%}")
    print(f"wall-clock speedup {result['wall_speedup']:.2f}")
    print(f"speedup={result['speedup']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the half-size model (d_model 512, 6+6 layers)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side (default 3)")
    parser.add_argument("--batch", type=int, default=4, help="batch size of the timed steps (default 4)")
    parser.add_argument("--items", type=int, default=512, help="samples in the synthetic split (default 512)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = bench_generate.QUICK_LARGE if args.quick else bench_generate.LARGE
    report(measure(shape, args.steps, args.batch, args.items))


if __name__ == "__main__":
    main()
