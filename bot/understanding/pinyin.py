"""Sounds: toneless, fuzzy-merged pinyin of Han characters, and Latin runs typed as pinyin (leqi → le qi)."""
from __future__ import annotations

import re
from functools import lru_cache

# Southern-accent / pinyin-typing merges applied to every syllable (zh=z, ch=c, sh=s, -ing=-in, -eng=-en).
_FUZZY_PINYIN = ((re.compile(r"^([zcs])h"), r"\1"), (re.compile(r"(e|i)ng$"), r"\1n"))
MIN_PINYIN_SYLLABLES = 2  # a Latin run is read as pinyin only from two syllables on ("si" stays a word)
LONGEST_SYLLABLE = 6  # zhuang, shuang


def fuzzy(syllable: str) -> str:
    """A toneless syllable with the fuzzy merges applied."""
    for pattern, repl in _FUZZY_PINYIN:
        syllable = pattern.sub(repl, syllable)
    return syllable


@lru_cache(maxsize=65536)
def char_readings(ch: str) -> tuple[str, ...]:
    """All toneless readings of one Han character (most common first), fuzzy-merged."""
    from pypinyin import Style, pinyin

    readings: list[str] = []
    for raw in pinyin(ch, style=Style.NORMAL, heteronym=True, errors=lambda c: [c])[0]:
        merged = fuzzy(raw)
        if merged not in readings:
            readings.append(merged)
    return tuple(readings) or (ch,)


@lru_cache(maxsize=1)
def syllable_inventory() -> frozenset[str]:
    """Every toneless syllable of Mandarin, as pypinyin's dictionary spells them (≈ 420)."""
    from pypinyin.constants import PINYIN_DICT
    from pypinyin.contrib.tone_convert import to_normal

    plain = {to_normal(r) for value in PINYIN_DICT.values() for r in value.split(",")}
    return frozenset(s for s in plain if s.isascii() and s.isalpha() and len(s) > 1 or s in ("a", "e", "o"))


@lru_cache(maxsize=8192)
def split_pinyin(run: str, minimum: int = MIN_PINYIN_SYLLABLES) -> tuple[str, ...] | None:
    """A Latin run as pinyin syllables (fewest syllables, fuzzy-merged), or None if it is not pinyin.

    `leqi` → (le, qi), `tongdao` → (ton, dao), `huancun` → (huan, cun); `key`, `ok`, `si` → None
    (not syllables, or a single one). English words that happen to spell pinyin (`cache` = ca che)
    are the caller's to protect: see textnorm.syllables.
    """
    if not run.isascii() or not run.isalpha() or len(run) > 40:
        return None
    inventory = syllable_inventory()
    best: list[tuple[str, ...] | None] = [None] * (len(run) + 1)
    best[0] = ()
    for end in range(1, len(run) + 1):
        for start in range(max(0, end - LONGEST_SYLLABLE), end):
            head = best[start]
            if head is not None and run[start:end] in inventory:
                option = (*head, run[start:end])
                if best[end] is None or len(option) < len(best[end]):
                    best[end] = option
    found = best[len(run)]
    if found is None or len(found) < minimum:
        return None
    return tuple(fuzzy(s) for s in found)
