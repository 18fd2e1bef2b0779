"""Match a customer's question to an intent: rank, then verify, then answer / clarify / fall back.

1. Rank (bot.understanding.similarity): fuzzy sound-key similarity of the question to every
   intent's own texts and the coverage of its words — finds the candidates, handles typos and
   voice (乐琪 = 乐企, leqi = 乐企).
2. Verify (bot.understanding.verify): an intent whose answer file declares `needs` is the
   question's need only when one line of its needs is mentioned within one or two adjacent
   clauses, none of its `excludes` is mentioned, and the words around the need are the intent's
   own (coverage ≥ MIN_COVERAGE for FAQs, ≥ MIN_SMALLTALK_COVERAGE of the whole message for small
   talk). Its score is then VERIFIED_BASE + COVERAGE_WEIGHT × coverage (similarity is not needed, so
   it is only computed for intents without needs and for `explain`);
   a need that is not there scores 0 however similar the question sounds (乐企是什么意思 shares
   words with both FAQs and is neither). Intents without `needs` keep the similarity score.
3. Decide: top < ANSWER_THRESHOLD → "none" (fallback, logged for authors); a lead < CLARIFY_MARGIN
   over the runner-up → "clarify"; otherwise "answer".

A question wrapped in courtesy (老师你好……谢谢 / 急急急) that matches nothing is tried once more
without it. Thresholds: see the constants (measured with `python -m bot eval` on the dev set, the
hard set and tests/fixtures/heldout/set-a.jsonl; README "Matching").
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from bot.config import MatchingConfig
from bot.kb import KnowledgeBase
from bot.understanding.lexicon import lexicon
from bot.understanding.similarity import MAX_QUESTION_CHARS, Similarity
from bot.understanding.textnorm import clean, sound_key, strip_courtesy
from bot.understanding.verify import Verdict, Verifier

ANSWER_THRESHOLD = 46.0
CLARIFY_MARGIN = 8.0
MAX_CANDIDATES = 5
VERIFIED_BASE = 50.0  # a verified need scores at least this (above ANSWER_THRESHOLD)
COVERAGE_WEIGHT = 40.0
MIN_COVERAGE = 0.5  # share of the words around an FAQ need that must be the FAQ's own
MIN_SMALLTALK_COVERAGE = 0.6  # share of a whole message that must be small talk to be small talk
MATCH_CACHE = 8192  # verdicts kept per knowledge base, by exact text (你好/转人工/谢谢 recur; ~1 KiB each)


@dataclass(frozen=True)
class Match:
    """The matcher's verdict on one question."""

    decision: str  # "answer" | "clarify" | "none"
    intent: str | None  # best intent when decision == "answer", else None
    score: float  # top score, 0..100
    candidates: tuple[tuple[str, float], ...]  # (intent id, score), best first, at most 5


@dataclass(frozen=True)
class Signals:
    """Everything one scoring pass saw, per intent (for `explain`)."""

    text: str
    features: dict[str, dict]  # similarity features of the ranked intents
    verdicts: dict[str, Verdict]  # intents with needs
    scores: dict[str, float]
    match: Match


def extra_vocabulary(kb: KnowledgeBase) -> dict[str, list[str]]:
    """Per intent: the variants of its own concepts and of the lexicon concepts its needs name."""
    lex = lexicon().concepts
    out: dict[str, list[str]] = {}
    for iid, intent in kb.intents.items():
        own = {c.name: c for c in intent.concepts}
        words: list[str] = []
        for name in {n for alt in intent.needs + intent.follow_ups for n in alt if not n.startswith("-")} | set(own):
            concept = own.get(name) or lex[name]
            words += [v for v in (*concept.variants, *concept.context) if "…" not in v and "..." not in v]
        out[iid] = words
    return out


class Matcher:
    """Rank-then-verify matcher over one knowledge base."""

    def __init__(self, kb: KnowledgeBase, answer_threshold: float = 0.0, clarify_margin: float = 0.0):
        """Precompute similarity choices and concept patterns; 0 thresholds mean the defaults."""
        self.answer_threshold = answer_threshold or ANSWER_THRESHOLD
        self.clarify_margin = clarify_margin or CLARIFY_MARGIN
        self.similarity = Similarity(kb, extra_vocabulary(kb))
        prefer = self.similarity.prefer
        self.verifier = Verifier(kb, self.similarity, lambda text: sound_key(clean(text), prefer))
        self.by_similarity = any(not (i.needs or i.follow_ups) for i in kb.intents.values())
        self.with_needs = frozenset(iid for iid, i in kb.intents.items() if i.needs or i.follow_ups)
        self.kinds = {iid: i.kind for iid, i in kb.intents.items()}
        self.handoffs = frozenset(iid for iid, i in kb.intents.items() if i.then == "handoff" and i.kind != "faq")
        self.floors = {iid: i.min_coverage or (MIN_COVERAGE if i.kind == "faq" else MIN_SMALLTALK_COVERAGE)
                       for iid, i in kb.intents.items()}
        self._cached = lru_cache(maxsize=MATCH_CACHE)(self._decide_text)

    def match(self, text: str) -> Match:
        """Score `text` against the intents and decide answer / clarify / none (the same text, the
        same verdict: kept per matcher, so a reloaded knowledge base starts afresh)."""
        return self._cached(text)

    def _decide_text(self, text: str) -> Match:
        """`match` without the cache."""
        return self.signals(text, detail=False).match

    def signals(self, text: str, detail: bool = True) -> Signals:
        """One scoring pass, and a second without courtesy words when the first found nothing.

        `detail` also computes what only an explanation shows (every intent's similarity, the closest
        `needs` line of an intent that was not verified); the decision is the same either way.
        """
        first = self._pass(text, detail)
        if first.match.decision == "none":
            bare = strip_courtesy(text)
            if bare and bare != clean(text):
                return self._pass(bare, detail)
        return first

    def _pass(self, text: str, detail: bool) -> Signals:
        """Rank every intent, verify those with needs, decide."""
        text = text[:MAX_QUESTION_CHARS]
        feats = self.similarity.features(text, self.with_needs)[1] if detail or self.by_similarity else {}
        analysis = self.verifier.analyse(text) if self.with_needs else None  # no concepts: similarity alone
        verdicts = ({iid: self.verifier.verdict(analysis, iid, detail) for iid in self.with_needs}
                    if analysis is not None and analysis.key else {})
        scores = {iid: round(self._score(iid, feats.get(iid), verdicts.get(iid)), 1)
                  for iid in set(feats) | set(verdicts)}
        ranked = sorted(scores.items(), key=lambda p: (-self._answerable_faq(p, verdicts), -p[1], p[0]))
        match = self.decide(tuple(p for p in ranked[:MAX_CANDIDATES] if p[1] > 0), verdicts)
        exact = self.similarity.exact_intent(text)
        if exact is not None:  # the author's own words for this intent
            rest = tuple(c for c in match.candidates if c[0] != exact)[:MAX_CANDIDATES - 1]
            match = Match("answer", exact, 100.0, ((exact, 100.0), *rest))
        topic = self.verifier.bare_topic(analysis) if match.decision == "none" and analysis and analysis.key else []
        if len(topic) > 1:  # only a topic several FAQs share: ask which one
            match = Match("clarify", None, self.answer_threshold, tuple((i, self.answer_threshold) for i in topic))
        return Signals(text, feats, verdicts, scores, match)

    def states_need(self, text: str, intent_id: str) -> bool:
        """Whether `text` states the need of `intent_id` (needs verified, coverage enough), exactness aside."""
        verdict = self.verifier.verdict(self.verifier.analyse(text[:MAX_QUESTION_CHARS]), intent_id)
        return self._score(intent_id, None, verdict) >= self.answer_threshold

    def _answerable_faq(self, pair: tuple[str, float], verdicts: dict[str, Verdict]) -> bool:
        """An FAQ that reaches the threshold ranks before small talk (你好，乐企通道不显示 is the FAQ), and so
        does an explicit request for a handoff (its `needs`, not a mere mention: …请马上给我转一个真人客服)."""
        intent_id, score = pair
        if score < self.answer_threshold:
            return False
        verdict = verdicts.get(intent_id)
        explicit = self.handoffs.__contains__(intent_id) and verdict is not None and not verdict.follow_up
        return self.kinds[intent_id] == "faq" or explicit

    def _score(self, intent_id: str, feature: dict | None, verdict: Verdict | None) -> float:
        """0..100 for one intent: verified need, or similarity alone for intents without needs."""
        if feature and feature["exact"]:
            return 100.0
        if intent_id not in self.with_needs:
            return Similarity.score(feature) if feature else 0.0
        if verdict is None or verdict.status != "verified":
            return 0.0
        floor = self.floors[intent_id]
        if verdict.follow_up and self.kinds[intent_id] != "faq":  # 好的 / 客服 alone: little else
            floor = max(floor, MIN_SMALLTALK_COVERAGE)
        if verdict.coverage < floor:
            return COVERAGE_WEIGHT * verdict.coverage  # the need is there, the words are someone else's
        return VERIFIED_BASE + COVERAGE_WEIGHT * verdict.coverage

    def decide(self, candidates: tuple[tuple[str, float], ...], verdicts: dict[str, Verdict] | None = None) -> Match:
        """Turn ranked candidates into a decision; an answerable FAQ is only ever unsure against another FAQ."""
        top = candidates[0][1] if candidates else 0.0
        if top < self.answer_threshold:
            return Match("none", None, top, candidates)
        verdicts = verdicts or {}
        first = self._answerable_faq(candidates[0], verdicts)
        rivals = [c for c in candidates[1:] if not first or self._answerable_faq(c, verdicts)]
        runner_up = rivals[0][1] if rivals else 0.0
        if top - runner_up < self.clarify_margin:
            return Match("clarify", None, top, candidates)
        return Match("answer", candidates[0][0], top, candidates)


def attach_matcher(kb: KnowledgeBase, matching: MatchingConfig | None = None) -> KnowledgeBase:
    """Build a Matcher for kb, set kb.matcher, return kb."""
    matching = matching or MatchingConfig()
    kb.matcher = Matcher(kb, matching.answer_threshold, matching.clarify_margin)
    return kb

