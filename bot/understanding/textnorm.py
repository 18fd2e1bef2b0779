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

from bot.understanding.lexicon import lexicon
from bot.understanding.pinyin import char_readings, fuzzy, split_pinyin

_LEXICON = lexicon()
FILLERS = _LEXICON.fillers
_FILLER_RE = re.compile("|".join(sorted(map(re.escape, FILLERS), key=len, reverse=True)))
COURTESY = _LEXICON.courtesy
_COURTESY_RE = re.compile("|".join(sorted(map(re.escape, COURTESY), key=len, reverse=True)))
_EXACT = _LEXICON.exact_chars
_NOISE_RE = re.compile("|".join(
    re.escape(w) if not w.isascii() else rf"(?<![a-z]){re.escape(w)}(?![a-z])"
    for w in sorted(_LEXICON.noise, key=len, reverse=True)) or "(?!)", re.IGNORECASE)
# Everyday ways of saying the same thing, rewritten to one canonical word before similarity
# (concepts with a `canonical` in lexicon.yaml); longest first, canonical words kept whole.
_SYNONYM_OF = _LEXICON.synonyms()
_SYNONYM_RE = re.compile("|".join(sorted(map(re.escape, _SYNONYM_OF), key=len, reverse=True)))
LIGHT_CHARS = _LEXICON.light_chars
LIGHT_WORDS = _LEXICON.light_words
# A token is one Han character or one run of Latin letters/digits (an English word, an ID).
_TOKEN_RE = re.compile(r"[a-z0-9_]+|\S")
_CHUNK_RE = re.compile(r"[a-z0-9_]+|[^a-z0-9_\s]+")
_LATIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
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
    """NFKC, traditional→simplified, lower-case, only letters/digits/CJK/underscore kept.

    Latin words stay apart: whatever stood between two of them becomes one space
    ("human agent" stays two words; "乐企 通道" becomes 乐企通道).
    """
    out: list[str] = []
    gap = False
    for ch in _t2s().convert(unicodedata.normalize("NFKC", text or "").lower()):
        if ch.isalnum() or ch == "_":
            if gap and out and out[-1] in _LATIN and ch in _LATIN:
                out.append(" ")
            out.append(ch)
            gap = False
        else:
            gap = True
    return "".join(out)


def drop_noise(text: str) -> str:
    """The text without the lexicon's affectionate sounds (么么哒, mua): they say nothing."""
    return _NOISE_RE.sub(" ", text) if text else text


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


@lru_cache(maxsize=1)
def _base_segmenter():
    """The jieba dictionary, loaded once per process (~0.5 s), plus our canonical words."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for word in set(_SYNONYM_OF.values()):
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


def is_light_word(word: str) -> bool:
    """True for a function word or a word made only of function characters."""
    return word in LIGHT_WORDS or all(ch in LIGHT_CHARS for ch in word)


def light_of_words(cut: list[str]) -> list[bool]:
    """Per token of already segmented words: is it light (see light_mask)?"""
    return [flag for word in cut for flag in [is_light_word(word)] * len(tokens(word))]


def syllables(text: str, prefer: frozenset[str] = frozenset(), learn: bool = True,
              also_pinyin: frozenset[str] = frozenset()) -> list[str]:
    """Per token: a Han character's reading (preferring `prefer`), else '#' + the word.

    A customer's Latin run (learn=False) that the knowledge base never uses as a word is read
    as pinyin when it spells two or more syllables (leqi → le qi = 乐企), or one syllable next to
    such a run (bu next to xianshi; `also_pinyin` names them across words); the KB's own Latin
    words (cache, key, bdm_cache_clear) stay words.
    """
    out: list[str] = []
    for tok in tokens(text):
        if tok in _EXACT:
            out.append("=" + tok)  # its own token: 那 does not sound like it
            continue
        if is_han(tok):
            readings = char_readings(tok)
            out.append(next((r for r in readings if r in prefer), readings[0]))
            continue
        spelled = None
        if not learn and ("#" + tok not in _TOKEN_CODES or tok in also_pinyin):
            spelled = split_pinyin(tok) or (split_pinyin(tok, minimum=1) if tok in also_pinyin else None)
            spelled = spelled or near_word(tok)
        out.extend(spelled or ("#" + tok,))  # own namespace: the word "si" is not the syllable of 是
    return out


def _pinyin_neighbours(texts: list[str]) -> frozenset[str]:
    """One-syllable Latin words in a run of Latin words that holds a pinyin word ("tongdao bu xianshi",
    "ID tian fan le"): they are pinyin too; the knowledge base's own words (id, log) stay words."""
    toks = [t for text in texts for t in tokens(text)]
    out: set[str] = set()
    run: list[str] = []
    for tok in [*toks, "。"]:
        if not is_han(tok) and tok != "。":
            run.append(tok)
            continue
        if _spelled_apart(run) or any(split_pinyin(t) is not None and "#" + t not in _TOKEN_CODES for t in run):
            out.update(t for t in run if "#" + t not in _TOKEN_CODES)
            if _mostly_pinyin(run):  # "mei you leqi tongdao": the KB's word "you" is 有 here
                out.update(t for t in run if split_pinyin(t, minimum=1) == (t,))
        run = []
    return frozenset(out)


SPELLED_APART = 4  # "shu dian pei zhi …": this many one-syllable words in a row are pinyin, not English


def _spelled_apart(run: list[str]) -> bool:
    """A run of at least SPELLED_APART words that are all single pinyin syllables."""
    return len(run) >= SPELLED_APART and all(split_pinyin(t, minimum=1) == (fuzzy(t),) for t in run)


def _mostly_pinyin(run: list[str]) -> bool:
    """True when more than half the words of a Latin run are pinyin the KB does not use as words."""
    spelled = sum(split_pinyin(t, minimum=1) is not None and "#" + t not in _TOKEN_CODES for t in run)
    return spelled * 2 > len(run)


LONG_WORD = 8  # a Latin word this long with a typo (fillconbineleqiinfo) is read as the KB word it is closest to
WORD_TYPOS = 2  # ... at most this many edits away


@lru_cache(maxsize=4096)
def _near_word(token: str, known: int) -> tuple[str, ...] | None:
    """The knowledge base's long Latin word `token` misspells (cached per size of the code table)."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    words_known = [w for w in _TOKEN_CODES if w.startswith("#") and len(w) > LONG_WORD]
    found = process.extractOne("#" + token, words_known, scorer=Levenshtein.distance, score_cutoff=WORD_TYPOS)
    return (found[0],) if found else None


def near_word(token: str) -> tuple[str, ...] | None:
    """(KB word,) for a long misspelled Latin word, else None."""
    return _near_word(token, len(_TOKEN_CODES)) if len(token) >= LONG_WORD else None


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
    return "".join(word_keys([text], prefer, learn))


def word_keys(texts: list[str], prefer: frozenset[str] = frozenset(), learn: bool = True) -> list[str]:
    """The sound key of each text, sharing one set of throw-away codes (one question's words)."""
    spare: dict[str, str] = {}
    near = frozenset() if learn else _pinyin_neighbours(texts)
    return ["".join(_code(t, learn, spare) for t in syllables(text, prefer, learn, near)) for text in texts]


def primary_readings(texts) -> frozenset[str]:
    """The most common reading of every Han character in `texts` (a KB's preferred readings)."""
    return frozenset(char_readings(ch)[0] for text in texts for ch in text if is_han(ch))
