from audit.normalize import canonical_aligned, normalize


def test_traditional_becomes_simplified():
    assert normalize("您的借款已經逾期，請盡快還款") == "您的借款已经逾期，请尽快还款"


def test_whisper_commas_and_spaces_become_chinese_punctuation():
    assert normalize("你再不還錢,明天就上門!") == "你再不还钱，明天就上门！"
    assert normalize("您好 我是星辰消費金融的客服") == "您好，我是星辰消费金融的客服"


def test_full_width_digits_and_letters_fold_but_numbers_keep_their_commas():
    assert normalize("ＡＢＣ１２３") == "ABC123"
    assert normalize("欠款1,000元.") == "欠款1,000元。"


def test_normalize_is_idempotent_on_mixed_text():
    for text in ["您好 我是星辰消費金融", "  欠款  1,000 元?? ", "Ｈｅｌｌｏ，世界", ""]:
        once = normalize(text)
        assert normalize(once) == once


def test_canonical_aligned_keeps_offsets():
    text = "你再不還錢，明天就上門！ＯＫ?"
    canon = canonical_aligned(text)
    assert len(canon) == len(text)
    assert canon.startswith("你再不还钱")
    assert canon.endswith("OK？")
