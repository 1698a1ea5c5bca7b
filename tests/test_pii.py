import pytest

from audit.pii import find_entities, is_bank_card, is_id_card, is_mobile, mask_digits


@pytest.mark.parametrize(
    "number,ok",
    [
        ("11010519491231002X", True),  # GB 11643 check digit X
        ("110105194912310021", False),  # wrong check digit
        ("11010519491331002X", False),  # month 13
    ],
)
def test_id_card_check_digit(number, ok):
    assert is_id_card(number) is ok


def test_bank_card_needs_luhn():
    assert is_bank_card("4111111111111111")
    assert not is_bank_card("4111111111111112")


def test_mobile_numbers():
    assert is_mobile("13812345678")
    assert is_mobile("8613812345678")
    assert not is_mobile("12812345678")


def test_numbers_read_as_chinese_words_are_found_with_aligned_offsets():
    text = "我的电话是幺三八一二三四五六七八，记一下"
    [(start, end, digits)] = list(find_entities(text, "mobile"))
    assert digits == "13812345678"
    assert text[start:end] == "幺三八一二三四五六七八"


def test_amounts_in_words_are_not_numbers_read_aloud():
    assert list(find_entities("欠款五万三千二百元", "mobile")) == []


def test_masking_keeps_last_four_and_leaves_short_numbers():
    masked = mask_digits("身份证11010519491231002X，电话138 1234 5678，工号1024")
    assert "11010519491231002X" not in masked and masked.count("002X") == 1
    assert "5678" in masked and "1234 5678" not in masked
    assert "工号1024" in masked


def test_digit_runs_are_found_once_for_all_validators():
    from audit.pii import digit_runs

    text = "卡号6222 0212 3456 7890 128，电话幺三八一二三四五六七八"
    runs = digit_runs(text)
    assert [d for _s, _e, d in runs] == ["6222021234567890128", "13812345678"]
    for start, end, _digits in runs:
        assert text[start:end].replace(" ", "")[:1] in "6幺"
    assert digit_runs("您好，请问是张先生吗？") == []  # no digits at all: no work


def test_full_width_digits_in_raw_asr_text_are_masked_too():
    masked = mask_digits("电话１３８１２３４５６７８")
    assert masked == "电话*******５６７８"
