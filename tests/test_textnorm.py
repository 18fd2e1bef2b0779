"""Normalisation for matching: what a user types and what the matcher compares."""
from __future__ import annotations

import pytest

from bot.understanding.textnorm import char_readings, clean, drop_noise, light_mask, normalize, sound_key, strip_courtesy, tokens

KB_READINGS = frozenset({"le", "qi", "lian", "yon", "tong", "dao"})


@pytest.mark.parametrize("raw, expected", [
    ("乐企联用，通道不显示！", "乐企联用通道不显示"),           # punctuation dropped
    ("ＡＢＣ１２３", "abc123"),                                  # full-width → NFKC, lower-case
    ("樂企聯用 數電配置", "乐企联用数电配置"),                   # traditional → simplified
    ("  bdm_cache_clear  ", "bdm_cache_clear"),                 # identifiers keep underscores
    ("🙂😀", ""),                                               # emoji are not text
])
def test_clean(raw, expected):
    """Width, case, script and punctuation differences disappear."""
    assert clean(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("请问一下乐企通道怎么办呢？", "乐企通道"),                  # fillers removed
    ("你好，乐企通道看不到啊", "乐企通道不显示"),               # greeting inside a question removed; synonym
    ("你好", "你好"),                                           # a text made only of fillers stays
    ("谢谢啦", "谢谢"),
    ("接入单位ID写反了", "接入单位id填反"),                     # synonym → canonical word
    ("后台还是旧的", "后台旧数据"),
    ("改成乐企", "改为乐企"),
    ("修改后", "修改后"),                                       # a canonical word is not rewritten
    ("乐企联用多少钱", "乐企联用费用"),
    ("额度不够了", "额度不足"),
])
def test_normalize(raw, expected):
    """Fillers go, synonyms become one word, a lone greeting stays."""
    assert normalize(raw) == expected


@pytest.mark.parametrize("typo", ["乐琪", "乐器", "乐起", "樂企"])
def test_homophone_typos_share_the_sound_key(typo):
    """Homophone typos of 乐企 sound the same to the matcher."""
    assert sound_key(normalize(typo), KB_READINGS) == sound_key("乐企", KB_READINGS)


@pytest.mark.parametrize("a, b, same", [
    ("联用", "连用", True),
    ("通道", "通到", True),
    ("通道", "频道", False),
    ("乐企", "月企", False),      # 月 has no le reading
    ("si", "是", False),          # a Latin word is one token, never a syllable
])
def test_sound_key_equality(a, b, same):
    """Homophones are equal; different sounds and Latin words are not."""
    assert (sound_key(normalize(a), KB_READINGS) == sound_key(normalize(b), KB_READINGS)) is same


def test_heteronym_reading_follows_the_kb():
    """乐 is read le (as in the KB), not yue, whatever the next character."""
    assert "yue" in char_readings("乐") and "le" in char_readings("乐")
    assert sound_key("乐器", frozenset({"le", "qi"})) == sound_key("乐企", frozenset({"le", "qi"}))


@pytest.mark.parametrize("text, toks, light", [
    ("缓存key值", ["缓", "存", "key", "值"], [False, False, False, False]),
    ("没有乐企", ["没", "有", "乐", "企"], [True, True, False, False]),
    ("id123abc", ["id123abc"], [False]),
])
def test_tokens_and_light_mask(text, toks, light):
    """Latin runs are one token; function characters are light."""
    assert tokens(text) == toks
    assert light_mask(text) == light


@pytest.mark.parametrize("text, bare", [
    ("老师你好，乐企通道不显示，谢谢！", "乐企通道不显示"),
    ("急急急 在线等", ""),
    ("乐企通道不显示", "乐企通道不显示"),
])
def test_strip_courtesy(text, bare):
    """Courtesy and urgency words come off for the matcher's second try."""
    assert strip_courtesy(text) == bare


@pytest.mark.parametrize("text, kept", [
    ("谢谢么么哒", "谢谢"),
    ("thx mua", "thx"),
    ("Muamua 辛苦啦", "辛苦啦"),
    ("summary 乐企", "summary 乐企"),   # only a whole Latin word is a sound
    ("什么么", "什么么"),              # a doubled 么 is a typo, not the sound
])
def test_affectionate_sounds_are_dropped(text, kept):
    """么么哒 / mua say nothing: the 么 of 么么哒 must not read as a question."""
    assert drop_noise(text).strip() == kept
