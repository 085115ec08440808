"""Decoding speed on CPU: the key/value-cached generator against SOKE's full-recompute loop.

    python bench/bench_generate.py [--quick] [--steps 100] [--batches 1 16] [--threads N]

Builds two random-weight mBARTs in a temporary folder and loads each into a SignGenerator:
  tiny   d_model 256, 3 + 3 layers, 4 heads, ffn 512 (the demo config)
  large  d_model 1024, 12 + 12 layers, 16 heads, ffn 4096 (mBART-large-cc25's shape, small vocabulary:
         only the heads' rows of the output projection are ever scored)
Each batch is decoded twice from the same model and inputs: with the cache (samples leave the batch on
their own </s>) and with the whole prefix recomputed at every step, as SOKE does. </s> is masked for
--steps steps so both run exactly --steps steps. A token is one decoding step of one sample (one body, one
left-hand and one right-hand code). The last line is speedup=<cached / recomputed tokens/s> of the large
config at the largest batch.
"""

import argparse
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from mGPT.archs.amg import SignGenerator
from mGPT.archs.tiny_mbart import make_tiny_mbart

ARABIC_LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"


@dataclass(frozen=True)
class ModelShape:
    name: str
    d_model: int
    layers: int
    heads: int
    ffn_dim: int


TINY = ModelShape("tiny", 256, 3, 4, 512)
LARGE = ModelShape("large", 1024, 12, 16, 4096)
QUICK_LARGE = ModelShape("large-quick", 512, 6, 8, 2048)


def synthetic_sentences(count: int, seed: int = 0) -> list[str]:
    """Sentences of random Arabic-letter words: enough distinct text for a few thousand pieces."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(ARABIC_LETTERS, k=rng.randint(2, 7))) for _ in range(3 * count)]
    return [" ".join(rng.choices(words, k=rng.randint(4, 14))) for _ in range(count)]


def time_generate(generator: SignGenerator, texts: list[str], steps: int, use_cache: bool):
    """(tokens per second, seconds, codes) of one forced-length decoding run."""
    start = time.perf_counter()
    codes = generator.generate(texts, max_steps=steps, min_steps=steps, use_cache=use_cache)
    seconds = time.perf_counter() - start
    return sum(len(c) for c in codes) / seconds, seconds, codes


def bench_shape(shape: ModelShape, work_dir: Path, sentences: list[str], batches: list[int], steps: int,
                progress: tqdm) -> list[dict]:
    """Print one line per batch size; return them as dicts (batch, tokens/s and seconds of each side)."""
    progress.set_description(f"building {shape.name}")
    folder = make_tiny_mbart(sentences, work_dir / shape.name, d_model=shape.d_model, layers=shape.layers,
                             vocab_size=3000, attention_heads=shape.heads, ffn_dim=shape.ffn_dim)
    generator = SignGenerator(folder).eval()
    vocab = len(generator.tokenizer)
    generator.generate(sentences[:1], max_steps=2)  # first-call costs (allocator, kernels) out of the timing

    rows = []
    for batch in batches:
        texts = sentences[:batch]
        progress.set_description(f"{shape.name} batch {batch}: cached")
        cached_rate, cached_s, cached = time_generate(generator, texts, steps, use_cache=True)
        progress.set_description(f"{shape.name} batch {batch}: recompute")
        full_rate, full_s, full = time_generate(generator, texts, steps, use_cache=False)
        progress.update()
        speedup = cached_rate / full_rate
        same = all(torch.equal(a, b) for a, b in zip(cached, full, strict=True))
        tqdm.write(
            f"{shape.name:<11} d_model {shape.d_model:<4} layers {shape.layers:<2} vocab {vocab:<5} "
            f"batch {batch:<3} steps {steps}: cached {cached_rate:8.1f} tokens/s ({cached_s:6.2f} s)  "
            f"recompute {full_rate:8.1f} tokens/s ({full_s:6.2f} s)  speedup {speedup:5.2f}x  "
            f"same tokens: {'yes' if same else 'no'}"
        )
        rows.append({"model": shape.name, "batch": batch, "steps": steps, "cached_tokens_per_s": cached_rate,
                     "cached_s": cached_s, "recompute_tokens_per_s": full_rate, "recompute_s": full_s,
                     "speedup": speedup, "same_tokens": same})
    del generator
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help="20 steps, batches 1 and 4, a half-size 'large' model (a minute or so)")
    parser.add_argument("--steps", type=int, default=None, help="decoding steps (default 100)")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="batch sizes (default 1 16)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    steps = args.steps or (20 if args.quick else 100)
    batches = sorted(args.batches or ([1, 4] if args.quick else [1, 16]))
    shapes = [TINY, QUICK_LARGE if args.quick else LARGE]
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sentences = synthetic_sentences(2000)
    print(f"CPU threads: {torch.get_num_threads()}; steps: {steps}; batches: {batches}")

    with tempfile.TemporaryDirectory() as work_dir, tqdm(total=len(shapes) * len(batches)) as progress:
        rows = [bench_shape(shape, Path(work_dir), sentences, batches, steps, progress) for shape in shapes]
    print(f"speedup={rows[-1][-1]['speedup']:.2f}")


if __name__ == "__main__":
    main()
