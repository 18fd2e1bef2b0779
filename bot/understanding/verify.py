"""Verification: is a question really an intent's need? Concepts found, missing and excluding.

An intent with `needs` (its answer file) is verified when, within one clause or two adjacent
clauses, every concept of one `needs` line is mentioned, no `excludes` line is mentioned anywhere
in the message, and the words around the need are the intent's own (coverage ≥ the matcher's
minimum): a long message is judged on the clause that states the problem, not on its context, and
乐企的证书在哪下载 fails because 证书/下载 belong to no answer. Small talk is judged on the whole
message: 你好，乐企通道不显示 is not a greeting.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bot.understanding.concepts import CLAUSE_MARK, Spot, Spotter, names, satisfied
from bot.understanding.lexicon import Concept, lexicon
from bot.understanding.similarity import Similarity, weighted_coverage
from bot.understanding.textnorm import COURTESY, FILLERS, clean, is_han, is_light_word, word_keys, words

MAX_SEGMENT_CLAUSES = 4  # a need may be stated across this many clauses (就是那个乐企联用，……，没有这一项)
MAX_REGION_TOKENS = 24  # a segment longer than this is judged on a window around the need's mentions
REGION_MARGIN = 4  # tokens of context kept on each side of those mentions
_QUIET = frozenset(FILLERS) | frozenset(COURTESY)  # fillers and courtesy need not be covered either
MAX_CLAUSES = 24  # clauses analysed per message (WeChat text ≤ 2048 bytes; matched on 400 chars)
_LATIN_SPACE = re.compile(r"(?<=[A-Za-z0-9_])\s+(?=[A-Za-z0-9_])")
_CLAUSE_SPLIT = re.compile(r"[^\w\u0001]+")  # punctuation, symbols and (non-Latin) spaces end a clause


@dataclass(frozen=True)
class Analysis:
    """A question cut into clauses and words, with its sound key and concept mentions."""

    key: str  # clause keys joined by CLAUSE_MARK
    chars: str  # the same tokens as characters (Han) or codes (Latin words), aligned with key
    shown: tuple[str, ...]  # per key position, the text it stands for (explain)
    clauses: tuple[tuple[int, int], ...]  # token spans in key
    words: tuple[tuple[int, int, str, bool], ...]  # (start, end, word, light) per word
    spots: tuple[Spot, ...]


@dataclass(frozen=True)
class Verdict:
    """Why an intent with needs is (not) the question's need."""

    status: str  # "verified" | "missing" | "excluded" | "foreign" (need found, words not the intent's)
    need: tuple[str, ...] = ()  # the satisfied line of needs, or the closest one
    missing: tuple[str, ...] = ()  # concepts of the closest line that were not found
    excluded_by: tuple[str, ...] = ()
    coverage: float = 0.0
    region: str = ""  # the words judged (for explain)
    uncovered: tuple[str, ...] = ()  # words of the region the intent does not know


def qualified(intent_id: str, name: str, own: set[str]) -> str:
    """An intent's concept name as the spotter knows it (own concepts are prefixed by the intent)."""
    if name.startswith("-"):
        return "-" + qualified(intent_id, name[1:], own)
    return f"{intent_id}/{name}" if name in own else name


def display(name: str) -> str:
    """A concept name without its intent prefix."""
    if name.startswith("-"):
        return "-" + display(name[1:])
    return name.split("/", 1)[-1]


class Verifier:
    """Spots every concept of one knowledge base and judges intents' needs."""

    def __init__(self, kb, similarity: Similarity, key_of):
        """Compile the lexicon's and the intents' concepts; `key_of` keys a variant (learning)."""
        lex = lexicon()
        self.similarity = similarity
        self.needs: dict[str, tuple[tuple[str, ...], ...]] = {}
        self.follow_ups: dict[str, tuple[tuple[str, ...], ...]] = {}
        self.negated: dict[str, set[str]] = {}  # "-name" members: checked over the whole message
        self.excludes: dict[str, tuple[tuple[str, ...], ...]] = {}
        self.covering: dict[str, set[str]] = {}
        self.smalltalk = {iid for iid, i in kb.intents.items() if i.kind != "faq"}
        concepts: list[Concept] = list(lex.concepts.values())
        neutral = lex.neutral()
        for iid, intent in kb.intents.items():
            own = {c.name for c in intent.concepts}
            concepts += [Concept(qualified(iid, c.name, own), c.variants) for c in intent.concepts]
            self.needs[iid] = tuple(tuple(qualified(iid, n, own) for n in alt) for alt in intent.needs)
            self.follow_ups[iid] = tuple(tuple(qualified(iid, n, own) for n in alt) for alt in intent.follow_ups)
            self.excludes[iid] = tuple(tuple(qualified(iid, n, own) for n in alt) for alt in intent.excludes)
            needed = {n for alt in self.needs[iid] + self.follow_ups[iid] for n in alt if not n.startswith("-")}
            self.negated[iid] = {n for alt in self.needs[iid] for n in alt if n.startswith("-")}
            self.covering[iid] = needed | {qualified(iid, n, own) for n in own} | neutral
        self.spotter = Spotter(concepts, key_of)

    def analyse(self, text: str) -> Analysis:
        """Clauses, words (jieba), sound key and concept mentions of a question."""
        raw = _LATIN_SPACE.sub("\u0001", unicodedata.normalize("NFKC", text or ""))
        parts = (clean(part.replace("\u0001", " ")) for part in _CLAUSE_SPLIT.split(raw))
        clauses = [c for c in parts if c][:MAX_CLAUSES]
        cuts = [words(c, self.similarity.segmenter) for c in clauses]
        keys = iter(word_keys([w for cut in cuts for w in cut], self.similarity.prefer, learn=False))
        spans, cut_words, key_parts, char_parts, shown, pos = [], [], [], [], [], 0
        for cut in cuts:
            start, clause_keys = pos, []
            for word in cut:
                word_key = next(keys)
                cut_words.append((pos, pos + len(word_key), word, is_light_word(word) or word in _QUIET))
                clause_keys.append(word_key)
                han = len(word) == len(word_key) and is_han(word[0])
                char_parts.append(word if han else word_key)
                shown += list(word) if han else [word] + [""] * (len(word_key) - 1)
                pos += len(word_key)
            spans.append((start, pos))
            key_parts.append("".join(clause_keys))
            char_parts.append(CLAUSE_MARK)
            shown.append(" | ")
            pos += len(CLAUSE_MARK)
        key, chars = CLAUSE_MARK.join(key_parts), "".join(char_parts)[:-1]
        spots = tuple(self.spotter.spot(key, chars))
        return Analysis(key, chars, tuple(shown[:-1]), tuple(spans), tuple(cut_words), spots)

    def verdict(self, analysis: Analysis, intent_id: str) -> Verdict:
        """Judge one intent with needs against an analysed question."""
        everywhere = names(analysis.spots)
        hit = satisfied(self.excludes[intent_id], everywhere)
        if hit:
            return Verdict("excluded", excluded_by=tuple(display(n) for n in hit[0]))
        whole = (analysis.clauses[0][0], analysis.clauses[-1][1]) if analysis.clauses else (0, 0)
        tries = [(need, whole, True) for need in satisfied(self.follow_ups[intent_id], everywhere)]
        small = intent_id in self.smalltalk
        negated = {n for n in everywhere if f"-{n}" in self.negated[intent_id]}
        for span, present in self._segments(analysis, intent_id):
            tries += [(need, span, small) for need in satisfied(self.needs[intent_id], present | negated)]
        verdicts = [self._judge(analysis, intent_id, need, *span, whole=flag) for need, span, flag in tries]
        return max(verdicts, key=lambda v: v.coverage, default=None) or self._closest(intent_id, everywhere)

    def _segments(self, analysis: Analysis, intent_id: str) -> list[tuple[tuple[int, int], set[str]]]:
        """(span, concepts in it) — small talk: the whole message; FAQs: every run of up to
        MAX_SEGMENT_CLAUSES clauses."""
        clauses = analysis.clauses
        if not clauses:
            return []
        if intent_id in self.smalltalk:
            return [((clauses[0][0], clauses[-1][1]), names(analysis.spots))]
        per_clause = [names(analysis.spots, a, b) for a, b in clauses]
        out = []
        for i in range(len(clauses)):
            present: set[str] = set()
            for j in range(i, min(i + MAX_SEGMENT_CLAUSES, len(clauses))):
                present = present | per_clause[j]
                out.append(((clauses[i][0], clauses[j][1]), present))
        return out

    def _judge(self, analysis: Analysis, intent_id: str, need, start: int, end: int, whole: bool) -> Verdict:
        """Coverage of the words around a satisfied need (of the whole message for follow-ups)."""
        if not whole and end - start > MAX_REGION_TOKENS:
            mentions = [s for s in analysis.spots if s.concept in need and s.start >= start and s.end <= end]
            start = max(start, min(s.start for s in mentions) - REGION_MARGIN)
            end = min(end, max(s.end for s in mentions) + REGION_MARGIN)
        coverage, region, uncovered = self._coverage(analysis, intent_id, start, end)
        return Verdict("verified", tuple(display(n) for n in need), coverage=coverage,
                       region=region, uncovered=uncovered)

    def _coverage(self, analysis: Analysis, intent_id: str, start: int, end: int):
        """(coverage, region text, uncovered words) of the tokens in [start, end).

        A token is covered when a concept the intent counts as its own mentions it; a word is
        covered when at least half its tokens are (输完: 输), or when the intent's texts hold it.
        """
        grams, vocab = self.similarity.vocab[intent_id]
        mentioned = {pos for s in analysis.spots if s.concept in self.covering[intent_id] for pos in range(s.start, s.end)}
        key, flags, region, uncovered = analysis.key, [], [], []
        for w_start, w_end, word, light in analysis.words:
            if w_end <= start or w_start >= end:
                continue
            region.append(word)
            size = w_end - w_start
            by_concept = sum(pos in mentioned for pos in range(w_start, w_end))
            if by_concept * 2 >= size:
                flags += [True] * size
            elif light:
                continue
            elif size > 1:
                flags += [key[w_start:w_end] in vocab] * size
            else:
                flags.append(key[max(0, w_start - 1):w_end] in grams or key[w_start:w_start + 2] in grams)
            if not flags[-1] and not light:
                uncovered.append(word)
        return weighted_coverage(flags), "".join(region), tuple(uncovered)

    def bare_topic(self, analysis: Analysis) -> list[str]:
        """The FAQs whose own concepts make up the whole question (乐企 / 乐企联用 alone), else []."""
        owners: dict[int, set[str]] = {}
        for spot in analysis.spots:
            if "/" in spot.concept and not spot.concept.startswith("\x02"):
                for pos in range(spot.start, spot.end):
                    owners.setdefault(pos, set()).add(spot.concept.split("/", 1)[0])
        content = [pos for start, end, _w, light in analysis.words if not light for pos in range(start, end)]
        if not content or any(pos not in owners for pos in content):
            return []
        return sorted(set.intersection(*(owners[pos] for pos in content)) - self.smalltalk)

    def _closest(self, intent_id: str, present: set[str]) -> Verdict:
        """The line of needs the question came closest to, and what it lacks."""
        needs = self.needs[intent_id] + self.follow_ups[intent_id]
        if not needs:
            return Verdict("missing")
        need = max(needs, key=lambda alt: (len(set(alt) & present) / len(alt), -len(alt)))
        return Verdict("missing", tuple(display(n) for n in need),
                       missing=tuple(display(n) for n in need if n not in present))
