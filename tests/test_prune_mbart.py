import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from transformers import MBartForConditionalGeneration, MBartTokenizer

from mGPT.archs.prune_mbart import REPORT_FILE, VOCAB_MAP_FILE, collect_sentences, prune_mbart
from mGPT.archs.tiny_mbart import make_tiny_mbart
from mGPT.data.arabic import normalize_arabic
from mGPT.data.dictionary import SignDictionary
from mGPT.data.isharah import CSV_COLUMNS
from mGPT.errors import CheckpointError, ConfigError, DataError, run_cli

CORPUS = [
    "ذهب الولد إلى المدرسة صباحا",
    "أين المستشفى القريب من هنا؟",
    "أنا أحب القراءة كثيرا في المساء",
    "الطقس جميل اليوم والسماء صافية",
    "هل تريد أن تأكل الغداء معنا؟",
    "كتب الطالب الدرس بالقلم الأزرق",
    "سافرت العائلة إلى جدة بالسيارة",
    "يشرب الرجل القهوة العربية مع التمر",
]
KEPT_SENTENCES = ["ذهب الولد إلى المدرسة", "أين المستشفى؟"]
KEPT_WORDS = ["قهوة"]


@pytest.fixture(scope="module")
def tiny_full_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random mBART standing in for mBART-large-cc25; its tokenizer is trained on CORPUS."""
    out = tmp_path_factory.mktemp("mbart") / "full"
    return make_tiny_mbart(CORPUS, out, d_model=32, layers=1, vocab_size=150, attention_heads=2, ffn_dim=32)


@pytest.fixture(scope="module", params=["tied", "untied"])
def folders(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_full_dir: Path
) -> tuple[Path, Path, dict]:
    """(full model folder, pruned model folder, report): the tiny mBART pruned to two sentences and a word."""
    root = tmp_path_factory.mktemp(f"mbart_{request.param}")
    full_dir = Path(shutil.copytree(tiny_full_dir, root / "full"))
    # Random output bias (and, untied, separate input and output matrices) so slicing them is checked.
    model = MBartForConditionalGeneration.from_pretrained(full_dir)
    torch.manual_seed(1)
    model.final_logits_bias = nn.Buffer(torch.randn_like(model.final_logits_bias))
    if request.param == "untied":
        model.config.tie_word_embeddings = False
        for module in (model.model.encoder.embed_tokens, model.model.decoder.embed_tokens, model.lm_head):
            module.weight = nn.Parameter(torch.randn_like(module.weight))
    model.save_pretrained(full_dir)
    report = prune_mbart(full_dir, root / "pruned", KEPT_SENTENCES, extra_words=KEPT_WORDS)
    return full_dir, root / "pruned", report


def expected_kept_ids(tokenizer: MBartTokenizer) -> np.ndarray:
    texts = [*KEPT_SENTENCES, *KEPT_WORDS]
    texts += [normalize_arabic(text) for text in texts]
    ids = {i for ids in tokenizer(texts)["input_ids"] for i in ids}
    ids |= {0, 1, 2, 3}  # <s> <pad> </s> <unk>
    ids |= set(tokenizer.convert_tokens_to_ids(["ar_AR", "en_XX", "zh_CN", "<mask>"]))
    return np.array(sorted(ids))


def test_vocab_map_and_report(folders: tuple[Path, Path, dict]) -> None:
    full_dir, pruned_dir, report = folders
    tokenizer = MBartTokenizer.from_pretrained(full_dir, src_lang="ar_AR")
    lang_and_mask = tokenizer.convert_tokens_to_ids(["ar_AR", "zh_CN", "<mask>"])
    vocab_map = np.load(pruned_dir / VOCAB_MAP_FILE)

    assert vocab_map.dtype == np.int64 and vocab_map.shape == (len(tokenizer),)
    kept = np.flatnonzero(vocab_map >= 0)
    np.testing.assert_array_equal(vocab_map[kept], np.arange(len(kept)))  # original order kept
    assert set(expected_kept_ids(tokenizer)) <= set(kept)
    assert all(vocab_map[i] >= 0 for i in [*range(4), *lang_and_mask])
    unseen_sentence_ids = tokenizer(CORPUS[-1])["input_ids"]
    assert (vocab_map[unseen_sentence_ids] == -1).any()
    assert report["total"] == len(tokenizer)
    assert report["kept"] == len(kept) < report["total"]
    assert report["sentences"] == 2 and report["words"] == 1

    pruned = MBartForConditionalGeneration.from_pretrained(pruned_dir)
    assert pruned.config.vocab_size == len(kept)
    assert pruned.get_input_embeddings().weight.shape[0] == len(kept)
    assert pruned.final_logits_bias.shape == (1, len(kept))
    assert pruned.config.pad_token_id == 1 and pruned.config.eos_token_id == 2


def test_pruned_folder_keeps_the_original_tokenizer(folders: tuple[Path, Path, dict]) -> None:
    full_dir, pruned_dir, _ = folders
    full_tokenizer = MBartTokenizer.from_pretrained(full_dir, src_lang="ar_AR")
    pruned_tokenizer = MBartTokenizer.from_pretrained(pruned_dir, src_lang="ar_AR")
    assert len(pruned_tokenizer) == len(full_tokenizer)
    for text in [*CORPUS, "نص لم يره النموذج"]:
        assert pruned_tokenizer(text)["input_ids"] == full_tokenizer(text)["input_ids"]
    assert (pruned_dir / "sentencepiece.bpe.model").read_bytes() == (full_dir / "sentencepiece.bpe.model").read_bytes()


@torch.no_grad()
def test_pruned_model_matches_full_model_on_kept_tokens(folders: tuple[Path, Path, dict]) -> None:
    full_dir, pruned_dir, _ = folders
    tokenizer = MBartTokenizer.from_pretrained(full_dir, src_lang="ar_AR")
    vocab_map = torch.from_numpy(np.load(pruned_dir / VOCAB_MAP_FILE))
    full = MBartForConditionalGeneration.from_pretrained(full_dir).eval()
    pruned = MBartForConditionalGeneration.from_pretrained(pruned_dir).eval()

    batch = tokenizer([*KEPT_SENTENCES, KEPT_WORDS[0]], padding=True, return_tensors="pt")
    source_ids = batch["input_ids"]  # (3, S) original ids
    assert (vocab_map[source_ids] >= 0).all()
    target_ids = source_ids[:, :5].roll(1, dims=1)  # any kept tokens serve as decoder input, (3, 5)

    full_out = full(input_ids=source_ids, attention_mask=batch["attention_mask"], decoder_input_ids=target_ids)
    pruned_out = pruned(
        input_ids=vocab_map[source_ids], attention_mask=batch["attention_mask"],
        decoder_input_ids=vocab_map[target_ids],
    )
    torch.testing.assert_close(pruned_out.encoder_last_hidden_state, full_out.encoder_last_hidden_state)
    kept = torch.nonzero(vocab_map >= 0).squeeze(1)
    torch.testing.assert_close(pruned_out.logits, full_out.logits[..., kept])  # (3, 5, kept)


def test_refuses_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no config.json"):
        prune_mbart(tmp_path / "missing", tmp_path / "out", ["جملة"])
    with pytest.raises(ConfigError, match="full model folder"):
        prune_mbart(tmp_path, tmp_path, ["جملة"])


def write_split_csv(data_root: Path, split: str, sentences: list[str]) -> None:
    folder = data_root / split / "re_aligned"
    folder.mkdir(parents=True)
    rows = [",".join(CSV_COLUMNS)]
    rows += [f"{i},v{i}.mp4,{i},{split}_{i},0.0,2.0,{sentence},30" for i, sentence in enumerate(sentences)]
    (folder / f"isharah_realigned_{split}_preprocessed_fps.csv").write_text("\n".join(rows), encoding="utf-8")


def test_collect_sentences_from_every_split(tmp_path: Path) -> None:
    write_split_csv(tmp_path, "train", [CORPUS[0], CORPUS[1], CORPUS[0]])
    write_split_csv(tmp_path, "test", [CORPUS[1], CORPUS[2]])
    (tmp_path / "val").mkdir()  # a split folder without a CSV is skipped
    (tmp_path / "_cache").mkdir()
    assert sorted(collect_sentences(tmp_path)) == sorted(CORPUS[:3])

    with pytest.raises(DataError, match="no split CSV") as info:
        collect_sentences(tmp_path / "val")
    assert str(tmp_path / "val") in str(info.value)



def test_prepare_mbart_command(tiny_full_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                               load_script) -> None:
    script = load_script("prepare_mbart")
    data_root = tmp_path / "Isharah"
    write_split_csv(data_root, "train", KEPT_SENTENCES)
    dictionary_path = tmp_path / "dictionary.json"
    SignDictionary({KEPT_WORDS[0]: np.zeros((2, 3), dtype=np.int64)}).save(dictionary_path)
    argv = ["--src", str(tiny_full_dir), "--data-root", str(data_root), "--out", str(tmp_path / "pruned")]

    assert run_cli(lambda: script.main([*argv, "--dictionary", str(dictionary_path)])) == 0
    assert "2 distinct sentences, 1 dictionary words" in capsys.readouterr().out
    report = json.loads((tmp_path / "pruned" / REPORT_FILE).read_text(encoding="utf-8"))
    assert report["sentences"] == 2 and report["words"] == 1 and report["kept"] < report["total"]

    assert run_cli(lambda: script.main([*argv[:2], "--data-root", str(tmp_path / "nowhere"), *argv[4:]])) == 2
    assert "error: no split CSV under" in capsys.readouterr().err
