"""Personal data spoken aloud: Chinese ID numbers, bank cards, mobile numbers.

Like a Presidio recognizer, each entity is a pattern plus a small validator, so a
random 18-digit amount is not reported as an ID card.  As in Presidio, context words
raise confidence: a number of the right *shape* (18 characters for an ID, 16-19 digits
for a card) next to 身份证 or 卡号 is accepted even when its checksum fails, because one
misheard or misread digit breaks a checksum without making the number any less personal.
Digits read out as Chinese words (幺三八…) are mapped one character to one digit first,
which keeps offsets aligned with the original text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

_DIGIT_WORDS = str.maketrans(
    {
        "零": "0",
        "〇": "0",
        "洞": "0",
        "一": "1",
        "幺": "1",
        "二": "2",
        "两": "2",
        "三": "3",
        "四": "4",
        "五": "5",
        "六": "6",
        "七": "7",
        "八": "8",
        "九": "9",
        "叉": "X",  # the ID check character, read aloud
    }
)
_WORD_DIGIT = "零〇洞一幺二两三四五六七八九"
# Seven or more digit words in a row (groups may be separated the way people read them,
# 幺三八，一二三四，五六七八) is a number read digit by digit, not an amount.
_DIGIT_WORD_RUN = re.compile(rf"[{_WORD_DIGIT}](?:[ ，,、\-]?[{_WORD_DIGIT}]){{6,}}叉?")
# A run of digits, read two ways: spaces and dashes only (13812345678，3点 keeps its
# phone number), and also commas, as numbers are read out in groups (138，1234，5678).
_DIGIT_RUNS = (
    re.compile(r"(?<![\dA-Za-z])\d(?:[ \-]?[\dXx])+(?![\dA-Za-z])"),
    re.compile(r"(?<![\dA-Za-z])\d(?:[ \-，,、]?[\dXx])+(?![\dA-Za-z])"),
)
_SEPARATORS = re.compile(r"[ \-，,、]")
_SEPARATOR_CHARS = " -，,、"

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def spoken_digits_to_ascii(text: str) -> str:
    """Replace runs of >= 7 Chinese digit words by ASCII digits, same length."""
    return _DIGIT_WORD_RUN.sub(lambda m: m.group(0).translate(_DIGIT_WORDS), text)


def is_id_card(number: str) -> bool:
    """Mainland resident ID (GB 11643): 17 digits + check digit (0-9 or X)."""
    if not re.fullmatch(r"\d{17}[\dXx]", number):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != number[17].upper():
        return False
    month, day = int(number[10:12]), int(number[12:14])
    return 1 <= month <= 12 and 1 <= day <= 31


def luhn_ok(number: str) -> bool:
    """Luhn checksum used by UnionPay, Visa and Mastercard card numbers."""
    if not number.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_bank_card(number: str) -> bool:
    return 16 <= len(number) <= 19 and number.isdigit() and luhn_ok(number)


def is_mobile(number: str) -> bool:
    """Mainland mobile: 11 digits starting 13-19 (an optional +86/86 prefix is stripped)."""
    if number.startswith("86") and len(number) == 13:
        number = number[2:]
    return bool(re.fullmatch(r"1[3-9]\d{9}", number))


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "id_card": is_id_card,
    "bank_card": is_bank_card,
    "mobile": is_mobile,
}

# The shape alone, accepted when a context word of the rule stands just before the number.
SHAPES: dict[str, Callable[[str], bool]] = {
    "id_card": lambda n: bool(re.fullmatch(r"\d{17}[\dXx]", n)),
    "bank_card": lambda n: n.isdigit() and 16 <= len(n) <= 19,
    "mobile": is_mobile,
}


def is_personal_number(digits: str) -> bool:
    """Shaped like an ID, card or mobile number, valid or not: what the masker hides
    (every number a validator accepts has its entity's shape)."""
    return any(shape(digits) for shape in SHAPES.values())


# Cheap pre-check: most utterances hold no digit and no run of digit words at all.
_ANY_DIGIT = re.compile(r"\d")


def digit_runs(text: str) -> list[tuple[int, int, str]]:
    """(start, end, digits) of every digit run, digit words read as digits; offsets align."""
    if not _ANY_DIGIT.search(text) and not _DIGIT_WORD_RUN.search(text):
        return []
    return _runs(spoken_digits_to_ascii(text))


def _runs(digits_text: str) -> list[tuple[int, int, str]]:
    found = {
        (m.start(), m.end()): _SEPARATORS.sub("", m.group(0))
        for pattern in _DIGIT_RUNS
        for m in pattern.finditer(digits_text)
    }
    return [(s, e, digits) for (s, e), digits in sorted(found.items())]


def find_entities(text: str, entity: str) -> Iterator[tuple[int, int, str]]:
    """Yield (start, end, digits) for each valid `entity` number in text."""
    validator = VALIDATORS[entity]
    for start, end, digits in digit_runs(text):
        if validator(digits):
            yield start, end, digits


def mask_digits(text: str, keep_last: int = 4) -> str:
    """Mask every ID/bank/mobile number in text, keeping its last digits for reference.

    Anything shaped like an ID or card number is masked, valid or not: hiding a digit
    too many costs nothing, storing a personal number costs a breach.

    Numbers are found on the width-folded form (Whisper's raw text may hold full-width
    digits, １３８…), which has the same length, so the spans apply to ``text``.
    """
    from audit.normalize import canonical_aligned

    digits_text = spoken_digits_to_ascii(canonical_aligned(text))
    spans = [(s, e) for s, e, digits in _runs(digits_text) if is_personal_number(digits)]
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        kept = 0
        for i in range(end - 1, start - 1, -1):  # keep the last digits, not separators
            if chars[i] in _SEPARATOR_CHARS:
                continue
            if kept < keep_last:
                kept += 1
            else:
                chars[i] = "*"
    return "".join(chars)


def display_name(call_id: str, limit: int = 80) -> str:
    """A call id as it may appear in terminals, logs and Prefect run names.

    File names are the uploader's to choose: control characters (a newline forging a log
    line, an ANSI escape colouring the terminal) are shown escaped, and a phone or ID
    number in the name is masked like one read aloud.
    """
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in mask_digits(call_id))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
