"""Text normalisation for Mandarin ASR output.

Whisper base answers in traditional characters more often than not, mixes ASCII and
full-width punctuation, and sometimes separates clauses by spaces only.  Detection
and storage work on one canonical form: simplified characters, half-width letters
and digits, Chinese full-width punctuation, single spaces.

Every step maps one character to at most one character, except whitespace collapse,
so that the canonical text is stable under re-normalisation (idempotent).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc

# ASCII punctuation that Whisper emits between Chinese clauses -> Chinese forms.
_PUNCT_TO_CJK = {
    ",": "，",
    "!": "！",
    "?": "？",
    ";": "；",
    ":": "：",
    "(": "（",
    ")": "）",
    "、": "、",
}
_CJK = re.compile(r"[\u3400-\u9fff]")
_SPACES = re.compile(r"\s+")
# A space between two CJK characters is a clause pause in Whisper output.
_CJK_SPACE_CJK = re.compile(r"(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])")
_CJK_PERIOD = re.compile(r"(?<=[\u3400-\u9fff])\.(?!\d)")


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese (OpenCC t2s)."""
    return _t2s().convert(text)


def _fold_width(text: str) -> str:
    """Full-width ASCII letters/digits/symbols -> half-width; ideographic space -> space."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\u3000":
            out.append(" ")
        elif 0xFF01 <= code <= 0xFF5E and ch not in "，！？；：（）":
            out.append(chr(code - 0xFEE0))
        else:
            out.append(ch)
    return "".join(out)


def _cjk_punctuation(text: str) -> str:
    chars = list(text)
    for i, ch in enumerate(chars):
        mapped = _PUNCT_TO_CJK.get(ch)
        if mapped is None:
            continue
        prev_cjk = i > 0 and bool(_CJK.match(chars[i - 1]))
        next_cjk = i + 1 < len(chars) and bool(_CJK.match(chars[i + 1]))
        # Keep ASCII punctuation inside numbers and Latin text (e.g. "1,000", "A:B").
        if prev_cjk or next_cjk:
            chars[i] = mapped
    return "".join(chars)


def normalize(text: str) -> str:
    """Canonical form used for storage and detection (idempotent)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text)
    text = to_simplified(text)
    text = _fold_width(text)
    text = "".join(
        ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf") or ch in "\n\t"
    )
    text = _CJK_PERIOD.sub("。", text)
    text = _cjk_punctuation(text)
    text = _CJK_SPACE_CJK.sub("，", text)
    text = _SPACES.sub(" ", text).strip()
    return text


_ALIGNED_PUNCT = {"!": "！", "?": "？", ";": "；", "(": "（", ")": "）", "\u3000": " "}


@lru_cache(maxsize=65536)
def _canon_char(ch: str) -> str:
    code = ord(ch)
    if 0xFF01 <= code <= 0xFF5E and ch not in "，！？；：（）":
        ch = chr(code - 0xFEE0)
    ch = _ALIGNED_PUNCT.get(ch, ch)
    if "\u3400" <= ch <= "\u9fff":
        simplified = to_simplified(ch)
        if len(simplified) == 1:
            ch = simplified
    return ch


def canonical_aligned(text: str) -> str:
    """Like normalize(), but one character in, one character out.

    The detector works on this form so that the character offsets it reports point
    into the caller's own text (the ``detect`` contract).
    """
    return "".join(_canon_char(ch) for ch in text)
