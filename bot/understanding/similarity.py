"""Similarity of a question to each intent's own texts: fuzzy sound-key ratio × word coverage.

Every text is normalised (textnorm: NFKC, traditional→simplified, lexicon synonyms, fillers removed)
and turned into a sound key (one character per syllable or word). Per knowledge base we precompute
the keys of every intent's question, title and `similar` questions (the choices), each intent's
vocabulary (the token bigrams of its choices, keywords, concept variants and, for FAQs, its answer
body) and its anchors (`keywords`).

`features` gives, per intent: `sim` — rapidfuzz WRatio to the intent's nearest choice; `cov` — the
weighted share of the question's own words (jieba, KB keywords as user words) that the intent's
vocabulary contains (a word of 2+ tokens must occur whole, a one-token word must form a known bigram
with a neighbour; light words need not be covered; an uncovered run of 2+ tokens is an unknown term
and weighs RUN_WEIGHT, TAIL_WEIGHT when it ends the question); `anchor` — whether it touches a
keyword; `exact` — equal to a choice after normalisation. `score` turns them into 0..100 for
intents that declare no `needs` (see bot.understanding.matcher).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from itertools import groupby

from rapidfuzz import fuzz, process

from bot.understanding.textnorm import (is_light_word, make_segmenter, normalize, primary_readings, sound_key,
                                        word_keys, words)

RUN_WEIGHT = 2.0  # weight of each token of an uncovered run of 2+ tokens (an unknown term)
TAIL_WEIGHT = 3.0  # ... when that run ends the question (the topic: 乐企联用怎么收费)
MAX_QUESTION_CHARS = 400  # a question is matched on its first 400 characters (WeChat: ≤ 2048 bytes)
SIMILARITY_CHARS = 120  # ... and compared with example sentences on its first 120: WRatio's partial
# alignment costs ~3 ms on a 350-character message (bench/match_bench.py) and says little there
PREFILTER_LIMIT = 40  # choices kept by the rapidfuzz pass before intent-level scoring
FULL_SCAN_LIMIT = 1500  # up to this many choices, every one is scored; above, a shortlist
SHORTLIST = 300  # choices shortlisted by shared bigrams (a plain-ratio pass over all choices cost 0.7 ms and
# changed no ranking on bench/match_bench.py: own intent first in 99.8 % either way)
_TEMPLATE_TAG = re.compile(r"\{[%{#].*?[%}#]\}")


@dataclass(frozen=True)
class Query:
    """A question prepared for scoring."""

    key: str  # sound key, one character per token
    light: tuple[bool, ...]  # per token: light (need not be covered)
    content: str  # the key without light tokens
    word_sizes: tuple[int, ...]  # tokens per word (jieba segmentation), in order


def bigrams(key: str) -> set[str]:
    """All adjacent token pairs of a key (a one-token key is kept as its own gram)."""
    if len(key) < 2:
        return {key} if key else set()
    return {key[i:i + 2] for i in range(len(key) - 1)}


def intent_body(kb, intent_id: str) -> str:
    """A FAQ's answer body as plain text (template tags dropped); small talk has none."""
    if kb.intents[intent_id].kind != "faq":
        return ""
    return _TEMPLATE_TAG.sub(" ", kb.sources.get(intent_id, (None, 0, ""))[2])


class Similarity:
    """Fuzzy, pinyin-aware similarity of questions to the intents of one knowledge base."""

    def __init__(self, kb, extra_vocabulary: dict[str, list[str]]):
        """Precompute choices, vocabularies and anchors; `extra_vocabulary` adds words per intent."""
        self.segmenter = make_segmenter(kw for i in kb.intents.values() for kw in i.keywords)
        texts = {iid: [i.question, i.title, *i.similar] for iid, i in kb.intents.items()}
        bodies = {iid: intent_body(kb, iid) for iid in kb.intents}
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
            extra = [*intent.keywords, *bodies[iid].split(), *extra_vocabulary.get(iid, ())]
            self.vocab[iid] = self._vocabulary([*texts[iid], *extra])
        self._build_index()

    def _vocabulary(self, texts: list[str]) -> tuple[set[str], str]:
        """Token bigrams of texts (with and without light tokens) and all their keys joined."""
        grams: set[str] = set()
        keys: list[str] = []
        for query in map(self.prepare, texts):
            grams |= bigrams(query.key) | bigrams(query.content)
            keys += [query.key, query.content]
        return grams, "|".join(keys)

    def prepare(self, text: str, learn: bool = True) -> Query:
        """Normalise a raw text into its sound key, light-token mask and word cuts."""
        cut = words(normalize(text), self.segmenter)
        keys = word_keys(cut, self.prefer, learn)
        light = tuple(flag for word, k in zip(cut, keys) for flag in [is_light_word(word)] * len(k))
        key = "".join(keys)
        return Query(key, light, "".join(k for k, is_light in zip(key, light) if not is_light),
                     tuple(len(k) for k in keys))

    def covered(self, query: Query, intent_id: str) -> list[bool | None]:
        """Per token: None when light, else whether the intent's vocabulary covers it."""
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
        """Weighted share of the question's non-light tokens the intent's vocabulary covers."""
        return weighted_coverage([f for f in self.covered(query, intent_id) if f is not None])

    def anchored(self, query: Query, intent_id: str) -> bool:
        """True when the question touches one of the intent's keywords (or it has none)."""
        anchors = self.anchors[intent_id]
        return not anchors or any(a in query.key or a in query.content for a in anchors)

    def exact_intent(self, text: str) -> str | None:
        """The intent whose own question (title, similar) this text is, after normalisation."""
        return self.exact.get(sound_key(normalize(text[:SIMILARITY_CHARS]), self.prefer, learn=False))

    def features(self, text: str, skip_coverage: frozenset[str] = frozenset()) -> tuple[Query, dict[str, dict]]:
        """Per candidate intent: best choice similarity, coverage (not for `skip_coverage`), anchoring, exact."""
        query = self.prepare(text[:SIMILARITY_CHARS], learn=False)
        if not query.key:
            return query, {}
        shortlist = self._shortlist(query)
        choices = self.choice_keys if shortlist is None else [self.choice_keys[i] for i in shortlist]
        best: dict[str, float] = {}
        for _c, sim, pos in process.extract(query.key, choices, scorer=fuzz.WRatio, limit=PREFILTER_LIMIT):
            iid = self.choice_intents[pos if shortlist is None else shortlist[pos]]
            best[iid] = max(sim, best.get(iid, 0.0))
        exact = self.exact.get(query.key)
        return query, {iid: {"sim": sim, "cov": None if iid in skip_coverage else self.coverage(query, iid),
                             "exact": iid == exact, "anchor": self.anchored(query, iid)} for iid, sim in best.items()}

    def _build_index(self) -> None:
        """Inverted index token bigram → choices, for knowledge bases too big to scan whole."""
        self.postings: dict[str, list[int]] = {}
        if len(self.choice_keys) <= FULL_SCAN_LIMIT:
            return
        for idx, key in enumerate(self.choice_keys):
            for gram in bigrams(key):
                self.postings.setdefault(gram, []).append(idx)

    def _shortlist(self, query: Query) -> list[int] | None:
        """Choices sharing the most bigrams with the question (None: scan every choice)."""
        if not self.postings:
            return None
        counts: Counter = Counter()
        for gram in bigrams(query.key) | bigrams(query.content):
            counts.update(self.postings.get(gram, ()))
        return sorted(i for i, _ in counts.most_common(SHORTLIST))

    @staticmethod
    def score(f: dict) -> float:
        """An intent's score (0..100) from similarity alone: the rule for intents without `needs`."""
        if f["exact"]:
            return 100.0
        if not f["anchor"]:
            return 0.0
        return min(90.0, f["cov"] * (40.0 + 0.5 * f["sim"]))


def weighted_coverage(flags: list[bool]) -> float:
    """Covered share of tokens, an uncovered run of 2+ tokens weighing RUN_WEIGHT (TAIL_WEIGHT last)."""
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
