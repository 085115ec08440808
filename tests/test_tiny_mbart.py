"""The tiny offline mBART: folder format, token id layout, determinism, corpus reading, CLI."""

import csv
import hashlib
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from transformers import MBartForConditionalGeneration, MBartTokenizer

from mGPT.archs.tiny_mbart import SENTENCEPIECE_FILE, make_tiny_mbart, read_corpus
from mGPT.data.isharah import CSV_COLUMNS, split_csv_path
from mGPT.errors import DataError

SENTENCES = [
    "مرحبا بك في المدرسة",
    "أين المستشفى من فضلك",
    "شكرا جزيلا لك يا صديقي",
    "كم عمرك اليوم",
    "ذهبت إلى السوق مع أمي",
]
REPO = Path(__file__).resolve().parents[1]


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mbart(SENTENCES, tmp_path_factory.mktemp("tiny") / "mbart", d_model=64, layers=2)


def test_folder_has_the_files_of_mbart_large_cc25(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", SENTENCEPIECE_FILE, "tokenizer.json"} <= names


def test_loads_with_from_pretrained_and_has_the_requested_shape(tiny_dir: Path) -> None:
    model = MBartForConditionalGeneration.from_pretrained(tiny_dir, local_files_only=True)
    tokenizer = MBartTokenizer.from_pretrained(tiny_dir, local_files_only=True, src_lang="ar_AR")
    config = model.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (64, 2, 2)
    assert (config.encoder_attention_heads, config.decoder_ffn_dim) == (4, 512)
    assert config.scale_embedding and config.pad_token_id == 1 and config.eos_token_id == 2
    assert config.vocab_size == len(tokenizer) == model.get_input_embeddings().num_embeddings


def test_token_ids_follow_the_fairseq_layout(tiny_dir: Path) -> None:
    tokenizer = MBartTokenizer.from_pretrained(tiny_dir, local_files_only=True, src_lang="ar_AR")
    pieces = spm.SentencePieceProcessor(model_file=str(tiny_dir / SENTENCEPIECE_FILE))
    assert tokenizer.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    # Piece i of the sentencepiece model (i >= 3) is token i + 1; the language codes follow the pieces.
    ar_id = tokenizer.convert_tokens_to_ids("ar_AR")
    assert ar_id == pieces.get_piece_size() + 1
    assert tokenizer.convert_tokens_to_ids("<mask>") == len(tokenizer) - 1
    text_ids = tokenizer(SENTENCES[0])["input_ids"]
    assert text_ids == [i + 1 for i in pieces.encode(SENTENCES[0])] + [2, ar_id]


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path) -> None:
    first = _digests(make_tiny_mbart(SENTENCES, tmp_path / "a", d_model=32, layers=1, seed=3))
    again = _digests(make_tiny_mbart(SENTENCES, tmp_path / "b", d_model=32, layers=1, seed=3))
    other = _digests(make_tiny_mbart(SENTENCES, tmp_path / "c", d_model=32, layers=1, seed=4))
    assert first == again
    assert other["model.safetensors"] != first["model.safetensors"]
    assert other["tokenizer.json"] == first["tokenizer.json"]


def test_vocab_size_caps_the_sentencepiece_model(tmp_path: Path) -> None:
    out = make_tiny_mbart(SENTENCES, tmp_path / "m", d_model=32, layers=1, vocab_size=40)
    pieces = spm.SentencePieceProcessor(model_file=str(out / SENTENCEPIECE_FILE))
    assert pieces.get_piece_size() <= 40
    model = MBartForConditionalGeneration.from_pretrained(out, local_files_only=True)
    assert model.config.vocab_size == pieces.get_piece_size() + 1 + 25 + 1  # specials, languages, <mask>


def test_empty_corpus_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no sentences"):
        make_tiny_mbart(["", "  "], tmp_path / "m")


def test_read_corpus_from_text_file_drops_blanks_and_repeats(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(f"{SENTENCES[0]}\n\n  {SENTENCES[1]}  \n{SENTENCES[0]}\n", encoding="utf-8")
    assert read_corpus(corpus) == SENTENCES[:2]


def test_read_corpus_from_isharah_root_reads_every_split(tmp_path: Path) -> None:
    for split, sentences in (("train", SENTENCES[:2]), ("test", SENTENCES[2:3])):
        path = split_csv_path(tmp_path, split)
        path.parent.mkdir(parents=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for i, sentence in enumerate(sentences):
                row = {**dict.fromkeys(CSV_COLUMNS, "1"), "SENTENCE_NAME": f"s{i}", "SENTENCE": sentence}
                writer.writerow(row)
    assert sorted(read_corpus(tmp_path)) == sorted(SENTENCES[:3])


def test_read_corpus_names_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere.txt"):
        read_corpus(tmp_path / "nowhere.txt")



def test_cli_builds_a_loadable_folder(tmp_path: Path, load_script) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES), encoding="utf-8")
    load_script("make_tiny_mbart").main(["--corpus", str(corpus), "--out", str(tmp_path / "m"), "--d-model", "32",
                         "--layers", "1", "--seed", "1"])
    model = MBartForConditionalGeneration.from_pretrained(tmp_path / "m", local_files_only=True)
    assert model.config.d_model == 32
    assert torch.isfinite(model.get_input_embeddings().weight).all()


def test_cli_error_exits_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture, load_script) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_script("make_tiny_mbart").main(["--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "m")])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: ") and "missing.txt" in stderr
