"""Run the demo chain on any data root and print the quality table of issue 12.

    python scripts/quality_check.py --data-root data/sample_b [--seed N] [--work DIR]
        [--tokenizer-cfg configs/demo/deto.yaml] [--generator-cfg configs/demo/soke.yaml]
        [--set KEY=VALUE ...] [--set1 KEY=VALUE ...] [--set2 KEY=VALUE ...]

The steps are scripts/demo.py's, each printed before it runs: packed cache, tokenizer (train, test),
its mean-pose baseline, motion codes, tiny offline mBART, sign dictionary, generator (train, test with
saved predictions), its mean-pose and nearest-neighbour baselines. Everything is written under --work
(default results/quality_check/<data root name>_seed<N>): the cache, experiments/qc_deto and qc_soke,
results/, the tiny mBART. The data root is only read, so the demo's experiments and cache stay as they
are. Re-running into the same --work resumes training from last.ckpt, as the demo does.

The table (printed, and written to <work>/quality_table.md and quality_table.json):
- tokenizer MPJPE and PA-MPJPE per part, mm over all test frames: ours / mean pose (ratio);
- generator DTW-MPJPE and DTW-MPJPE-PA per part, accumulated (m) and per DTW step (mm): ours / nearest
  neighbour / mean pose (ratio); the ratio is always mean pose / ours, "how many times under standing still";
- length, generated / reference frames per test clip: mean, 95th percentile, and the share of clips that
  ran to the generation cap (LM.MAX_MOTION_TOKENS steps). From the generator's test_summary.json `length`
  entry where test.py writes one, else from the saved predictions.

--seed sets SEED of every training run (default: the configs' SEED). The tiny mBART stands for the
pretrained model, so it keeps make demo's weights (seed 0) whatever the seed. --set adds an override to
every stage command, --set1 to the tokenizer's only, --set2 to the generator's only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from mGPT.config import evaluation_dir, exp_dir, load_config
from mGPT.data.isharah import load_untrusted_pickle, split_csv_path
from mGPT.errors import DataError, run_cli
from mGPT.files import atomic_write_text
from mGPT.layout import PARTS
from mGPT.metrics.length import SUMMARY_KEYS as LENGTH_KEYS
from mGPT.metrics.length import length_summary

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_NAME = "qc_deto"
GENERATOR_NAME = "qc_soke"
TOKENIZER_METRICS = {"MPJPE": "MPJPE", "PA_MPJPE": "PA-MPJPE"}
GENERATOR_METRICS = {"DTW_MPJPE": "DTW-MPJPE", "DTW_MPJPE_PA": "DTW-MPJPE-PA"}
# table key -> (test_summary.json key, baselines.json key suffix, unit)
GENERATOR_UNITS = {"generator_m": ("means_m", "", "m"),
                   "generator_mm_per_step": ("means_mm_per_step", "_mm", "mm per step")}


# ---------------------------------------------------------------- the table, from the summaries alone


def _value(summary: dict, what: str, *keys: str) -> float:
    node: object = summary
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            raise DataError(f"{what} has no {'.'.join(keys)}; re-run the step that writes it")
        node = node[key]
    return float(node)


def _ratio(mean_pose: float, ours: float) -> float:
    return mean_pose / ours if ours else math.inf


def quality_table(tokenizer: dict, tokenizer_baselines: dict, generator: dict, generator_baselines: dict,
                  predicted_length: dict | None = None) -> dict:
    """Issue 12's table from what the chain writes, as dicts: the tokenizer's and the generator's
    test_summary.json (test.py) and baselines.json (scripts/baselines.py). `predicted_length` (length_summary
    of the saved predictions) is used only where the generator's summary has no `length` entry.

    Returns {"kinematics_backend", "tokenizer_mm": {metric: {part: cell}}, "generator_m" and
    "generator_mm_per_step": {metric: {part: cell}}, "length": {LENGTH_KEYS}, "length_source"}; a tokenizer
    cell is {"ours", "mean_pose", "ratio"}, a generator cell adds "nearest_neighbour"; ratio = mean_pose / ours.
    """
    inputs = {"the tokenizer's test_summary.json": tokenizer, "the tokenizer's baselines.json": tokenizer_baselines,
              "the generator's test_summary.json": generator, "the generator's baselines.json": generator_baselines}
    backends = {what: summary.get("kinematics_backend") for what, summary in inputs.items()}
    if len(set(backends.values())) != 1:  # joints of two backends differ: their errors cannot be compared
        raise DataError(f"the scores come from different kinematics backends: {backends}")
    table: dict = {"kinematics_backend": next(iter(backends.values())), "tokenizer_mm": {}}
    for metric in TOKENIZER_METRICS:
        table["tokenizer_mm"][metric] = {}
        for part in PARTS:
            ours = _value(tokenizer, "the tokenizer's test_summary.json", "means_mm", f"{metric}_{part}")
            mean = _value(tokenizer_baselines, "the tokenizer's baselines.json", "mean_pose", f"{metric}_{part}")
            table["tokenizer_mm"][metric][part] = {"ours": ours, "mean_pose": mean, "ratio": _ratio(mean, ours)}
    for unit, (summary_key, suffix, _) in GENERATOR_UNITS.items():
        table[unit] = {}
        for metric in GENERATOR_METRICS:
            table[unit][metric] = {}
            for part in PARTS:
                key = f"{metric}_{part}"
                ours = _value(generator, "the generator's test_summary.json", summary_key, key)
                neighbour = _value(generator_baselines, "the generator's baselines.json", "nearest_neighbour",
                                   key + suffix)
                mean = _value(generator_baselines, "the generator's baselines.json", "mean_pose", key + suffix)
                table[unit][metric][part] = {"ours": ours, "nearest_neighbour": neighbour, "mean_pose": mean,
                                             "ratio": _ratio(mean, ours)}
    length, source = generator.get("length"), "test_summary.json"
    if length is None:
        if predicted_length is None:
            raise DataError("the generator's test_summary.json has no length entry and no lengths of saved "
                            "predictions were given (test.py ... TEST.SAVE_PREDICTIONS=true writes them)")
        length, source = predicted_length, "saved predictions"
    table["length"] = {key: _value(length, f"the length entry of the {source}", key) for key in LENGTH_KEYS}
    table["length"]["cap_steps"] = int(table["length"]["cap_steps"])
    table["length_source"] = source
    return table


def _number(value: float) -> str:
    """Three significant digits, as issue 12 writes them (110.4, 34.7, 5.97, 0.296)."""
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"


def table_markdown(table: dict) -> str:
    """The table as markdown: one row per metric, cells "ours / [nearest neighbour /] mean pose (ratio x)"."""
    lines = [f"Kinematics backend: {table['kinematics_backend']}. The ratio is mean pose / ours.", "",
             "| | body | lhand | rhand |", "|---|---|---|---|"]
    for metric, name in TOKENIZER_METRICS.items():
        cells = [table["tokenizer_mm"][metric][part] for part in PARTS]
        lines.append(f"| tokenizer {name} (mm), ours / mean pose | " + " | ".join(
            f"{_number(c['ours'])} / {_number(c['mean_pose'])} ({c['ratio']:.1f}x)" for c in cells) + " |")
    for unit, (_, _, unit_name) in GENERATOR_UNITS.items():
        for metric, name in GENERATOR_METRICS.items():
            cells = [table[unit][metric][part] for part in PARTS]
            lines.append(f"| generator {name} ({unit_name}), ours / nearest neighbour / mean pose | " + " | ".join(
                f"{_number(c['ours'])} / {_number(c['nearest_neighbour'])} / {_number(c['mean_pose'])} "
                f"({c['ratio']:.1f}x)" for c in cells) + " |")
    length = table["length"]
    lines += ["", "| length, generated / reference frames | mean | p95 | at the cap |", "|---|---|---|---|",
              f"| ours ({table['length_source']}; cap {length['cap_steps']} steps) | {length['ratio_mean']:.2f} | "
              f"{length['ratio_p95']:.2f} | {length['at_cap_share']:.1%} |"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- reading what the chain wrote


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise DataError(f"{path} not found: the step that writes {what} did not run or failed")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); re-run the step that writes {what}") from err


def lengths_from_predictions(folder: Path, cap_steps: int) -> dict[str, float]:
    """length_summary of the <SENTENCE_NAME>.pkl files test.py saved (TEST.SAVE_PREDICTIONS=true), one per clip
    of test_scores.json; the reference is the clip after the length rules, as the metric saw it. A clip is at
    the cap where its pickle says so (`at_cap`), else (older pickles) where it has `cap_steps` codes."""
    names = read_json(folder / "test_scores.json", "the per-sample scores")
    if not names:
        raise DataError(f"{folder / 'test_scores.json'} lists no clips: test the generator on a split that has some")
    generated, reference, at_cap = [], [], []
    for name in names:
        path = folder / f"{name}.pkl"
        if not path.is_file():
            raise DataError(f"{path} not found: test the generator with TEST.SAVE_PREDICTIONS=true")
        record = load_untrusted_pickle(path, "prediction pickles")
        try:
            generated.append(len(record["generated"]["smplx_root_pose"]))
            reference.append(len(record["reference"]["smplx_root_pose"]))
            at_cap.append(bool(record["at_cap"]) if "at_cap" in record else len(record["codes"]) >= cap_steps)
        except (KeyError, TypeError) as err:
            raise DataError(f"{path}: not a prediction of test.py (missing {err})") from err
    return length_summary(generated, reference, at_cap, cap_steps)


# ---------------------------------------------------------------- the chain


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, type=Path, help="Isharah-layout folder (train/ val/ test/ "
                        "dictionary/)")
    parser.add_argument("--seed", type=int, default=None, help="SEED of every training run (default: the configs')")
    parser.add_argument("--work", type=Path, default=None,
                        help="output folder (default results/quality_check/<data root name>_seed<N>)")
    parser.add_argument("--tokenizer-cfg", type=Path, default=REPO / "configs" / "demo" / "deto.yaml")
    parser.add_argument("--generator-cfg", type=Path, default=REPO / "configs" / "demo" / "soke.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, every stage")
    parser.add_argument("--set1", action="append", default=[], metavar="KEY=VALUE", help="override, tokenizer")
    parser.add_argument("--set2", action="append", default=[], metavar="KEY=VALUE", help="override, generator")
    parser.add_argument("--mbart-d-model", type=int, default=256, help="tiny mBART width (make demo's: 256)")
    parser.add_argument("--mbart-layers", type=int, default=3, help="tiny mBART layers (make demo's: 3)")
    return parser.parse_args(argv)


class Chain:
    """The commands of scripts/demo.py with every output redirected under one work folder."""

    def __init__(self, args: argparse.Namespace):
        self.root = args.data_root.resolve()
        if not split_csv_path(self.root, "train").is_file():
            raise DataError(f"{split_csv_path(self.root, 'train')} not found: --data-root must be an Isharah-layout "
                            "folder (python -m mGPT.data.synthetic --style b --out DIR makes one)")
        self.tokenizer_cfg, self.generator_cfg = args.tokenizer_cfg.resolve(), args.generator_cfg.resolve()
        self.seed = args.seed if args.seed is not None else int(load_config(self.tokenizer_cfg).SEED)
        work = args.work or Path("results") / "quality_check" / f"{self.root.name}_seed{self.seed}"
        self.work = work.resolve()
        self.cache, self.mbart = self.work / "cache", self.work / "mbart-tiny"
        self.mbart_size = ["--d-model", str(args.mbart_d_model), "--layers", str(args.mbart_layers)]
        common = [f"DATASET.DATA_ROOT={self.root}", f"DATASET.CACHE_DIR={self.cache}",
                  f"FOLDER_EXP={self.work / 'experiments'}", f"FOLDER_RESULTS={self.work / 'results'}",
                  f"SEED={self.seed}", *args.set]
        self.stage1 = [f"NAME={TOKENIZER_NAME}", *common, *args.set1]
        # stage 2 needs the trained tokenizer's checkpoint, known once it is trained (run)
        self.stage2_without_tokenizer = [f"NAME={GENERATOR_NAME}", *common, f"LM.MBART_PATH={self.mbart}"]
        self.set2 = args.set2
        self.seconds: dict[str, float] = {}
        # the commands import this checkout's mGPT, whatever is installed
        paths = [str(REPO), os.environ.get("PYTHONPATH")]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}

    def step(self, title: str, args: list, skip_if: Path | None = None) -> None:
        command = [sys.executable, *(str(arg) for arg in args)]
        print(f"\n=== {title}\n$ {' '.join(command)}", flush=True)
        if skip_if is not None and skip_if.exists():
            print(f"(skipped: {skip_if} exists)")
            return
        start = time.time()
        subprocess.run(command, check=True, env=self.env)
        self.seconds[title] = round(time.time() - start, 1)

    def run(self) -> dict:
        """Every step; returns the table (with the run's settings and timings under "run")."""
        from mGPT.models.checkpoints import trained_checkpoint

        tokenizer_cfg, generator_cfg = self.tokenizer_cfg, self.generator_cfg
        cfg1 = load_config(tokenizer_cfg, self.stage1)
        self.step("packed cache", ["-m", "mGPT.data.prepare", "--cfg", tokenizer_cfg, "--data-root", self.root,
                                   "--out", self.cache])
        self.step("train the tokenizer", [REPO / "train.py", "--cfg", tokenizer_cfg, *self.stage1])
        self.step("test the tokenizer", [REPO / "test.py", "--cfg", tokenizer_cfg, *self.stage1])
        self.step("tokenizer baseline: mean pose", [REPO / "scripts" / "baselines.py", "--cfg", tokenizer_cfg,
                                                    *self.stage1])
        tokenizer = trained_checkpoint(cfg1)  # best.ckpt, else last.ckpt where validation never ran
        stage2 = [*self.stage2_without_tokenizer, f"TRAIN.PRETRAINED_VAE={tokenizer}", *self.set2]
        cfg2 = load_config(generator_cfg, stage2)
        self.step("motion codes", [REPO / "scripts" / "get_motion_code.py", "--cfg", generator_cfg, *stage2])
        self.step("tiny offline mBART", [REPO / "scripts" / "make_tiny_mbart.py", "--corpus", self.root, "--out",
                                         self.mbart, *self.mbart_size], skip_if=self.mbart / "config.json")
        self.step("sign dictionary", [REPO / "scripts" / "build_dictionary.py", "--tokenizer", tokenizer,
                                      "--data-root", self.root, "--cache", self.cache,
                                      "--min-frames", cfg2.DATASET.MIN_FRAMES, "--max-frames", cfg2.DATASET.MAX_FRAMES])
        self.step("train the generator", [REPO / "train.py", "--cfg", generator_cfg, *stage2])
        self.step("test the generator", [REPO / "test.py", "--cfg", generator_cfg, *stage2,
                                         "TEST.SAVE_PREDICTIONS=true"])
        self.step("generator baselines: mean pose, nearest neighbour",
                  [REPO / "scripts" / "baselines.py", "--cfg", generator_cfg, *stage2])

        stage1_out, stage2_out = evaluation_dir(cfg1), evaluation_dir(cfg2)
        generator = read_json(stage2_out / "test_summary.json", "the generator's test summary")
        predicted = None if "length" in generator else lengths_from_predictions(stage2_out, cfg2.LM.MAX_MOTION_TOKENS)
        table = quality_table(read_json(stage1_out / "test_summary.json", "the tokenizer's test summary"),
                              read_json(stage1_out / "baselines.json", "the tokenizer's baselines"),
                              generator, read_json(stage2_out / "baselines.json", "the generator's baselines"),
                              predicted)
        table["run"] = {"data_root": str(self.root), "seed": self.seed, "work": str(self.work),
                        "tokenizer_cfg": str(tokenizer_cfg), "generator_cfg": str(generator_cfg),
                        "tokenizer_overrides": self.stage1, "generator_overrides": stage2,
                        "tokenizer_experiment": str(exp_dir(cfg1)),
                        "generator_experiment": str(exp_dir(cfg2)), "seconds": self.seconds}
        return table


def main(argv: list[str] | None = None) -> None:
    chain = Chain(parse_args(argv))
    start = time.time()
    table = chain.run()
    table["run"]["total_seconds"] = round(time.time() - start, 1)
    markdown = table_markdown(table)
    atomic_write_text(chain.work / "quality_table.md", markdown)
    atomic_write_text(chain.work / "quality_table.json", json.dumps(table, indent=1, ensure_ascii=False))
    print(f"\n=== quality on {chain.root} (seed {chain.seed}), {table['run']['total_seconds']:.0f} s\n")
    print(markdown)
    print(f"written to {chain.work / 'quality_table.md'} and quality_table.json")


if __name__ == "__main__":
    try:
        sys.exit(run_cli(main))
    except subprocess.CalledProcessError as err:
        print(f"quality check step failed (exit code {err.returncode}): {' '.join(err.cmd)}", file=sys.stderr)
        sys.exit(err.returncode)
