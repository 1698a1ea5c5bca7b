"""pypinyin, imported with its phrase dictionary held in a third of the memory.

pypinyin parses its 47,000-phrase dictionary from JSON at import: every syllable of every
phrase becomes its own string in its own list, 35 MB resident in every worker process.
Here the same dictionary is loaded with one shared list per distinct reading (about two
thousand), and the parsed copy is dropped.  pypinyin deep-copies a phrase's readings
before it uses them, so sharing them changes nothing it returns;
``tests/test_pinyin.py`` checks the dictionary and the output against a plain import.

Every module of ``audit`` takes pypinyin from here, so the lean load happens first.  If
something imported pypinyin before ``audit`` did, it is left as it is.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import resources

_NO_PHRASES = "PYPINYIN_NO_PHRASES"  # pypinyin's switch for importing without its phrases


def _fresh(text: str) -> str:
    # A new string object, so that nothing keeps the parsed JSON's memory alive.
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")


def compact_phrases(parsed: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
    """The phrase dictionary with one list object per distinct reading."""
    readings: dict[tuple[str, ...], list[str]] = {}
    compact: dict[str, list[list[str]]] = {}
    for phrase, syllables in parsed.items():
        compact[_fresh(phrase)] = [
            readings.setdefault(tuple(r), [sys.intern(_fresh(s)) for s in r]) for r in syllables
        ]
    return compact


def _import_lean() -> None:
    if "pypinyin" in sys.modules:
        return
    before = os.environ.get(_NO_PHRASES)
    os.environ[_NO_PHRASES] = "1"
    try:
        from pypinyin import constants
        from pypinyin.seg import mmseg
    finally:
        if before is None:
            del os.environ[_NO_PHRASES]
        else:
            os.environ[_NO_PHRASES] = before
    text = resources.files("pypinyin").joinpath("phrases_dict.json").read_text("utf-8")
    parsed = json.loads(text)
    del text
    constants.PHRASES_DICT.update(compact_phrases(parsed))
    del parsed
    mmseg.retrain(mmseg.seg)


_import_lean()

from pypinyin import Style, lazy_pinyin, load_phrases_dict, pinyin  # noqa: E402

__all__ = ["Style", "lazy_pinyin", "load_phrases_dict", "pinyin"]
