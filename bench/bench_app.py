"""Latency of the web page's requests: Arabic text in, video out, through the app's HTTP API.

    python bench/bench_app.py [--cfg configs/demo/soke.yaml OVERRIDES...] [--requests 10] [--threads 1]

Starts `python -m mGPT.app` on 127.0.0.1 with the given generator (default: the `make demo` one) and
sends --requests requests one after another from gradio_client, greedy with retrieval, cycling through
the test split's sentences. A request's latency is from the call to the moment its video and files are
downloaded. Without a trained model (no `make demo` yet) --train-briefly trains demo-size models on the
small sample first, for a minute or two, with bench/run_all.py's quick chain: their outputs are as long
as an untrained generator makes them, so compare per-frame numbers.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.app_server, the server helper the app's tests use

from tests.app_server import AppServer  # noqa: E402

GENERATOR_CFG = "configs/demo/soke.yaml"


def brief_models(work: Path, threads: int) -> list[str]:
    """Demo-size tokenizer and generator trained briefly on the small sample; the generator's overrides."""
    import bench_data
    import run_all

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONIOENCODING": "utf-8"}
    data = bench_data.make_sample(work, small=True)
    _, stage2 = run_all.train_chain(run_all.QUICK, data, work, env)
    return stage2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default=GENERATOR_CFG)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--train-briefly", action="store_true", help="train demo-size models first (minutes)")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides for the app")
    args = parser.parse_args()
    from gradio_client import Client

    from mGPT.app import example_sentences
    from mGPT.config import load_config

    with tempfile.TemporaryDirectory(prefix="sasoke_bench_app_") as tmp:
        overrides = [*brief_models(Path(tmp), args.threads), *args.overrides] if args.train_briefly \
            else args.overrides
        start = time.perf_counter()
        with AppServer(["--cfg", args.cfg, *overrides], threads=args.threads) as server:
            print(f"server up in {time.perf_counter() - start:.1f} s (model loaded once)")
            client = Client(server.url, verbose=False)
            sentences = example_sentences(load_config(args.cfg, overrides))[0]
            client.predict(sentences[0], api_name="/sign")  # first-call costs out of the timing
            latencies, frames = [], []
            for i in range(args.requests):
                text = sentences[i % len(sentences)]
                began = time.perf_counter()
                _, params_file, _, _, summary = client.predict(text, api_name="/sign")
                latencies.append(time.perf_counter() - began)
                with open(params_file, "rb") as f:
                    frames.append(len(pickle.load(f)["smplx_root_pose"]))
                print(f"  {latencies[-1]:.2f} s  {summary}")
            peak = server.peak_rss_mb()
    per_frame = [1000 * s / n for s, n in zip(latencies, frames, strict=True)]
    print(f"requests={args.requests} latency_median_s={statistics.median(latencies):.2f} "
          f"min_s={min(latencies):.2f} max_s={max(latencies):.2f} frames_median={statistics.median(frames):.0f} "
          f"ms_per_frame_median={statistics.median(per_frame):.0f} server_peak_mib={peak:.0f} "
          f"threads={args.threads}")


if __name__ == "__main__":
    main()
