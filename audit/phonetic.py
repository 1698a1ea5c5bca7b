"""Tone-insensitive pinyin, to catch Whisper's homophones (逾期→预期, 还款→环款).

Each character of the text gets the *set* of its toneless readings (还 -> {hai, huan}),
and a catalogue term is reduced to the one reading it has in context (还款 -> huan kuan).
A term matches where each of its syllables is among the readings of the aligned
character.  Per-character readings are cached, so indexing a text is a dict lookup
per character, not a call into pypinyin's segmenter.
"""

from __future__ import annotations

from functools import lru_cache

from audit.pinyin import Style, lazy_pinyin, load_phrases_dict, pinyin

# pypinyin reads 还 in these collection words as hai2; fix once, at import.
load_phrases_dict(
    {
        "还款": [["huán"], ["kuǎn"]],
        "还钱": [["huán"], ["qián"]],
        "还清": [["huán"], ["qīng"]],
        "还上": [["huán"], ["shàng"]],
        "不还": [["bù"], ["huán"]],
        "归还": [["guī"], ["huán"]],
        "还贷": [["huán"], ["dài"]],
    }
)


@lru_cache(maxsize=65536)
def char_readings(ch: str) -> frozenset[str]:
    """All toneless readings of one character; a non-Chinese character reads as itself."""
    if not ("\u3400" <= ch <= "\u9fff"):
        return frozenset((ch,))
    readings = pinyin(ch, style=Style.NORMAL, heteronym=True, errors="default")
    return frozenset(readings[0]) if readings and readings[0] else frozenset((ch,))


@lru_cache(maxsize=16384)
def term_syllables(term: str) -> tuple[str, ...]:
    """The reading of a catalogue term in context (phrase dictionary aware)."""
    return tuple(lazy_pinyin(term, style=Style.NORMAL, errors="default"))


def index_text(text: str) -> tuple[list[frozenset[str]], dict[str, list[int]]]:
    """Readings per character and, per syllable, the positions that can read as it."""
    readings = [char_readings(ch) for ch in text]
    by_syllable: dict[str, list[int]] = {}
    for i, rs in enumerate(readings):
        for r in rs:
            by_syllable.setdefault(r, []).append(i)
    return readings, by_syllable


def find_homophones(
    term: str,
    readings: list[frozenset[str]],
    by_syllable: dict[str, list[int]],
) -> list[int]:
    """Start positions where text reads like term (tone-insensitive)."""
    syllables = term_syllables(term)
    if len(syllables) != len(term):
        return []  # mixed or non-Chinese term: pinyin alignment would be wrong
    n = len(syllables)
    hits = []
    for start in by_syllable.get(syllables[0], ()):
        if start + n > len(readings):
            break
        if all(syllables[k] in readings[start + k] for k in range(1, n)):
            hits.append(start)
    return hits


# Sounds Whisper base confuses on 8 kHz telephone audio.
TELEPHONE_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"))


@lru_cache(maxsize=65536)
def fuzzy_syllable(
    syllable: str, initials: tuple[tuple[str, str], ...] = TELEPHONE_INITIALS
) -> str:
    """One reading for syllables that sound alike on the telephone: the first matching
    initial folded (zh -> z, n -> l, ...) and a final -ng folded to -n."""
    for long, short in initials:
        if syllable.startswith(long):
            syllable = short + syllable[len(long) :]
            break
    if syllable.endswith("ng") and len(syllable) > 2:
        syllable = syllable[:-1]
    return syllable
