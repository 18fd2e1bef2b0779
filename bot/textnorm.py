"""Chinese text normalisation for matching: NFKC, traditional→simplified, filler removal, sound keys.

`normalize` turns a user's question into the comparable form (no punctuation, no filler words);
`sound_key` turns that into one character per syllable, so that homophone typos (乐琪/乐器/乐起 for
乐企, 连用 for 联用) compare equal under rapidfuzz. Pinyin is taken character by character with
heteronyms: a character that can be read several ways takes the reading the knowledge base uses
(`prefer`), so 乐器 reads "le qi" like 乐企 (phrase mode would say "yue qi").
"""
from __future__ import annotations

import logging
import re
import threading
import unicodedata
from functools import lru_cache

# Words that carry no meaning for matching; removed longest first. Negations (不/没) stay.
FILLERS = (
    "请问一下", "想问一下", "问一下", "请问", "想问", "请教", "麻烦你", "麻烦", "帮忙", "帮我看看",
    "怎么办", "怎么弄", "怎么整", "咋整", "咋办", "怎么回事", "怎么处理", "如何处理", "怎么解决",
    "如何解决", "该怎么", "怎么样", "怎么", "怎样", "如何", "为什么", "为啥", "什么", "咋", "啥",
    "你好", "您好", "一下", "一直", "就是", "那个", "这个", "我们", "我的", "你们", "现在", "需要",
    "然后", "但是", "可是", "不过", "还是", "已经", "里面", "上面", "好像", "应该", "这边", "那边",
    "什么时候", "啥时候", "步骤", "流程", "方法", "办法", "在哪里", "在哪儿", "在哪", "哪里", "哪儿", "多少", "哪些", "哪个",
    "呢", "吗", "啊", "呀", "吧", "哦", "嘛", "哈", "呐", "啦", "了", "的", "得", "我", "您",
)
_FILLER_RE = re.compile("|".join(sorted(map(re.escape, FILLERS), key=len, reverse=True)))
# Courtesy and urgency customers wrap a question in; dropped only for a second matching try.
COURTESY = (
    "谢谢", "多谢", "感谢", "辛苦了", "辛苦", "麻烦了", "拜托了", "拜托", "老师", "亲", "在线等", "等回复",
    "急急急", "着急", "紧急", "加急", "很急", "急", "尽快", "赶紧", "马上", "求助", "你好", "您好",
)
_COURTESY_RE = re.compile("|".join(sorted(map(re.escape, COURTESY), key=len, reverse=True)))
# Everyday ways of saying the same thing, mapped to one canonical word (applied to questions and
# FAQ texts alike, before filler removal). General Chinese, not tied to one FAQ.
SYNONYMS = {
    "不显示": ("看不到", "看不见", "找不到", "找不着", "没显示", "未显示", "不出现", "没出现", "没出来",
            "不出来", "出不来", "显示不出来", "不见了", "不见", "消失", "选不到", "没看到", "没找到",
            "不展示", "没展示", "刷不出来", "没有显示"),
    "填反": ("填错位置", "位置填错", "位置填反", "填反位置", "位置反了", "填反了", "写反了", "写反", "填颠倒", "颠倒", "弄反", "搞反", "录反",
           "输反", "填倒", "反了", "填成"),
    "清理缓存": ("清缓存",),
    "清理": ("清除", "清空", "清掉", "删除", "删掉", "清一下"),
    "修改": ("改正", "更正", "改过来", "改回来", "改好", "改过", "改完", "更改", "纠正", "改"),
    "改为": ("改成", "切换到", "切换成", "换成", "设置成", "设为"),
    "旧数据": ("旧的数据", "以前的数据", "之前的数据", "原来的数据", "老数据", "旧值", "旧的",
            "之前的", "以前的", "原来的"),
    "配置": ("配好", "配完", "配置好", "配置完"),
    "信息": ("资讯", "资料"),
    "显示": ("看到", "看见", "出现"),
    "不足": ("不够", "不充足"),
    "联系方式": ("电话号码", "电话", "热线", "联系电话"),
    "沟通": ("说话", "聊天", "聊聊", "对话", "交流", "聊"),
    "报错": ("失败", "出错", "不生效", "没生效", "无效", "没有用", "不管用", "没反应"),
    "费用": ("多少钱", "价格", "收费标准"),
    "回答": ("解答", "答复", "咨询"),
    "电子税局": ("电子税务局", "税务局"),
    "发票系统": ("开票系统", "发票平台"),
    "开发平台": ("开发者平台", "开放平台"),
    "人工客服": ("人工服务", "真人客服", "客服人员", "在线客服"),
    "key": ("key值", "键值"),
    # Small talk: closed-class greeting/thanks words, so no answer file has to list them all.
    "你好": ("您好", "哈喽", "哈啰", "哈罗", "嗨喽", "嗨", "hello", "早上好", "上午好", "中午好", "下午好",
           "晚上好", "早安", "晚安"),
    "谢谢": ("多谢", "谢了", "谢啦", "谢谢啦", "感谢", "感恩", "thanks", "thank you", "thx"),
}
_SYNONYM_OF = {variant: canon for canon, variants in SYNONYMS.items() for variant in (canon, *variants)}
_SYNONYM_OF |= {word: word for word in ("改为", "清楚")}  # keep whole: they contain a variant
_SYNONYM_RE = re.compile("|".join(sorted(map(re.escape, _SYNONYM_OF), key=len, reverse=True)))
# Light characters and words: kept in the text, but never required to be covered by an intent.
LIGHT_CHARS = frozenset("不没无未有在里中上下到还又都也就把被给是要想能会可以个和与跟及或请")
LIGHT_WORDS = frozenset((
    "以后", "之后", "后来", "以前", "之前", "两个", "一个", "只有", "只是", "才能", "能够", "不能",
    "不行", "不了", "还有", "所有", "这样", "那样", "时候", "的话", "如果", "而且", "并且", "其他",
    "别的", "这里", "那里", "目前", "刚才", "刚刚", "总是", "一样", "所以", "因为", "结果", "能干",
))
# A token is one Han character or one run of Latin letters/digits (an English word, an ID).
_TOKEN_RE = re.compile(r"[a-z0-9_]+|.", re.S)
_CHUNK_RE = re.compile(r"[a-z0-9_]+|[^a-z0-9_]+")
# Southern-accent / pinyin-typing merges applied to every syllable.
_FUZZY_PINYIN = ((re.compile(r"^([zcs])h"), r"\1"), (re.compile(r"(e|i)ng$"), r"\1n"))
_PUA_BASE = 0xF0000  # supplementary private-use plane: room for every syllable and word
_SPARE_BASE = 0x100000  # plane 16: per-question codes of tokens no knowledge base has
_TOKEN_CODES: dict[str, str] = {}
_CODES_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _t2s():
    """The OpenCC traditional→simplified converter (built once, on first use)."""
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=4096)  # one message is cleaned by several recognisers; texts are short
def clean(text: str) -> str:
    """NFKC, traditional→simplified, lower-case, only letters/digits/CJK/underscore kept."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    text = _t2s().convert(text)
    return "".join(ch for ch in text if ch.isalnum() or ch == "_")


def strip_courtesy(text: str) -> str:
    """The cleaned text without courtesy and urgency words ("" when nothing else is left)."""
    return _COURTESY_RE.sub("", clean(text))


def strip_fillers(text: str) -> str:
    """Drop filler words; a text made only of fillers (你好, 在吗) is returned unchanged."""
    stripped = _FILLER_RE.sub("", text)
    return stripped or text


def canonical(text: str) -> str:
    """Replace everyday synonyms by their canonical word (看不到 → 不显示)."""
    return _SYNONYM_RE.sub(lambda m: _SYNONYM_OF[m.group(0)], text)


def normalize(text: str) -> str:
    """The comparable form of a question: cleaned, synonyms unified, fillers stripped."""
    return strip_fillers(canonical(clean(text)))


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


@lru_cache(maxsize=1)
def _base_segmenter():
    """The jieba dictionary, loaded once per process (~0.5 s), plus our canonical words."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for word in SYNONYMS:
        tokenizer.add_word(word)
    return tokenizer


def make_segmenter(domain_words=()):
    """A jieba tokenizer of its own that keeps `domain_words` (a KB's keywords) whole."""
    import jieba

    base = _base_segmenter()
    tokenizer = jieba.Tokenizer()
    tokenizer.FREQ, tokenizer.total, tokenizer.initialized = dict(base.FREQ), base.total, True
    for word in map(normalize, domain_words):
        if len(tokens(word)) > 1:
            tokenizer.add_word(word)
    return tokenizer


def words(text: str, segmenter=None) -> list[str]:
    """A normalised text cut into words: jieba for Han runs, Latin/digit runs kept whole."""
    segmenter = segmenter or _base_segmenter()
    out: list[str] = []
    for chunk in _CHUNK_RE.findall(text):
        if chunk[0].isascii():
            out.append(chunk)
        else:
            out.extend(segmenter.lcut(chunk, HMM=False))
    return out


def tokens(text: str) -> list[str]:
    """A normalised text as tokens: single Han characters and whole Latin/digit runs."""
    return _TOKEN_RE.findall(text)


def light_mask(text: str, segmenter=None) -> list[bool]:
    """Per token: True when it is (part of) a light character or word an intent need not cover."""
    return light_of_words(words(text, segmenter))


def light_of_words(cut: list[str]) -> list[bool]:
    """Per token of already segmented words: is it light (see light_mask)?"""
    mask: list[bool] = []
    for word in cut:
        size = len(tokens(word))
        light = word in LIGHT_WORDS or all(ch in LIGHT_CHARS for ch in word)
        mask += [light] * size
    return mask


def syllables(text: str, prefer: frozenset[str] = frozenset()) -> list[str]:
    """Per token: a Han character's reading (preferring `prefer`), else '#' + the token."""
    out = []
    for tok in tokens(text):
        if not is_han(tok):
            out.append("#" + tok)  # own namespace: the word "si" is not the syllable of 是
            continue
        readings = char_readings(tok)
        out.append(next((r for r in readings if r in prefer), readings[0]))
    return out


def _code(token: str, learn: bool, spare: dict[str, str]) -> str:
    """A single private-use character standing for one syllable or word.

    Known tokens have a stable code per process. New ones are remembered only when `learn`
    (knowledge-base texts); a question's unknown tokens get throw-away codes from another
    plane, so what users type never grows the table and never equals a KB token.
    """
    code = _TOKEN_CODES.get(token)
    if code is not None:
        return code
    if not learn:
        return spare.setdefault(token, chr(_SPARE_BASE + len(spare)))
    with _CODES_LOCK:
        return _TOKEN_CODES.setdefault(token, chr(_PUA_BASE + len(_TOKEN_CODES)))


def sound_key(text: str, prefer: frozenset[str] = frozenset(), learn: bool = True) -> str:
    """The text as one character per token (syllable or word), so homophones compare equal."""
    spare: dict[str, str] = {}
    return "".join(_code(t, learn, spare) for t in syllables(text, prefer))


def primary_readings(texts) -> frozenset[str]:
    """The most common reading of every Han character in `texts` (a KB's preferred readings)."""
    return frozenset(char_readings(ch)[0] for text in texts for ch in text if is_han(ch))
