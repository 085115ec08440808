"""LM.KEYWORD_LAYOUT "inline": a keyword's codes right after its word's tokens in the source."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mGPT.archs.amg import SignGenerator
from mGPT.archs.tiny_mbart import make_tiny_mbart
from mGPT.data.dictionary import refers_to
from mGPT.data.keyword_layout import check_keyword_layout, keyword_positions
from mGPT.errors import ConfigError

SIZES = (8, 12, 12)
TEXTS = ["ذهبت إلى المدرسة مع صديقي اليوم", "كم عمرك اليوم", "شكرا جزيلا لك"]
SCHOOL = ("مدرسه", np.array([[1, 2, 3], [7, 11, 0]]))
TODAY = ("اليوم", np.array([[4, 5, 6]]))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mbart(TEXTS, tmp_path_factory.mktemp("layout") / "mbart", d_model=32, layers=1)


def _generator(tiny_dir: Path, layout: str) -> SignGenerator:
    torch.manual_seed(0)
    return SignGenerator(tiny_dir, codebook_sizes=SIZES, keyword_layout=layout).eval()


def _ids(generator: SignGenerator, text: str) -> list[int]:
    return generator.tokenizer(text, add_special_tokens=False)["input_ids"]


def _triplets(generator: SignGenerator, codes: np.ndarray) -> list[int]:
    return generator.code_rows(torch.as_tensor(codes)).flatten().tolist()


def test_refers_to_reads_clitics_like_the_dictionary():
    assert refers_to("المدرسة", "مدرسه") and refers_to("بالمدرسة", "مدرسه") and refers_to("مدرسة", "مدرسه")
    assert not refers_to("مدرستي", "مدرسه") and not refers_to("ال", "")


def test_keyword_positions_take_each_word_once_and_miss_made_up_keywords():
    words = "اليوم ذهبت الى المدرسه اليوم".split()
    assert keyword_positions(words, ["مدرسه", "اليوم", "اليوم", "بيت"]) == [3, 0, 4, None]


def test_inline_puts_each_keywords_codes_right_after_its_word(tiny_dir: Path):
    generator = _generator(tiny_dir, "inline")
    words = TEXTS[0].split()
    rows = generator.encode_sources([TEXTS[0]], [[SCHOOL, TODAY]])[0].tolist()
    expected = []
    for word in words:
        expected += _ids(generator, word)
        if word == "المدرسة":
            expected += _triplets(generator, SCHOOL[1])
        if word == "اليوم":
            expected += _triplets(generator, TODAY[1])
    expected += [generator.eos_row, generator.src_lang_row]
    assert rows == expected
    # the codes of the school sign sit straight after the tokens of "المدرسة", before "مع"
    school_end = sum(len(_ids(generator, w)) for w in words[:3])
    assert rows[school_end:school_end + 6] == _triplets(generator, SCHOOL[1])


def test_inline_text_tokens_are_the_whole_texts_and_unmatched_keywords_follow_it(tiny_dir: Path):
    inline, after = _generator(tiny_dir, "inline"), _generator(tiny_dir, "after_text")
    for text in TEXTS:  # without keywords both layouts are the plain text: word-by-word tokens change nothing
        assert inline.encode_sources([text])[0].tolist() == after.encode_sources([text])[0].tolist()
    # a keyword the text does not hold goes after the text with its word, as after_text has it
    made_up = ("بيت", np.array([[0, 1, 1]]))
    assert (inline.encode_sources([TEXTS[2]], [[made_up]])[0].tolist()
            == after.encode_sources([TEXTS[2]], [[made_up]])[0].tolist())
    # and after_text keeps SOKE's order: text, then the keyword's word and codes
    rows = after.encode_sources([TEXTS[1]], [[TODAY]])[0].tolist()
    assert rows == (_ids(after, TEXTS[1]) + _ids(after, "اليوم") + _triplets(after, TODAY[1])
                    + [after.eos_row, after.src_lang_row])


def test_unknown_layout_is_refused(tiny_dir: Path):
    with pytest.raises(ConfigError, match="KEYWORD_LAYOUT"):
        check_keyword_layout("before")
    with pytest.raises(ConfigError, match="KEYWORD_LAYOUT"):
        _generator(tiny_dir, "before")
