"""The dialogue's commands, understood the way FAQ questions are: concepts of lexicon.yaml, by sound.

A message is a command (human, status, cancel, forget, help, leave_human, confirm, ack) when it
mentions one of the command's phrases and little else: at least COMMAND_COVERAGE of its words are
the command's phrases or its `context` words (我提交的那个问题处理到哪一步了 is status; 取消发票 is not
cancel — 发票 is neither). Function characters, fillers and courtesy need not be covered.

Two commands are statements rather than short messages:
- still_missing: it still does not show (还是…没有) after an update (更新/同步/刷新/重新登录) — the
  dialogue asks for a screenshot;
- resolved: it works now (显示了/可以了/解决了), with no problem, doubt or question in the message.
"""
from __future__ import annotations

from functools import lru_cache

from bot.understanding.concepts import Spot, Spotter, names
from bot.understanding.lexicon import Concept, lexicon
from bot.understanding.similarity import weighted_coverage
from bot.understanding.textnorm import COURTESY, FILLERS, clean, drop_noise, is_han, word_keys, words

COMMAND_COVERAGE = 0.75  # share of a message's words a command must account for (measured: tests/test_commands.py)
SHORT_COMMANDS = ("human", "status", "cancel", "forget", "help", "leave_human", "confirm", "ack")
_UNSURE = ("absent", "still", "question", "error")  # what a "resolved" statement must not contain
_QUIET = frozenset(FILLERS) | frozenset(COURTESY)
ALSO = {"human": ("human_request",)}  # concepts that count as a command's own words too (找人工 hides 人工)


@lru_cache(maxsize=1)
def _spotter() -> Spotter:
    """One spotter over the lexicon's concepts and each command's context words."""
    lex = lexicon()
    concepts = list(lex.concepts.values())
    concepts += [Concept(f"{c.name}+", c.context) for c in lex.concepts.values() if c.context]
    return Spotter(concepts, lambda text: "".join(word_keys([clean(text)])), rivals=(lex.neutral() | lex.topics, lex.commands))


@lru_cache(maxsize=2048)
def _analyse(text: str) -> tuple[tuple[Spot, ...], tuple[tuple[int, int, bool], ...]]:
    """The mentions in a message and its words as (start, end, quiet) token spans."""
    spotter = _spotter()  # first: it teaches the code table the variants' sounds
    cut = words(clean(drop_noise(text)))
    keys = word_keys(cut, learn=False)
    spans, chars, pos = [], [], 0
    for word, key in zip(cut, keys):
        quiet = word in _QUIET or (len(word) == 1 and word in lexicon().light_chars)
        spans.append((pos, pos + len(key), quiet))
        chars.append(word if len(word) == len(key) and is_han(word[0]) else key)
        pos += len(key)
    alone = frozenset(start for start, end, _q in spans if end - start == 1)
    return tuple(spotter.spot("".join(keys), "".join(chars), alone, lexicon().commands)), tuple(spans)


def coverage(text: str, name: str) -> float:
    """Share of the message's words that are command `name`'s phrases or context (0 if not mentioned)."""
    spots, spans = _analyse(text)
    mine = {name, f"{name}+", *ALSO.get(name, ())}
    if not names(spots) & (mine - {f"{name}+"}):
        return 0.0
    own = {p for s in spots if s.concept in mine for p in range(s.start, s.end)}
    flags = []
    for start, end, quiet in spans:
        mine = sum(p in own for p in range(start, end)) * 2 >= end - start
        if mine or not quiet:
            flags += [mine] * (end - start)
    return weighted_coverage(flags)


def says(text: str, name: str) -> bool:
    """True when the message is command `name` (module docstring)."""
    if name == "still_missing":  # 更新了还是没有 — or 还是不显示 and little else (after an update)
        present = names(_analyse(text)[0])
        return "still_missing" in present and ("update" in present or coverage(text, name) >= COMMAND_COVERAGE)
    if name == "resolved":
        present = names(_analyse(text)[0])
        return "resolved" in present and not present & set(_UNSURE) and "?" not in text and "？" not in text
    return coverage(text, name) >= COMMAND_COVERAGE


def mentions(text: str, name: str) -> bool:
    """True when the message mentions concept `name` at all (e.g. question)."""
    return name in names(_analyse(text)[0])
