"""The generic lexicon is data: it parses, names only concepts it defines, and rejects YAML traps."""
from __future__ import annotations

import pytest
import yaml

from bot.understanding.lexicon import lexicon, parse_concept, parse_lexicon

MINIMAL = {"fillers": ["请问"], "light_chars": "的", "light_words": ["然后"], "courtesy": ["谢谢"]}


def test_shipped_lexicon_is_consistent():
    """Topics and commands are defined concepts; every concept has variants; synonyms are plain words."""
    lex = lexicon()
    assert lex.topics <= set(lex.concepts) and lex.commands <= set(lex.concepts)
    assert all(c.variants for c in lex.concepts.values())
    assert all("…" not in variant and len(variant) > 1 for variant in lex.synonyms())
    assert dict(lex.symbols)["✘"] == "没有"


@pytest.mark.parametrize("spec, message", [
    ("[没有, no]", "quote yes/no"),                       # YAML reads a bare no as false
    ("[没有, 3.5]", "non-empty strings"),
    ("{variants: [没有], colour: red}", "unknown keys"),
    ("42", "a list of variants or a mapping"),
])
def test_bad_concepts_are_refused(spec, message):
    """A concept that YAML would silently turn into something else is an error, not a wrong match."""
    with pytest.raises(ValueError, match=message):
        parse_concept("absent", yaml.safe_load(spec), "lexicon.yaml absent")


def test_a_concept_defined_twice_is_refused():
    """The same name under concepts and commands is an error."""
    data = MINIMAL | {"concepts": {"ack": ["好"]}, "commands": {"ack": {"phrases": ["好的"]}}}
    with pytest.raises(ValueError, match="defined twice"):
        parse_lexicon(data)
