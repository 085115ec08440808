"""scripts/quality_check.py: issue 12's table from hand-made summaries, the length ratios from saved
predictions, and (slow) the whole chain on the small style-b sample at toy size."""

from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from mGPT.errors import DataError

PARTS = ("body", "lhand", "rhand")
# the numbers of issue 12's table (tokenizer mm; generator accumulated m), and made-up per-step ones
TOKENIZER = {"MPJPE": (34.7, 25.0, 24.2), "PA_MPJPE": (23.4, 1.03, 0.96)}
TOKENIZER_MEAN = {"MPJPE": (110.4, 76.7, 77.4), "PA_MPJPE": (68.1, 7.34, 7.06)}
GENERATOR = {"DTW_MPJPE": (5.97, 3.53, 3.59), "DTW_MPJPE_PA": (3.54, 0.296, 0.276)}
NEIGHBOUR = {"DTW_MPJPE": (5.09, 3.27, 3.11), "DTW_MPJPE_PA": (3.19, 0.339, 0.301)}
MEAN_POSE = {"DTW_MPJPE": (9.76, 6.78, 6.84), "DTW_MPJPE_PA": (6.02, 0.649, 0.624)}
PER_STEP = 1000 / 135  # mm per step = m / path length (135 steps) * 1000
LENGTH = {"ratio_mean": 1.29, "ratio_p95": 3.3, "at_cap_share": 1 / 30, "cap_steps": 100}


def by_part(values: dict[str, tuple], scale: float = 1.0, suffix: str = "") -> dict[str, float]:
    return {f"{metric}_{part}{suffix}": value * scale
            for metric, row in values.items() for part, value in zip(PARTS, row, strict=True)}


def summaries(length: dict | None = LENGTH, backend: str = "skeleton") -> tuple[dict, dict, dict, dict]:
    """What test.py and scripts/baselines.py write for each stage, as far as the table reads them."""
    tokenizer = {"stage": "vae", "means_mm": by_part(TOKENIZER), "samples": 30, "kinematics_backend": "skeleton"}
    tokenizer_baselines = {"mean_pose": by_part(TOKENIZER_MEAN), "kinematics_backend": "skeleton"}
    generator = {"stage": "lm", "means_m": by_part(GENERATOR), "means_mm_per_step": by_part(GENERATOR, PER_STEP),
                 "samples": 30, "kinematics_backend": backend}
    if length is not None:
        generator["length"] = length
    generator_baselines = {
        name: {**by_part(values), **by_part(values, PER_STEP, "_mm")}
        for name, values in (("mean_pose", MEAN_POSE), ("nearest_neighbour", NEIGHBOUR))}
    generator_baselines["kinematics_backend"] = "skeleton"
    return tokenizer, tokenizer_baselines, generator, generator_baselines


@pytest.fixture
def quality(load_script):
    return load_script("quality_check")


def test_the_table_from_hand_made_summaries(quality) -> None:
    table = quality.quality_table(*summaries())
    assert table["kinematics_backend"] == "skeleton" and table["length_source"] == "test_summary.json"
    body = table["tokenizer_mm"]["MPJPE"]["body"]
    assert body == {"ours": 34.7, "mean_pose": 110.4, "ratio": pytest.approx(110.4 / 34.7)}
    cell = table["generator_m"]["DTW_MPJPE_PA"]["lhand"]
    assert cell == {"ours": 0.296, "nearest_neighbour": 0.339, "mean_pose": 0.649,
                    "ratio": pytest.approx(0.649 / 0.296)}
    step = table["generator_mm_per_step"]["DTW_MPJPE"]["body"]
    assert step["ours"] == pytest.approx(5.97 * PER_STEP)
    assert step["nearest_neighbour"] == pytest.approx(5.09 * PER_STEP)
    assert table["length"] == LENGTH

    markdown = quality.table_markdown(table)
    assert "| tokenizer MPJPE (mm), ours / mean pose | 34.7 / 110.4 (3.2x) | 25 / 76.7 (3.1x) | 24.2 / 77.4 (3.2x) |" \
        in markdown
    assert "| generator DTW-MPJPE (m), ours / nearest neighbour / mean pose | 5.97 / 5.09 / 9.76 (1.6x) |" in markdown
    assert "0.296 / 0.339 / 0.649 (2.2x)" in markdown
    assert "| ours (test_summary.json; cap 100 steps) | 1.29 | 3.30 | 3.3% |" in markdown
    assert json.loads(json.dumps(table)) == table  # plain JSON


def test_lengths_come_from_the_predictions_only_without_a_summary_entry(quality) -> None:
    predicted = {"ratio_mean": 0.9, "ratio_p95": 1.2, "at_cap_share": 0.0, "cap_steps": 8}
    assert quality.quality_table(*summaries(), predicted_length=predicted)["length"] == LENGTH
    table = quality.quality_table(*summaries(length=None), predicted_length=predicted)
    assert table["length"] == predicted and table["length_source"] == "saved predictions"
    with pytest.raises(DataError, match="no length entry.*TEST.SAVE_PREDICTIONS=true"):
        quality.quality_table(*summaries(length=None))


def test_missing_numbers_and_mixed_backends_are_named(quality) -> None:
    tokenizer, tokenizer_baselines, generator, generator_baselines = summaries()
    del generator_baselines["nearest_neighbour"]["DTW_MPJPE_rhand"]
    with pytest.raises(DataError, match="the generator's baselines.json has no nearest_neighbour.DTW_MPJPE_rhand"):
        quality.quality_table(tokenizer, tokenizer_baselines, generator, generator_baselines)
    with pytest.raises(DataError, match="different kinematics backends"):
        quality.quality_table(*summaries(backend="smplx"))
    with pytest.raises(DataError, match="length entry of the test_summary.json has no cap_steps"):
        quality.quality_table(*summaries(length={"ratio_mean": 1.0, "ratio_p95": 1.0, "at_cap_share": 0.0}))


def prediction(generated_frames: int, reference_frames: int, at_cap: bool | None = None) -> dict:
    """A test.py prediction pickle, as far as the lengths go (older ones have no at_cap)."""
    params = {"smplx_root_pose": np.zeros((generated_frames, 3), np.float32)}
    record = {"text": "نص", "codes": np.zeros((generated_frames // 4, 3), np.int64), "generated": params,
              "reference": {"smplx_root_pose": np.zeros((reference_frames, 3), np.float32)}, "scores": {}}
    return record if at_cap is None else {**record, "at_cap": at_cap}


def test_lengths_from_saved_predictions(quality, tmp_path: Path) -> None:
    clips = {"S01_0001_00001": (400, 80), "S02_0002_00002": (48, 64), "S03_0003_00003": (40, 40, True)}
    (tmp_path / "test_scores.json").write_text(json.dumps({name: {} for name in clips}), encoding="utf-8")
    for name, lengths in clips.items():
        with open(tmp_path / f"{name}.pkl", "wb") as handle:
            pickle.dump(prediction(*lengths), handle)
    (tmp_path / "stray.pkl").write_bytes(b"not one of the test clips: never read")
    stats = quality.lengths_from_predictions(tmp_path, cap_steps=100)  # 100 codes, or the pickle's own at_cap
    assert stats["ratio_mean"] == pytest.approx((5.0 + 0.75 + 1.0) / 3)
    assert stats["at_cap_share"] == pytest.approx(2 / 3)
    (tmp_path / "S02_0002_00002.pkl").unlink()
    with pytest.raises(DataError, match="S02_0002_00002.pkl not found: test the generator with TEST.SAVE_PREDICTIONS"):
        quality.lengths_from_predictions(tmp_path, cap_steps=100)
    (tmp_path / "test_scores.json").write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match="test_scores.json lists no clips"):
        quality.lengths_from_predictions(tmp_path, cap_steps=100)


# ---------------------------------------------------------------- the whole chain, at toy size

TOY = [*(f"VQ.{part}.{key}=32" for part in ("BODY", "LHAND", "RHAND") for key in ("WIDTH", "CODE_DIM")),
       "TRAIN.MAX_EPOCHS=1", "TRAIN.BATCH_SIZE=8", "TEST.BATCH_SIZE=8", "TRAIN.LOG_EVERY_N_STEPS=1"]
NUMBER = re.compile(r"[-+]?(?:inf|nan|\d+(?:\.\d*)?(?:e[-+]?\d+)?)", re.IGNORECASE)


def leaves(node: object) -> list:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in leaves(value)]
    return [node]


@pytest.mark.slow
def test_quality_check_runs_the_chain_on_style_b(run_command, tmp_path: Path) -> None:
    """Ten commands at toy size (1 epoch each, width 32, a one-layer mBART, 8 generation steps): 2 min 28 s
    measured on 2 cores shared with a training run; the timeout leaves room for a busier machine."""
    data, work = tmp_path / "sample_b", tmp_path / "quality"
    run_command(["-m", "mGPT.data.synthetic", "--style", "b", "--small", "--out", data])
    toy = [option for override in TOY for option in ("--set", override)]
    result = run_command([REPO / "scripts" / "quality_check.py", "--data-root", data, "--work", work, "--seed", "7",
                          "--mbart-d-model", "32", "--mbart-layers", "1", *toy, "--set2", "LM.MAX_MOTION_TOKENS=8"],
                         timeout=1500)
    markdown = (work / "quality_table.md").read_text(encoding="utf-8")
    assert markdown in result.stdout

    table = json.loads((work / "quality_table.json").read_text(encoding="utf-8"))
    numbers = leaves({key: table[key] for key in ("tokenizer_mm", "generator_m", "generator_mm_per_step", "length")})
    assert len(numbers) == 2 * 3 * 3 + 2 * 2 * 3 * 4 + 4
    assert all(isinstance(x, int | float) and math.isfinite(x) for x in numbers), numbers
    assert all(x > 0 for x in leaves(table["tokenizer_mm"]) + leaves(table["generator_m"]))
    assert table["length"]["cap_steps"] == 8 and 0 < table["length"]["ratio_mean"] <= 1  # 32 frames < 40
    assert table["run"]["seed"] == 7 and table["kinematics_backend"] == "skeleton"

    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    metric_rows = [row for row in rows if row.startswith(("| tokenizer", "| generator"))]
    assert len(metric_rows) == 6
    for row in [*metric_rows, *(row for row in rows if row.startswith("| ours"))]:
        cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
        assert len(cells) == 3, row
        for cell in cells:
            values = [float(x) for x in NUMBER.findall(cell)]
            assert values and all(math.isfinite(v) for v in values), (row, cell)

    # its own folders: the data root is only read, the runs live under --work
    assert sorted(path.name for path in data.iterdir()) == ["SYNTHETIC.json", "dictionary", "test", "train", "val"]
    for name in ("qc_deto", "qc_soke"):
        assert (work / "experiments" / name / "checkpoints" / "last.ckpt").is_file()
        assert (work / "results" / name / "test_rank_0" / "test_summary.json").is_file()
