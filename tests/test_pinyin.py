"""Sounds: Latin runs typed as pinyin, fuzzy syllables."""
from __future__ import annotations

import pytest

from bot.understanding.pinyin import char_readings, fuzzy, split_pinyin


@pytest.mark.parametrize("run, syllables", [
    ("leqi", ("le", "qi")),
    ("tongdao", ("tong", "dao")),         # -ong stays (only -ing/-eng merge)
    ("huancun", ("huan", "cun")),
    ("shuidian", ("sui", "dian")),        # sh = s
    ("key", None),                        # not pinyin
    ("si", None),                         # one syllable stays a word
    ("ok", None),
    ("bdm_cache_clear", None),            # not letters only
    ("a" * 60, None),                     # too long to try
])
def test_split_pinyin(run, syllables):
    """Pinyin runs split into fuzzy syllables; words and single syllables do not."""
    assert split_pinyin(run) == syllables


@pytest.mark.parametrize("raw, merged", [("zhang", "zang"), ("shi", "si"), ("qing", "qin"), ("deng", "den")])
def test_fuzzy_merges(raw, merged):
    """zh/ch/sh and -ing/-eng merge the way people mistype them."""
    assert fuzzy(raw) == merged


def test_heteronyms_are_all_kept():
    """乐 reads le and yue."""
    assert {"le", "yue"} <= set(char_readings("乐"))
