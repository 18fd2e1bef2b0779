"""Match a customer's question to an FAQ intent: answer, ask to clarify, or fall back.

Method: every text is normalised (bot.textnorm: NFKC, traditional→simplified, fillers removed) and
turned into a sound key (one character per syllable, heteronym-aware pinyin), so typos such as
乐琪/樂企/乐企连用 compare equal to 乐企联用. Per knowledge base we precompute the keys of every
intent's question, title and `similar` questions (the choices) and each intent's vocabulary: the
syllable bigrams of its choices, keywords and answer body.

A question's score for an intent (0..100) is its fuzzy similarity to the nearest choice
(rapidfuzz) times how well the intent's vocabulary covers the question's own key terms. Coverage
is what rejects out-of-scope questions that share words with an FAQ (乐企联用怎么收费: 收费 is
covered by no intent, so no intent scores high).

Decision, with the measured defaults below:
- top score < ANSWER_THRESHOLD                         → "none" (fallback);
- top score ≥ ANSWER_THRESHOLD, margin < CLARIFY_MARGIN → "clarify" (offer the close candidates);
- otherwise                                             → "answer".
"""
from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz import fuzz, process

from bot.config import MatchingConfig
from bot.kb import KnowledgeBase
from bot.textnorm import LIGHT_CHARS, normalize, primary_readings, sound_key

ANSWER_THRESHOLD = 55.0  # measured on the dev set, see module docstring
CLARIFY_MARGIN = 8.0
MAX_CANDIDATES = 5
PREFILTER_LIMIT = 40  # choices kept by the fast rapidfuzz pass before intent-level scoring


@dataclass(frozen=True)
class Match:
    """The matcher's verdict on one question."""

    decision: str  # "answer" | "clarify" | "none"
    intent: str | None  # best intent when decision == "answer", else None
    score: float  # top score, 0..100
    candidates: tuple[tuple[str, float], ...]  # (intent id, score), best first, at most 5


NO_MATCH = Match("none", None, 0.0, ())


def _bigrams(key: str) -> set[str]:
    """All adjacent syllable pairs of a sound key (a one-syllable key is its own gram)."""
    if len(key) < 2:
        return {key} if key else set()
    return {key[i:i + 2] for i in range(len(key) - 1)}


def _body_text(kb: KnowledgeBase, intent_id: str) -> str:
    """An intent's answer body as plain text (template tags dropped)."""
    source = kb.sources.get(intent_id, (None, 0, ""))[2]
    import re

    return re.sub(r"\{[%{#].*?[%}#]\}", " ", source)


class Matcher:
    """Fuzzy, pinyin-aware question matcher over one knowledge base."""

    def __init__(self, kb: KnowledgeBase, answer_threshold: float = 0.0, clarify_margin: float = 0.0):
        self.answer_threshold = answer_threshold or ANSWER_THRESHOLD
        self.clarify_margin = clarify_margin or CLARIFY_MARGIN
        texts = {iid: self._intent_texts(intent) for iid, intent in kb.intents.items()}
        bodies = {iid: _body_text(kb, iid) for iid in kb.intents}
        everything = [t for ts in texts.values() for t in ts] + list(bodies.values())
        self.prefer = primary_readings(normalize(t) for t in everything)
        self.choice_keys: list[str] = []
        self.choice_intents: list[str] = []
        self.vocab: dict[str, set[str]] = {}
        for iid, intent in kb.intents.items():
            keys = {self.key(t) for t in texts[iid]} - {""}
            self.choice_keys.extend(sorted(keys))
            self.choice_intents.extend([iid] * len(keys))
            vocab = set().union(*(_bigrams(k) for k in keys)) if keys else set()
            for kw in intent.keywords:
                vocab |= _bigrams(self.key(kw))
            for part in bodies[iid].split():
                vocab |= _bigrams(self.key(part))
            self.vocab[iid] = vocab

    @staticmethod
    def _intent_texts(intent) -> list[str]:
        """The texts a question is compared with: question, title, similar questions."""
        return [intent.question, intent.title, *intent.similar]

    def key(self, text: str) -> str:
        """The sound key of a raw text under this KB's preferred readings."""
        return sound_key(normalize(text), self.prefer)

    def coverage(self, qkey: str, light: str, intent_id: str) -> float:
        """Share of the question's non-light syllables that the intent's vocabulary covers."""
        vocab = self.vocab[intent_id]
        if len(qkey) == 1:
            return 1.0 if any(qkey in g for g in vocab) else 0.0
        need = covered = 0
        for i in range(len(qkey)):
            if light[i]:
                continue
            need += 1
            left = i > 0 and qkey[i - 1:i + 1] in vocab
            right = i + 1 < len(qkey) and qkey[i:i + 2] in vocab
            covered += left or right
        return covered / need if need else 1.0

    def match(self, text: str) -> Match:
        """Score `text` against every intent and decide answer / clarify / none."""
        norm = normalize(text)
        qkey = sound_key(norm, self.prefer)
        if not qkey:
            return NO_MATCH
        light = [ch in LIGHT_CHARS for ch in norm]
        best: dict[str, float] = {}
        hits = process.extract(qkey, self.choice_keys, scorer=fuzz.WRatio, limit=PREFILTER_LIMIT)
        for _choice, sim, idx in hits:
            iid = self.choice_intents[idx]
            if sim > best.get(iid, -1.0):
                best[iid] = sim
        scored = sorted(((iid, round(sim * self.coverage(qkey, light, iid), 1))
                         for iid, sim in best.items()), key=lambda p: -p[1])
        return self.decide(tuple(scored[:MAX_CANDIDATES]))

    def decide(self, candidates: tuple[tuple[str, float], ...]) -> Match:
        """Turn ranked candidates into a decision using the thresholds."""
        if not candidates or candidates[0][1] < self.answer_threshold:
            top = candidates[0][1] if candidates else 0.0
            return Match("none", None, top, candidates)
        top = candidates[0][1]
        runner_up = candidates[1][1] if len(candidates) > 1 else 0.0
        if top - runner_up < self.clarify_margin:
            return Match("clarify", None, top, candidates)
        return Match("answer", candidates[0][0], top, candidates)


def attach_matcher(kb: KnowledgeBase, matching: MatchingConfig | None = None) -> KnowledgeBase:
    """Build a Matcher for kb, set kb.matcher, return kb."""
    matching = matching or MatchingConfig()
    kb.matcher = Matcher(kb, matching.answer_threshold, matching.clarify_margin)
    return kb
