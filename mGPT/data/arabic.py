"""Arabic text normalisation, word splitting and stop words for keyword retrieval.

Users type the same word in many spellings: with or without diacritics, with any of
the alef forms, with taa marbuta or haa at the end. The sign dictionary is looked up
by the normalised form, so all of those spellings reach the same sign.
"""

import string
import unicodedata

# fathatan .. sukun, then maddah/hamza above and below and the other combining marks up to U+065F
_HARAKAT = {chr(c) for c in range(0x064B, 0x0660)}
_QURANIC_MARKS = {chr(c) for c in range(0x0610, 0x061B)} | {chr(c) for c in range(0x06D6, 0x06EE)}
_SUPERSCRIPT_ALEF = "\u0670"
_TATWEEL = "\u0640"
_DROPPED = _HARAKAT | _QURANIC_MARKS | {_SUPERSCRIPT_ALEF, _TATWEEL}

_LETTER_MAP = {
    "\u0623": "\u0627",  # أ -> ا
    "\u0625": "\u0627",  # إ -> ا
    "\u0622": "\u0627",  # آ -> ا
    "\u0671": "\u0627",  # ٱ -> ا
    "\u0624": "\u0648",  # ؤ -> و
    "\u0626": "\u064a",  # ئ -> ي
    "\u0629": "\u0647",  # ة -> ه
    "\u0649": "\u064a",  # ى -> ي
    "\u06cc": "\u064a",  # Persian yeh, which some keyboards type for ي
}

# Punctuation becomes a space, not nothing, so "كلمة،كلمة" still splits into two words.
_ARABIC_PUNCTUATION = "\u060c\u061b\u061f\u066a\u066b\u066c\u066d\u06d4"  # ، ؛ ؟ ٪ ٫ ٬ ٭ ۔
_PUNCTUATION = set(string.punctuation) | set(_ARABIC_PUNCTUATION)

_ARABIC_BLOCKS = ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))


def normalize_arabic(text: str) -> str:
    """One canonical spelling of `text`: no diacritics or tatweel, unified letters, no punctuation."""
    # NFKC turns presentation forms (e.g. text that went through a reshaper) back into plain letters.
    text = unicodedata.normalize("NFKC", text)
    chars = []
    for ch in text:
        if ch in _DROPPED or unicodedata.category(ch) == "Cf":  # Cf: invisible marks such as RLM, ZWJ
            continue
        if ch in _PUNCTUATION or unicodedata.category(ch).startswith("P"):
            chars.append(" ")
            continue
        chars.append(_LETTER_MAP.get(ch, ch))
    return " ".join("".join(chars).split())


def tokenize_words(text: str) -> list[str]:
    """The normalised words of `text`, in order."""
    return normalize_arabic(text).split()


def is_arabic(text: str, min_share: float = 0.5) -> bool:
    """True when at least `min_share` of the letters in `text` are Arabic letters."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    arabic = sum(any(lo <= ord(ch) <= hi for lo, hi in _ARABIC_BLOCKS) for ch in letters)
    return arabic / len(letters) >= min_share


# Written in ordinary spelling and normalised below, so the set always matches normalize_arabic's output.
# Negations and question words are left out on purpose: they have their own signs and change the meaning.
_RAW_STOP_WORDS = """
في من إلى على عن مع عند منذ حتى بين فوق تحت قبل بعد لدى نحو خلال ضد حول دون
و ف ب ل ك ال ثم أو أم بل إن أن إذا لو قد لقد كي لكي لكن سوف
كان كانت كانوا يكون تكون أصبح صار
هذا هذه هذان هاتان هؤلاء ذلك تلك أولئك هنا هناك
الذي التي الذين اللذان اللتان اللواتي اللاتي
هو هي هم هن هما أنا نحن أنت أنتم أنتن
كل بعض أي أيضا يا به بها له لها لهم فيه فيها منه منها عليه عليها إليه إليها
"""

ARABIC_STOP_WORDS: frozenset[str] = frozenset(normalize_arabic(word) for word in _RAW_STOP_WORDS.split())
