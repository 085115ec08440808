import pytest

from mGPT.data.arabic import ARABIC_STOP_WORDS, is_arabic, normalize_arabic, tokenize_words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("كَتَبَ", "كتب"),  # fatha on each letter
        ("كِتَابٌ", "كتاب"),  # kasra, fatha, dammatan
        ("مُحَمَّدٌ", "محمد"),  # damma, fatha, shadda, dammatan
        ("قُلْ", "قل"),  # sukun
        ("هٰذا", "هذا"),  # superscript alef U+0670
        ("مـــدرسة", "مدرسه"),  # tatweel U+0640 (and taa marbuta)
        ("أحمد", "احمد"),  # alef with hamza above
        ("إسلام", "اسلام"),  # alef with hamza below
        ("آمن", "امن"),  # alef madda
        ("ٱلله", "الله"),  # alef wasla
        ("مسؤول", "مسوول"),  # hamza on waw
        ("شاطئ", "شاطي"),  # hamza on yaa
        ("مدرسة", "مدرسه"),  # taa marbuta -> haa
        ("مستشفى", "مستشفي"),  # alef maqsura -> yaa
        ("ی", "ي"),  # Persian yeh
        ("ﻻ", "لا"),  # presentation-form ligature, e.g. text that went through a reshaper
        ("مرحبا\u200f", "مرحبا"),  # invisible right-to-left mark
    ],
)
def test_normalize_each_rule(text: str, expected: str) -> None:
    assert normalize_arabic(text) == expected


def test_normalize_punctuation_and_whitespace() -> None:
    assert normalize_arabic("  أين،  المدرسة؟ هنا؛ (نعم)!  ") == "اين المدرسه هنا نعم"
    assert normalize_arabic("قلم،كتاب") == "قلم كتاب"  # punctuation between words splits them
    assert normalize_arabic("a.b-c\tد\nه") == "a b c د ه"


def test_normalize_is_idempotent() -> None:
    once = normalize_arabic("إِلَى الْمَدْرَسَةِ، يا أحمدُ؟")
    assert once == "الي المدرسه يا احمد"
    assert normalize_arabic(once) == once


def test_tokenize_words() -> None:
    assert tokenize_words("ذهبَ الوَلَدُ إلى المدرسةِ.") == ["ذهب", "الولد", "الي", "المدرسه"]
    assert tokenize_words(" ،؟ ") == []


def test_stop_words_are_normalised() -> None:
    for word in ["في", "من", "الي", "علي", "عن", "و", "ال", "هذا", "هذه", "ذلك", "التي", "الذي", "ان", "كان"]:
        assert word in ARABIC_STOP_WORDS
    assert all(normalize_arabic(word) == word for word in ARABIC_STOP_WORDS)
    # content words, negation and question words carry meaning in signing
    for word in ["مدرسه", "لا", "ماذا", "اين"]:
        assert word not in ARABIC_STOP_WORDS


def test_is_arabic() -> None:
    assert is_arabic("أين المدرسة؟")
    assert not is_arabic("where is the school?")
    assert not is_arabic("123 !")
    assert is_arabic("school مدرسة كبيرة")  # 6 Latin letters, 10 Arabic letters
    assert not is_arabic("a big school مدرسة")
    assert not is_arabic("ab مدرسة", min_share=0.9)
