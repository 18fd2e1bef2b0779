"""Chinese text normalisation for matching: NFKC, traditional→simplified, filler removal, sound keys.

`normalize` turns a user's question into the comparable form (no punctuation, no filler words);
`sound_key` turns that into one character per syllable, so that homophone typos (乐琪/乐器/乐起 for
乐企, 连用 for 联用) compare equal under rapidfuzz. Pinyin is taken character by character with
heteronyms: a character that can be read several ways takes the reading the knowledge base uses
(`prefer`), so 乐器 reads "le qi" like 乐企 (phrase mode would say "yue qi").
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Words that carry no meaning for matching; removed longest first. Kept short on purpose:
# negations (不/没) and domain verbs stay.
FILLERS = (
    "请问一下", "想问一下", "问一下", "请问", "想问", "请教", "麻烦你", "麻烦", "帮忙", "帮我看看",
    "怎么办", "怎么弄", "怎么整", "咋整", "咋办", "怎么回事", "怎么处理", "如何处理", "怎么解决",
    "如何解决", "该怎么", "怎么样", "怎么", "怎样", "如何", "为什么", "为啥", "什么", "咋",
    "啥", "你好", "您好", "一下", "一直", "就是", "那个", "这个", "我们", "我的", "你们", "现在",
    "然后", "但是", "可是", "不过", "还是", "已经", "里面", "上面", "好像", "应该", "一下子",
    "呢", "吗", "啊", "呀", "吧", "哦", "嘛", "哈", "呐", "啦", "了", "的", "得", "我", "您",
)
_FILLER_RE = re.compile("|".join(sorted(map(re.escape, FILLERS), key=len, reverse=True)))
# Light characters: kept in the text, but never required to be covered by an intent.
LIGHT_CHARS = frozenset("不没无未有在里中上下到还又都也就把被给是要想能会可以个和与跟及或就")
# Southern-accent / pinyin-typing merges applied to every syllable.
_FUZZY_PINYIN = ((re.compile(r"^([zcs])h"), r"\1"), (re.compile(r"(e|i)ng$"), r"\1n"))
_PUA_BASE = 0xF0000  # supplementary private-use plane: room for every syllable
_SYLLABLE_CODES: dict[str, str] = {}


@lru_cache(maxsize=1)
def _t2s():
    """The OpenCC traditional→simplified converter (built once, on first use)."""
    import opencc

    return opencc.OpenCC("t2s")


def clean(text: str) -> str:
    """NFKC, traditional→simplified, lower-case, only letters/digits/CJK/underscore kept."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    text = _t2s().convert(text)
    return "".join(ch for ch in text if ch.isalnum() or ch == "_")


def strip_fillers(text: str) -> str:
    """Drop filler words; a text made only of fillers (你好, 在吗) is returned unchanged."""
    stripped = _FILLER_RE.sub("", text)
    return stripped or text


def normalize(text: str) -> str:
    """The comparable form of a question: cleaned, fillers stripped."""
    return strip_fillers(clean(text))


def is_han(ch: str) -> bool:
    """True for a CJK unified ideograph."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


@lru_cache(maxsize=65536)
def char_readings(ch: str) -> tuple[str, ...]:
    """All toneless readings of one Han character (most common first), fuzzy-merged."""
    from pypinyin import Style, pinyin

    readings: list[str] = []
    for raw in pinyin(ch, style=Style.NORMAL, heteronym=True, errors=lambda c: [c])[0]:
        for pattern, repl in _FUZZY_PINYIN:
            raw = pattern.sub(repl, raw)
        if raw not in readings:
            readings.append(raw)
    return tuple(readings) or (ch,)


def syllables(text: str, prefer: frozenset[str] = frozenset()) -> list[str]:
    """One token per character: a Han character's reading (preferring `prefer`), else the char."""
    out = []
    for ch in text:
        if not is_han(ch):
            out.append(ch)
            continue
        readings = char_readings(ch)
        out.append(next((r for r in readings if r in prefer), readings[0]))
    return out


def _code(token: str) -> str:
    """A single private-use character standing for one syllable (stable within the process)."""
    if len(token) == 1 and not is_han(token):
        return token
    code = _SYLLABLE_CODES.get(token)
    if code is None:
        code = chr(_PUA_BASE + len(_SYLLABLE_CODES))
        _SYLLABLE_CODES[token] = code
    return code


def sound_key(text: str, prefer: frozenset[str] = frozenset()) -> str:
    """The text as one character per syllable, so homophones compare equal."""
    return "".join(_code(t) for t in syllables(text, prefer))


def primary_readings(texts) -> frozenset[str]:
    """The most common reading of every Han character in `texts` (a KB's preferred readings)."""
    return frozenset(char_readings(ch)[0] for text in texts for ch in text if is_han(ch))
