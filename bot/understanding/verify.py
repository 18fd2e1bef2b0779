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
from dataclasses import dataclass, replace

from bot.understanding.concepts import CLAUSE_MARK, Spot, Spotter, names, satisfied
from bot.understanding.lexicon import Concept, lexicon
from bot.understanding.similarity import Similarity, weighted_coverage
from bot.understanding.textnorm import COURTESY, FILLERS, clean, drop_noise, is_han, is_light_word, word_keys, words

MAX_SEGMENT_CLAUSES = 4  # a need may be stated across this many clauses (就是那个乐企联用，……，没有这一项)
MAX_REGION_TOKENS = 24  # a segment longer than this is judged on a window around the need's mentions
REGION_MARGIN = 4  # tokens of context kept on each side of those mentions
_QUIET = frozenset(FILLERS) | frozenset(COURTESY)  # fillers and courtesy need not be covered either
MAX_CLAUSES = 24  # clauses analysed per message (WeChat text ≤ 2048 bytes; matched on 400 chars)
# A space ends a clause between Chinese words (救命 乐企通道人间蒸发了 数电配置里啥也没有), not next to a
# Latin word (请问 bdm_cache_clear 这个功能……) nor between two (human agent).
_LATIN_SPACE = re.compile(r"(?<=[A-Za-z0-9_])\s+|\s+(?=[A-Za-z0-9_])")
_CODE_LIKE = re.compile(r"(?=.*\d)[0-9a-z]{15,20}")  # a tax ID in the text: data, not words to cover
_QUOTES = re.compile(r"[\"“”‘’「」『』《》〈〉【】]")  # quoted labels (点“更新配置”) stay inside their clause
_CLAUSE_SPLIT = re.compile(r"([^\w\u0001]+)")  # punctuation, symbols and the other spaces end a clause


@dataclass(frozen=True)
class Analysis:
    """A question cut into clauses and words, with its sound key and concept mentions."""

    key: str  # clause keys joined by CLAUSE_MARK
    chars: str  # the same tokens as characters (Han) or codes (Latin words), aligned with key
    shown: tuple[str, ...]  # per key position, the text it stands for (explain)
    clauses: tuple[tuple[int, int], ...]  # token spans in key
    words: tuple[tuple[int, int, str, bool], ...]  # (start, end, word, light) per word
    spots: tuple[Spot, ...]
    question_marks: tuple[bool, ...] = ()  # per clause: ends with ? / ？
    bare_tail: frozenset[str] = frozenset()  # concepts of a bare last question (Verifier._bare_question)


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
    follow_up: bool = False  # the line found is one of `follow_ups`


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


def split_clauses(text: str) -> list[tuple[str, bool]]:
    """(cleaned clause, ends with a question mark) for each clause of a message (at most MAX_CLAUSES)."""
    raw = _QUOTES.sub("", drop_noise(unicodedata.normalize("NFKC", text or "")))
    for symbol, word in lexicon().symbols:
        raw = raw.replace(symbol, word)
    pieces = _CLAUSE_SPLIT.split(_LATIN_SPACE.sub("\u0001", raw) + " ")  # [clause, separator, clause, …]
    parts = [(clean(pieces[i].replace("\u0001", " ")), i + 1 < len(pieces) and "?" in pieces[i + 1])
             for i in range(0, len(pieces), 2)]
    kept = [(c, asked) for c, asked in parts if c]
    return [part for i, part in enumerate(kept) if not _corrected(part[0], kept[i + 1:i + 2])][:MAX_CLAUSES]


def _corrected(clause: str, after: list[tuple[str, bool]]) -> bool:
    """"不是A，是B": A is what the customer says it is not (不是开票报错，是通道看不到)."""
    return clause.startswith("不是") and bool(after) and after[0][0].startswith(("是", "而是"))


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
        self.whole = {iid for iid, i in kb.intents.items() if (i.scope or ("message" if i.kind != "faq" else "clause")) == "message"}
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
        self.spotter = Spotter(concepts, key_of, rivals=(lex.neutral() | lex.topics, lex.commands))
        self.topics = lex.topics

    def analyse(self, text: str) -> Analysis:
        """Clauses, words (jieba), sound key and concept mentions of a question."""
        kept = split_clauses(text)
        cuts = [words(c, self.similarity.segmenter) for c, _asked in kept]
        keys = iter(word_keys([w for cut in cuts for w in cut], self.similarity.prefer, learn=False))
        spans, cut_words, key_parts, char_parts, shown, pos = [], [], [], [], [], 0
        for cut in cuts:
            start, clause_keys = pos, []
            for word in cut:
                word_key = next(keys)
                light = is_light_word(word) or word in _QUIET or bool(_CODE_LIKE.fullmatch(word))
                cut_words.append((pos, pos + len(word_key), word, light))
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
        alone = frozenset(start for start, end, _w, _l in cut_words if end - start == 1)
        starts = frozenset(start for start, _e, _w, _l in cut_words)
        found = self.spotter.spot(key, chars, alone, lexicon().commands, starts)
        asks = [Spot("question", s.start, s.end) for s in found if s.concept == "whether"]  # 在不在 asks
        asks += [Spot("question", end, end) for (_start, end), (_c, asked) in zip(spans, kept)
                 if asked]  # ……呢？ asks (an empty span: it covers no word)
        spots = tuple(sorted(found + asks, key=lambda s: (s.start, s.end, s.concept))) if asks else tuple(found)
        analysis = Analysis(key, chars, tuple(shown[:-1]), tuple(spans), tuple(cut_words), spots,
                            tuple(asked for _c, asked in kept))
        return replace(analysis, bare_tail=frozenset(self._bare_question(analysis)))

    def verdict(self, analysis: Analysis, intent_id: str, detail: bool = True) -> Verdict:
        """Judge one intent with needs against an analysed question (`detail`: name the closest line)."""
        everywhere = names(analysis.spots)
        lines, apart = self.excludes[intent_id], ()
        apart_asked = "another_question" in everywhere
        if apart_asked:  # 两个问题：一是……二是……: the other question's topic does not veto
            apart = tuple(line for line in lines if set(line) <= self.topics)
            lines = tuple(line for line in lines if line not in apart)
        hit = satisfied(lines, everywhere)
        if hit:
            return Verdict("excluded", excluded_by=tuple(display(n) for n in hit[0]))
        small = intent_id in self.whole
        negated = {n for n in everywhere if f"-{n}" in self.negated[intent_id]}
        tries = []
        if satisfied(self.needs[intent_id], everywhere):  # else no part of the message can hold one
            for span, present in self._segments(analysis, intent_id):
                if apart and satisfied(apart, present):
                    continue
                tries += [(need, span, small, False) for need in satisfied(self.needs[intent_id], present | negated)]
        if satisfied(self.follow_ups[intent_id], everywhere) and not apart_asked:  # (再问下…: a new question)
            for span, present in self._asking(analysis, intent_id):
                tries += [(need, span, True, True) for need in satisfied(self.follow_ups[intent_id], present)]
        verdicts = [self._judge(analysis, intent_id, need, *span, whole=flag, follow_up=f) for need, span, flag, f in tries]
        best = max(verdicts, key=lambda v: v.coverage, default=None)
        return best or (self._closest(intent_id, everywhere) if detail else Verdict("missing"))

    def _asking(self, analysis: Analysis, intent_id: str) -> list[tuple[tuple[int, int], set[str]]]:
        """Where a follow-up is judged: the segments that hold the message's last question (切到乐企以后，
        以前的税控盘还需要继续用吗 asks about 税控盘), or the whole message when it asks nothing."""
        clauses = analysis.clauses
        marks = analysis.question_marks
        asked = [i for i, (a, b) in enumerate(clauses) if (i < len(marks) and marks[i]) or any(
            s.concept == "question" and a <= s.start < b for s in analysis.spots)]
        if not clauses or not asked or intent_id in self.smalltalk or len(clauses) == 1:
            whole = (clauses[0][0], clauses[-1][1]) if clauses else (0, 0)
            return [(whole, names(analysis.spots))] if clauses else []
        last = asked[-1]
        return [(span, present) for span, present in self._segments(analysis, intent_id)
                if span[0] <= clauses[last][0] and clauses[last][1] <= span[1]]

    def _segments(self, analysis: Analysis, intent_id: str) -> list[tuple[tuple[int, int], set[str]]]:
        """(span, concepts in it) — scope "message" (small talk): the whole message; "clause" (FAQs):
        every run of up to MAX_SEGMENT_CLAUSES clauses."""
        clauses = analysis.clauses
        if not clauses:
            return []
        if intent_id in self.whole:
            return [((clauses[0][0], clauses[-1][1]), names(analysis.spots))]
        per_clause = [names(analysis.spots, a, b) for a, b in clauses]
        per_clause = [present | analysis.bare_tail for present in per_clause]
        out = []
        for i in range(len(clauses)):
            present: set[str] = set()
            for j in range(i, min(i + MAX_SEGMENT_CLAUSES, len(clauses))):
                present = present | per_clause[j]
                out.append(((clauses[i][0], clauses[j][1]), present))
        return out

    def _bare_question(self, analysis: Analysis) -> set[str]:
        """The concepts of a last clause that asks about the message's subject without naming it
        (……，到底为啥不显示？): only the lexicon's generic words, a question among them; they then
        count in every clause of the message. Empty for anything else."""
        if len(analysis.clauses) < 2:
            return set()
        start, end = analysis.clauses[-1]
        spots = [s for s in analysis.spots if start <= s.start and s.end <= end]
        if "question" not in {s.concept for s in spots} or any("/" in s.concept for s in spots):
            return set()
        said = {pos for s in spots for pos in range(s.start, s.end)}
        for w_start, w_end, _word, light in analysis.words:
            if start <= w_start < end and not light and not all(p in said for p in range(w_start, w_end)):
                return set()
        return {s.concept for s in spots}

    def _judge(self, analysis: Analysis, intent_id: str, need, start: int, end: int, whole: bool,
               follow_up: bool = False) -> Verdict:
        """Coverage of the words around a satisfied need (of the whole message for follow-ups)."""
        if not whole and end - start > MAX_REGION_TOKENS:
            mentions = [s for s in analysis.spots if s.concept in need and s.start >= start and s.end <= end]
            if mentions:  # (none when the whole need came from a bare last question)
                start = max(start, min(s.start for s in mentions) - REGION_MARGIN)
                end = min(end, max(s.end for s in mentions) + REGION_MARGIN)
        coverage, region, uncovered = self._coverage(analysis, intent_id, start, end)
        return Verdict("verified", tuple(display(n) for n in need), coverage=coverage,
                       region=region, uncovered=uncovered, follow_up=follow_up)

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
                flags.append(key[w_start] in grams or key[max(0, w_start - 1):w_end] in grams
                             or key[w_start:w_start + 2] in grams)
            if not flags[-1] and not light:
                uncovered.append(word)
        return weighted_coverage(flags), "".join(region), tuple(uncovered)

    def bare_topic(self, analysis: Analysis) -> list[str]:
        """The FAQs whose own need concepts make up the whole question (乐企 / 乐企联用 alone), else []."""
        owners: dict[int, set[str]] = {}
        for spot in analysis.spots:
            owner = spot.concept.split("/", 1)[0]
            if "/" in spot.concept and any(spot.concept in line for line in self.needs.get(owner, ())):
                for pos in range(spot.start, spot.end):
                    owners.setdefault(pos, set()).add(owner)
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
