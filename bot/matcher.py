"""Match a customer's question to an FAQ intent: answer, ask to clarify, or fall back.

Method: every text is normalised (bot.textnorm: NFKC, traditional→simplified, everyday synonyms
unified, filler words removed) and turned into a sound key (one character per syllable, pinyin
read character by character with heteronyms), so typos such as 乐琪/樂企/乐企连用 equal 乐企联用.
Per knowledge base we precompute the keys of every intent's question, title and `similar`
questions (the choices), each intent's vocabulary (the token bigrams of its choices, keywords and,
for FAQs, its answer body) and its anchors (its `keywords`).

A question's score for an intent (0..100):
- 100 when it equals one of the intent's choices after normalisation;
- 0 when the intent has keywords and the question touches none of them (乐企/通道/缓存 …);
- otherwise coverage × (40 + 0.5 × similarity), at most 90, where similarity is rapidfuzz WRatio
  to the intent's nearest choice and coverage is the weighted share of the question's own words
  (jieba, with the KB's keywords as user words) that the intent's texts contain: a word of 2+
  characters must occur whole, a one-character word must form a known bigram with a neighbour;
  function words (light) need not be covered. An uncovered run of 2+ tokens is an unknown term
  and weighs double, triple when it ends the question (its topic) — this rejects questions that
  only share words with an FAQ (乐企联用怎么收费: 收费 is in no intent's texts).

Decision from the top score and its margin over the runner-up:
- top < ANSWER_THRESHOLD                               → "none" (fallback, logged as unanswered);
- top ≥ ANSWER_THRESHOLD and margin < CLARIFY_MARGIN    → "clarify" (offer the close candidates);
- otherwise                                             → "answer".
Defaults measured on shared/eval/intents.jsonl (dev, 108 rows) and
tests/fixtures/heldout_intents.jsonl (our own, 73 rows): right answers score ≥ 49 (one dev row
at 42), out-of-scope questions ≤ 31 (dev) and ≤ 44 (held out: 乐企联用支持哪些发票类型), so the
threshold sits at 46; right answers lead the runner-up by ≥ 15, so a margin below 8 means two
intents are genuinely close and we ask. Re-measure with `python -m bot eval FILE` after adding FAQs.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from itertools import groupby

from rapidfuzz import fuzz, process

from bot.config import MatchingConfig
from bot.kb import KnowledgeBase
from bot.textnorm import (clean, light_of_words, make_segmenter, normalize, primary_readings, sound_key,
                          strip_courtesy, tokens, words)

ANSWER_THRESHOLD = 46.0
CLARIFY_MARGIN = 8.0
RUN_WEIGHT = 2.0  # weight of each token of an uncovered run of 2+ tokens (an unknown term)
TAIL_WEIGHT = 3.0  # ... when that run ends the question (the topic: 乐企联用怎么收费)
MAX_CANDIDATES = 5
MAX_QUESTION_CHARS = 400  # a question is matched on its first 400 characters (WeChat: ≤ 2048 bytes)
PREFILTER_LIMIT = 40  # choices kept by the rapidfuzz pass before intent-level scoring
FULL_SCAN_LIMIT = 1500  # up to this many choices, every one is scored; above, a shortlist
SHORTLIST = 300  # choices shortlisted by shared bigrams (plus a quarter as many by plain ratio)
_TEMPLATE_TAG = re.compile(r"\{[%{#].*?[%}#]\}")


@dataclass(frozen=True)
class Match:
    """The matcher's verdict on one question."""

    decision: str  # "answer" | "clarify" | "none"
    intent: str | None  # best intent when decision == "answer", else None
    score: float  # top score, 0..100
    candidates: tuple[tuple[str, float], ...]  # (intent id, score), best first, at most 5


@dataclass(frozen=True)
class Query:
    """A question prepared for scoring."""

    key: str  # sound key, one character per token
    light: tuple[bool, ...]  # per token: light (need not be covered)
    content: str  # the key without light tokens
    word_sizes: tuple[int, ...]  # tokens per word (jieba segmentation), in order


def _bigrams(key: str) -> set[str]:
    """All adjacent token pairs of a key (a one-token key is kept as its own gram)."""
    if len(key) < 2:
        return {key} if key else set()
    return {key[i:i + 2] for i in range(len(key) - 1)}


def _content(key: str, light) -> str:
    """The key without its light tokens."""
    return "".join(k for k, is_light in zip(key, light) if not is_light)


class Matcher:
    """Fuzzy, pinyin-aware question matcher over one knowledge base."""

    def __init__(self, kb: KnowledgeBase, answer_threshold: float = 0.0, clarify_margin: float = 0.0):
        """Precompute choices, vocabularies and anchors of kb; 0 thresholds mean the defaults."""
        self.answer_threshold = answer_threshold or ANSWER_THRESHOLD
        self.clarify_margin = clarify_margin or CLARIFY_MARGIN
        self.segmenter = make_segmenter(kw for i in kb.intents.values() for kw in i.keywords)
        texts = {iid: [i.question, i.title, *i.similar] for iid, i in kb.intents.items()}
        bodies = {iid: self._body(kb, iid) for iid in kb.intents}
        self.prefer = primary_readings(normalize(t) for ts in [*texts.values(), bodies.values()] for t in ts)
        self.choice_keys: list[str] = []
        self.choice_intents: list[str] = []
        self.exact: dict[str, str] = {}
        self.vocab: dict[str, tuple[set[str], str]] = {}
        self.anchors: dict[str, tuple[str, ...]] = {}
        for iid, intent in kb.intents.items():
            keys = sorted({q.key for q in map(self.prepare, texts[iid])} - {""})
            self.choice_keys += keys
            self.choice_intents += [iid] * len(keys)
            self.exact.update({k: iid for k in keys if k not in self.exact})
            self.anchors[iid] = tuple(k for k in (self.prepare(kw).key for kw in intent.keywords) if k)
            extra = [*intent.keywords, *bodies[iid].split()]
            self.vocab[iid] = self._vocabulary([*texts[iid], *extra])
        self._build_index()

    @staticmethod
    def _body(kb: KnowledgeBase, intent_id: str) -> str:
        """A FAQ's answer body as plain text (template tags dropped); small talk has none."""
        if kb.intents[intent_id].kind != "faq":
            return ""
        return _TEMPLATE_TAG.sub(" ", kb.sources.get(intent_id, (None, 0, ""))[2])

    def _vocabulary(self, texts: list[str]) -> tuple[set[str], str]:
        """Token bigrams of texts (with and without light tokens) and all their keys joined."""
        grams: set[str] = set()
        keys: list[str] = []
        for query in map(self.prepare, texts):
            grams |= _bigrams(query.key) | _bigrams(query.content)
            keys += [query.key, query.content]
        return grams, "|".join(keys)

    def prepare(self, text: str, learn: bool = True) -> Query:
        """Normalise a raw text into its sound key, light-token mask and word cuts."""
        norm = normalize(text)
        key = sound_key(norm, self.prefer, learn)
        cut = words(norm, self.segmenter)
        light = tuple(light_of_words(cut))
        sizes = tuple(len(tokens(w)) for w in cut)
        return Query(key, light, _content(key, light), sizes)

    def _covered(self, query: Query, intent_id: str) -> list[bool | None]:
        """Per token: None when light, else whether the intent's vocabulary covers it.

        A word of several tokens is covered when it occurs whole in the intent's texts (so
        开通 is not covered by 联用|开票); a one-character word when it forms a known bigram
        with a neighbour.
        """
        grams, text = self.vocab[intent_id]
        flags: list[bool | None] = []
        start = 0
        for size in query.word_sizes:
            end = start + size
            if all(query.light[start:end]):
                flags += [None] * size
            elif size > 1:
                flags += [query.key[start:end] in text] * size
            else:
                flags.append(self._pair_covered(query, start, grams))
            start = end
        return flags

    @staticmethod
    def _pair_covered(query: Query, i: int, grams: set[str]) -> bool:
        """Whether token i forms a known bigram with a neighbour (raw or skipping light tokens)."""
        key, content = query.key, query.content
        pos = i - sum(query.light[:i])
        pairs = (key[i - 1:i + 1] if i else "", key[i:i + 2],
                 content[pos - 1:pos + 1] if pos else "", content[pos:pos + 2])
        return any(len(p) == 2 and p in grams for p in pairs) or key[i] in grams

    def coverage(self, query: Query, intent_id: str) -> float:
        """Weighted share of the question's non-light tokens that the intent's vocabulary covers.

        An uncovered run of two or more tokens is an unknown term (收费, 注册, 限额): each of its
        tokens weighs RUN_WEIGHT, so one unknown topic word outweighs a stray character.
        """
        flags = [f for f in self._covered(query, intent_id) if f is not None]
        if not flags:
            return 0.0
        missing = 0.0
        runs = [(c, len(list(g))) for c, g in groupby(flags)]
        for n, (is_covered, run) in enumerate(runs):
            if not is_covered:
                weight = TAIL_WEIGHT if n == len(runs) - 1 else RUN_WEIGHT
                missing += run * (weight if run > 1 else 1.0)
        covered = sum(flags)
        return covered / (covered + missing)

    def anchored(self, query: Query, intent_id: str) -> bool:
        """True when the question touches one of the intent's keywords (or it has none)."""
        anchors = self.anchors[intent_id]
        return not anchors or any(a in query.key or a in query.content for a in anchors)

    def features(self, text: str) -> tuple[Query, dict[str, dict]]:
        """Per candidate intent: best choice similarity, coverage, anchoring, exact match."""
        query = self.prepare(text[:MAX_QUESTION_CHARS], learn=False)
        if not query.key:
            return query, {}
        shortlist = self._shortlist(query)
        choices = self.choice_keys if shortlist is None else [self.choice_keys[i] for i in shortlist]
        best: dict[str, float] = {}
        for _c, sim, pos in process.extract(query.key, choices, scorer=fuzz.WRatio, limit=PREFILTER_LIMIT):
            iid = self.choice_intents[pos if shortlist is None else shortlist[pos]]
            best[iid] = max(sim, best.get(iid, 0.0))
        exact = self.exact.get(query.key)
        return query, {iid: {"sim": sim, "cov": self.coverage(query, iid), "exact": iid == exact,
                             "anchor": self.anchored(query, iid)} for iid, sim in best.items()}

    def _build_index(self) -> None:
        """Inverted index token bigram → choices, for knowledge bases too big to scan whole."""
        self.postings: dict[str, list[int]] = {}
        if len(self.choice_keys) <= FULL_SCAN_LIMIT:
            return
        for idx, key in enumerate(self.choice_keys):
            for gram in _bigrams(key):
                self.postings.setdefault(gram, []).append(idx)

    def _shortlist(self, query: Query) -> list[int] | None:
        """Choices sharing the most bigrams with the question (None: scan every choice)."""
        if not self.postings:
            return None
        counts: Counter = Counter()
        for gram in _bigrams(query.key) | _bigrams(query.content):
            counts.update(self.postings.get(gram, ()))
        cheap = process.extract(query.key, self.choice_keys, scorer=fuzz.ratio, limit=SHORTLIST // 4)
        return sorted({i for i, _ in counts.most_common(SHORTLIST)} | {i for _c, _s, i in cheap})

    @staticmethod
    def combine(f: dict) -> float:
        """One intent's score (0..100) from its features (see the module docstring)."""
        if f["exact"]:
            return 100.0
        if not f["anchor"]:
            return 0.0
        return min(90.0, f["cov"] * (40.0 + 0.5 * f["sim"]))

    def match(self, text: str) -> Match:
        """Score `text` against the intents and decide answer / clarify / none.

        A question wrapped in courtesy (老师你好…，谢谢 / 急急急 / 在线等) that matches nothing as
        written is tried once more without those words; a message of courtesy alone is not.
        """
        result = self._match(text)
        if result.decision == "none":
            bare = strip_courtesy(text)
            if bare and bare != clean(text):
                return self._match(bare)
        return result

    def _match(self, text: str) -> Match:
        """One scoring pass over the intents."""
        _query, feats = self.features(text)
        scored = sorted(((iid, round(self.combine(f), 1)) for iid, f in feats.items()), key=lambda p: -p[1])
        return self.decide(tuple(p for p in scored[:MAX_CANDIDATES] if p[1] > 0))

    def decide(self, candidates: tuple[tuple[str, float], ...]) -> Match:
        """Turn ranked candidates into a decision using the thresholds."""
        top = candidates[0][1] if candidates else 0.0
        if top < self.answer_threshold:
            return Match("none", None, top, candidates)
        runner_up = candidates[1][1] if len(candidates) > 1 else 0.0
        if top - runner_up < self.clarify_margin:
            return Match("clarify", None, top, candidates)
        return Match("answer", candidates[0][0], top, candidates)


def attach_matcher(kb: KnowledgeBase, matching: MatchingConfig | None = None) -> KnowledgeBase:
    """Build a Matcher for kb, set kb.matcher, return kb."""
    matching = matching or MatchingConfig()
    kb.matcher = Matcher(kb, matching.answer_threshold, matching.clarify_margin)
    return kb
