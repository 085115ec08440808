"""Arabic captions for matplotlib: joined letters, right-to-left order, a font that has the glyphs.

Matplotlib draws a string glyph by glyph from left to right unless it lays text out with libraqm
(matplotlib >= 3.11), which joins Arabic letters and applies the bidi algorithm itself. Without
libraqm we must hand it the *visual* string: letters replaced by their joined presentation forms
(arabic_reshaper) and reversed into display order (python-bidi). With libraqm we must not, or the
already reversed string gets reversed a second time. `displayable_caption` picks the right one.
"""

import functools
import textwrap
import warnings

import arabic_reshaper
from bidi import get_display
from matplotlib import font_manager
from matplotlib.font_manager import FontProperties
from matplotlib.ft2font import FT2Font

PREFERRED_FAMILY = "DejaVu Sans"  # ships with matplotlib and covers Arabic and its presentation forms


@functools.cache
def matplotlib_shapes_text() -> bool:
    """True when this matplotlib joins Arabic letters and orders right-to-left text by itself.

    Probed, not read from the version: four unjoined beh letters take the width of their joined
    forms only when a shaping engine is at work (isolated forms are about twice as wide).
    """
    font = FT2Font(font_manager.findfont(FontProperties(family=PREFERRED_FAMILY)))
    font.set_size(12, 72)
    beh = "\u0628" * 4
    font.set_text(beh, 0.0)
    logical_width = font.get_width_height()[0]
    font.set_text(arabic_reshaper.reshape(beh), 0.0)
    joined_width = font.get_width_height()[0]
    return logical_width == joined_width


def visual_order(line: str) -> str:
    """One line of logical-order text as a left-to-right glyph string: joined forms, bidi reordered."""
    return get_display(arabic_reshaper.reshape(line))


def displayable_caption(text: str, max_chars_per_line: int) -> str:
    """Wrap `text` (logical order, as typed) into lines and make each line draw correctly in matplotlib.

    Lines are wrapped on words before reordering so that the first words of the sentence stay on the
    first line; each line is reordered on its own.
    """
    lines = textwrap.wrap(" ".join(text.split()), width=max(max_chars_per_line, 1)) or [""]
    if not matplotlib_shapes_text():
        lines = [visual_order(line) for line in lines]
    return "\n".join(lines)


@functools.cache
def _font_charmap(path: str) -> frozenset[int]:
    return frozenset(FT2Font(path).get_charmap())


def _covers(path: str, text: str) -> bool:
    charmap = _font_charmap(path)
    return all(ord(char) in charmap for char in text if not char.isspace())


def caption_font(text: str) -> FontProperties:
    """A font that has a glyph for every character of `text` (as it will be drawn), DejaVu Sans first.

    Falls back to any installed font that covers the text (Last Resort, whose "glyphs" are boxes,
    does not count), and failing that to DejaVu Sans with a warning: the caption then shows boxes
    for the missing glyphs but the video is still written.
    """
    preferred = FontProperties(family=PREFERRED_FAMILY)
    preferred_path = font_manager.findfont(preferred)
    if _covers(preferred_path, text):
        return preferred
    for entry in font_manager.fontManager.ttflist:
        if "lastresort" in entry.name.replace(" ", "").lower():
            continue  # has a placeholder box for every code point, which is not a glyph
        if entry.fname.lower().endswith((".ttf", ".otf")) and _covers(entry.fname, text):
            return FontProperties(fname=entry.fname)
    preferred_charmap = _font_charmap(preferred_path)
    missing = "".join(sorted({char for char in text if not char.isspace() and ord(char) not in preferred_charmap}))
    warnings.warn(
        f"no installed font has glyphs for all caption characters; {PREFERRED_FAMILY} lacks {missing!r}; "
        f"drawing the caption in {PREFERRED_FAMILY} anyway (install a font with Arabic glyphs, "
        "e.g. fonts-noto, to fix this)",
        stacklevel=2,
    )
    return preferred
