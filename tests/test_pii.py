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


def test_grouped_spoken_numbers_are_one_number():
    text = "手机幺三八，一二三四，五六七八，你记好"
    [(start, end, digits)] = list(find_entities(text, "mobile"))
    assert digits == "13812345678"
    assert text[start:end] == "幺三八，一二三四，五六七八"


def test_a_spoken_id_ending_in_cha_is_read_as_x():
    [(_, _, digits)] = list(find_entities("号码是一一零一零五一九四九一二三一零零二叉", "id_card"))
    assert digits == "11010519491231002X"


def test_masking_hides_id_shaped_numbers_even_with_a_bad_checksum():
    masked = mask_digits("身份证110105194912310021，卡号6217 0000 1234 5678 902")
    assert "1101051949" not in masked and "6217" not in masked
    assert masked.endswith("8 902") and "0021" in masked


@pytest.mark.parametrize(
    "text,found",
    [
        ("你的身份证号是110105194912310021吧", True),  # checksum fails, context says ID
        ("这笔订单流水号110105194912310021", False),  # same digits, no context
        ("你那张银行卡6217000012345678901", True),  # Luhn fails, context says card
        ("合同编号6217000012345678901", False),
        ("你身份证号后四位是1234吗", False),  # last four only: allowed
    ],
)
def test_context_words_accept_a_number_of_the_right_shape(detector, text, found):
    hits = {h.category for h in detector.detect(text, "agent", "debtor")}
    assert ("pii_exposure" in hits) is found


def test_a_number_followed_by_a_comma_and_more_digits_is_still_found_and_masked():
    text = "我的电话是13812345678，3点以后打"
    assert [d for _, _, d in find_entities(text, "mobile")] == ["13812345678"]
    assert "13812345678" not in mask_digits(text) and "5678，3点" in mask_digits(text)
