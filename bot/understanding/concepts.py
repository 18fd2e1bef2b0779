"""Concept spotting: which named concepts a text mentions, and where.

A concept is a group of variants (lexicon.yaml, or an answer file's `concepts`). A variant of two or
more tokens is matched by its sound (乐琪 = 乐企, 连用 = 联用); a one-character variant only by the
character itself (填 is not 天, 好 is not 号), and for the dialogue's commands only as a word of its
own (the 好 of 你好 is not an acknowledgment). Every occurrence of every variant is found, overlaps
included (没乐企: 没了 by sound and 乐企 both), but among the lexicon's generic concepts a mention
inside a longer mention of another one does not count (显示 inside 不显示, 没 inside 没问题). A gap variant "A…B" is A followed by B within
GAP_TOKENS tokens of the same clause (没收到…邀请 matches 没收到乐企联用的邀请).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable

from bot.understanding.lexicon import Concept, is_plain, lexicon, split_gap

GAP_TOKENS = 8  # words between the parts of a gap variant (没收到乐企联用的邀请 = 6 tokens)
CLAUSE_MARK = "\x01"  # separates clauses in a text key; never part of a variant key
_END = ""  # trie key of the concepts a path ends
_EXACT_MARK = "\x03"  # joins a concept name and an exact word's characters (lexicon.yaml exact_words)


@dataclass(frozen=True)
class Spot:
    """One mention of a concept: its name and token span [start, end) in the text key."""

    concept: str
    start: int
    end: int


@dataclass(frozen=True)
class Gap:
    """A gap variant: its concept and the part names it is assembled from."""

    concept: str
    parts: tuple[str, ...]


class Spotter:
    """Finds the mentions of a fixed set of concepts in a sound key (and its characters)."""

    def __init__(self, concepts: Iterable[Concept], key_of: Callable[[str], str],
                 rivals: Iterable[frozenset[str]] = ()):
        """Compile every variant of `concepts`; `key_of` turns a variant into its sound key; within
        each group of `rivals` (the lexicon's generic concepts; its commands) a longer mention hides
        a shorter one inside it."""
        self.trie: dict = {}
        self.rivals = tuple(rivals)
        self.singles: dict[str, set[str]] = {}  # exact one-token variants: char (or word code) → concepts
        self.gaps: list[Gap] = []
        concepts = list(concepts)
        self.nested = frozenset(c.name for c in concepts if c.nested)
        for concept in concepts:
            for number, variant in enumerate(concept.variants):
                if is_plain(variant):
                    self._add(variant, concept.name, key_of)
                    continue
                parts = tuple(f"\x02{concept.name}#{number}.{i}" for i in range(len(split_gap(variant))))
                for part, text in zip(parts, split_gap(variant)):
                    self._add(text, part, key_of)
                self.gaps.append(Gap(concept.name, parts))
        self.gaps_by_first: dict[str, list[Gap]] = {}
        for gap in self.gaps:
            self.gaps_by_first.setdefault(gap.parts[0], []).append(gap)

    def _add(self, text: str, name: str, key_of: Callable[[str], str]) -> None:
        """Register one plain variant under `name` (an exact word: under `name` + its characters)."""
        key = key_of(text)
        if text in lexicon().exact_words:
            name = f"{name}{_EXACT_MARK}{text}"
        if len(key) == 1:
            single = text.strip() if len(text.strip()) == 1 and not text.strip().isascii() else key
            self.singles.setdefault(single, set()).add(name)
        elif key:
            node = self.trie
            for code in key:
                node = node.setdefault(code, {})
            node.setdefault(_END, set()).add(name)

    def spot(self, key: str, chars: str, alone: frozenset[int] = frozenset(),
             alone_only: frozenset[str] = frozenset(), starts: frozenset[int] | None = None) -> list[Spot]:
        """Every mention in `key` (sound codes) / `chars` (the characters, aligned), by position.

        A one-character variant of an `alone_only` concept (the commands: 好, 嗯, 对) counts only at
        `alone`, the positions of one-token words (好 in 好/的 but not in 你好 or 好累). A longer variant
        starts only where a word starts, when `starts` is given (除了 is not heard in 清除/乐企).
        """
        found: list[Spot] = []
        for start in range(len(key)):
            for name in self.singles.get(chars[start], set()) | self.singles.get(key[start], set()):
                if start in alone or name.rstrip("+") not in alone_only:
                    found.append(Spot(name, start, start + 1))
            node, end = self.trie, start
            while (starts is None or start in starts) and end < len(key) and key[end] in node:
                node = node[key[end]]
                end += 1
                found += [Spot(name, start, end) for name in node.get(_END, ())]
        found = [_heard(s, chars) for s in found]
        found = [s for s in found if s is not None]
        for group in self.rivals:
            found = _outermost(found, group - self.nested)
        return sorted([s for s in found if not s.concept.startswith("\x02")] + self._assemble(found, key),
                      key=lambda s: (s.start, s.end, s.concept))

    def _assemble(self, found: list[Spot], key: str) -> list[Spot]:
        """Spots of gap variants: their parts in order, each within GAP_TOKENS of the last, one clause."""
        by_part: dict[str, list[Spot]] = {}
        for spot in found:
            by_part.setdefault(spot.concept, []).append(spot)
        out: list[Spot] = []
        for first in by_part.keys() & self.gaps_by_first.keys():
            for gap in self.gaps_by_first[first]:
                chains = [(s.start, s.end) for s in by_part[first]]
                for part in gap.parts[1:]:
                    chains = [(a, s.end) for a, b in chains for s in by_part.get(part, ())
                              if b <= s.start <= b + GAP_TOKENS and CLAUSE_MARK not in key[b:s.start]]
                out += [Spot(gap.concept, a, b) for a, b in sorted(set(chains))]
        return out


def _heard(spot: Spot, chars: str) -> Spot | None:
    """The spot as heard; an exact word's spot only where its very characters are (价格, not 加个)."""
    if _EXACT_MARK not in spot.concept:
        return spot
    name, text = spot.concept.split(_EXACT_MARK, 1)
    return Spot(name, spot.start, spot.end) if chars[spot.start:spot.end] == text else None


def _outermost(spots: list[Spot], rivals: frozenset[str]) -> list[Spot]:
    """Drop a mention of a rival concept lying strictly inside a longer mention of another rival
    (显示 inside 不显示, 没 inside 没问题); other concepts nest freely (单位ID in 两个单位ID, 弄好 in 弄好了)."""
    ranked = sorted((s for s in spots if s.concept in rivals), key=lambda s: (s.start, -s.end))
    hidden: set[Spot] = set()
    reach: Spot | None = None  # the rival mention reaching furthest right among those started so far
    for spot in ranked:
        if reach is not None and reach.end >= spot.end and reach.concept != spot.concept and (
                reach.end - reach.start > spot.end - spot.start):
            hidden.add(spot)
        if reach is None or spot.end > reach.end:
            reach = spot
    return [s for s in spots if s not in hidden]


def names(spots: Iterable[Spot], start: int = 0, end: int | None = None) -> set[str]:
    """The concepts mentioned within [start, end)."""
    return {s.concept for s in spots if s.start >= start and (end is None or s.end <= end)}


@lru_cache(maxsize=4096)
def _split(alternative: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """(concepts that must be present, "-name" concepts that must be absent) of one line."""
    return (frozenset(n for n in alternative if not n.startswith("-")),
            frozenset(n[1:] for n in alternative if n.startswith("-")))


def satisfied(alternatives: Iterable[tuple[str, ...]], present: set[str]) -> list[tuple[str, ...]]:
    """The alternatives whose concepts are all present and whose "-name" concepts are all absent."""
    out = []
    for alternative in alternatives:
        must, must_not = _split(alternative)
        if must <= present and not must_not & present:
            out.append(alternative)
    return out
