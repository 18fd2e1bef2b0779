"""Concept spotting: by sound for words, by character for single characters, longest reading wins."""
from __future__ import annotations

import pytest

from bot.understanding.concepts import CLAUSE_MARK, Spotter, names
from bot.understanding.lexicon import Concept
from bot.understanding.textnorm import clean, sound_key, tokens

CONCEPTS = [
    Concept("leqi", ("乐企", "leqi")),
    Concept("absent", ("不显示", "没", "没了")),
    Concept("present", ("显示",)),
    Concept("fine", ("没问题",)),
    Concept("input", ("填",)),
    Concept("not_invited", ("没收到…邀请",)),
    Concept("question", ("哪", "在哪"), nested=True),
    Concept("where", ("在哪里",)),
]


def key_of(text: str) -> str:
    """A variant's or question's sound key."""
    return sound_key(clean(text))


@pytest.fixture(scope="module")
def spotter() -> Spotter:
    """A spotter over a small concept set."""
    return Spotter(CONCEPTS, key_of, rivals=[frozenset(c.name for c in CONCEPTS)])


def spot(spotter: Spotter, *clauses: str) -> set[str]:
    """The concepts mentioned in the clauses (joined as the verifier joins them)."""
    keys = [key_of(c) for c in clauses]
    chars = CLAUSE_MARK.join("".join(tokens(clean(c))) if len(key) == len(clean(c)) else key
                             for c, key in zip(clauses, keys))
    return names(spotter.spot(CLAUSE_MARK.join(keys), chars))


@pytest.mark.parametrize("clauses, expected", [
    (("乐琪不显示",), {"leqi", "absent"}),            # homophone typo of a two-character word
    (("樂企不顯示",), {"leqi", "absent"}),            # traditional characters
    (("乐企没问题",), {"leqi", "fine"}),              # 没 inside 没问题 does not count
    (("显示",), {"present"}),
    (("不显示",), {"absent"}),                        # 显示 inside 不显示 does not count
    (("今天",), set()),                               # 天 sounds like 填 but is not 填
    (("没收到乐企联用的邀请",), {"absent", "leqi", "not_invited"}),   # gap variant
    (("没收到", "邀请"), {"absent"}),                  # ... not across clauses
    (("在哪里",), {"where", "question"}),             # nested: a question word survives inside
])
def test_spotted(spotter, clauses, expected):
    """What a text mentions, as people really write it."""
    assert spot(spotter, *clauses) == expected


def test_overlapping_mentions_are_all_found(spotter):
    """没乐企 sounds like 没了 + 企: both 没了 (absent) and 乐企 are heard."""
    assert spot(spotter, "没乐企") == {"absent", "leqi"}


def test_an_exact_word_is_heard_only_by_its_characters():
    """lexicon.yaml exact_words: 价格 (a fee) is not the everyday 加个 that sounds the same."""
    exact = Spotter([Concept("fee", ("价格",))], key_of)
    assert spot(exact, "乐企价格多少") == {"fee"} and spot(exact, "中间要不要加个空格") == set()
