"""pypinyin with its phrase dictionary held compactly (audit/pinyin.py) answers as a plain
import of pypinyin does."""

from __future__ import annotations

import json
import subprocess
import sys

from audit.corpus import load_examples
from audit.learned import CORPUS_DIR
from audit.pinyin import compact_phrases

# Each child reads sentences on stdin and prints its phrase dictionary and their pinyin.
_DUMP = """
import json, sys
{imports}
from pypinyin.constants import PHRASES_DICT
texts = json.load(sys.stdin)
out = {{
    "phrases": PHRASES_DICT,
    "tones": [lazy_pinyin(t) for t in texts],
    "normal": [lazy_pinyin(t, style=Style.NORMAL) for t in texts],
    "heteronyms": [pinyin(t, heteronym=True) for t in texts[:50]],
}}
json.dump(out, sys.stdout, ensure_ascii=False, sort_keys=True)
"""


def _dump(imports: str, texts: list[str]) -> dict:
    code = _DUMP.format(imports=imports)
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_lean_import_gives_pypinyins_own_dictionary_and_readings():
    texts = [e.text for e in load_examples(CORPUS_DIR / "polite_third_party.jsonl")]
    texts += ["还款还清了吗", "银行行长说还行", "重庆的重量", "12月3日壹万元"]
    lean = _dump("from audit.pinyin import Style, lazy_pinyin, pinyin", texts)
    plain = _dump("from pypinyin import Style, lazy_pinyin, pinyin", texts)
    assert len(plain["phrases"]) > 40_000
    assert lean["phrases"] == plain["phrases"]
    for key in ("tones", "normal", "heteronyms"):
        assert lean[key] == plain[key], key


def test_compact_phrases_share_one_list_per_reading():
    parsed = {"还款": [["huán"], ["kuǎn"]], "还钱": [["huán"], ["qián"]], "行": [["xíng", "háng"]]}
    compact = compact_phrases(parsed)
    assert compact == parsed
    assert compact["还款"][0] is compact["还钱"][0]  # the shared ['huán']
    assert compact["还款"][1] is not compact["还钱"][1]
