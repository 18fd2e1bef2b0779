"""The generic lexicon (lexicon.yaml): fillers, light words, courtesy and concept groups, as data."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

LEXICON_FILE = Path(__file__).with_name("lexicon.yaml")
GAP_MARKS = ("…", "...")  # "A…B": A, then B within a few words


@dataclass(frozen=True)
class Concept:
    """A named group of ways to say one thing; `context` words may come with it (commands)."""

    name: str
    variants: tuple[str, ...]
    canonical: str = ""  # rewrite the plain variants to this word before similarity
    context: tuple[str, ...] = ()
    nested: bool = False  # mentions survive inside longer mentions of other concepts (question words)


@dataclass(frozen=True)
class Lexicon:
    """Everything lexicon.yaml holds, validated."""

    fillers: tuple[str, ...]
    light_chars: frozenset[str]
    light_words: frozenset[str]
    courtesy: tuple[str, ...]
    concepts: dict[str, Concept]
    topics: frozenset[str] = frozenset()  # concepts that name a subject of their own (fee, apply …)
    commands: frozenset[str] = frozenset()  # concepts of the `commands` section
    symbols: tuple[tuple[str, str], ...] = ()  # symbol → word (✘ → 没有)
    noise: tuple[str, ...] = ()  # sounds dropped before anything else (么么哒)
    exact_chars: frozenset[str] = frozenset()  # heard only as themselves (哪 is not 那)
    exact_words: frozenset[str] = frozenset()  # variants matched by their characters (价格 is not 加个)

    def neutral(self) -> frozenset[str]:
        """Concepts any intent may count as its own words: neither topics nor commands."""
        return frozenset(self.concepts) - self.topics - self.commands

    def synonyms(self) -> dict[str, str]:
        """Plain variant → canonical word, for concepts that declare one (看不到 → 不显示)."""
        out: dict[str, str] = {}
        for concept in self.concepts.values():
            if concept.canonical:
                for variant in (concept.canonical, *concept.variants):
                    if is_plain(variant) and len(variant) > 1:
                        out.setdefault(variant.lower(), concept.canonical)
        return out


def is_plain(variant: str) -> bool:
    """True for a variant without a gap mark."""
    return not any(mark in variant for mark in GAP_MARKS)


def split_gap(variant: str) -> list[str]:
    """The parts of "A…B" (one part for a plain variant)."""
    for mark in GAP_MARKS[1:]:
        variant = variant.replace(mark, GAP_MARKS[0])
    return [part.strip() for part in variant.split(GAP_MARKS[0]) if part.strip()]


def _strings(value, where: str) -> tuple[str, ...]:
    """A YAML list of non-empty strings (numbers allowed, as text)."""
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                              and str(v).strip() for v in value):
        raise ValueError(f"{where}: expected a list of non-empty strings (quote yes/no/on/off)")
    return tuple(str(v).strip() for v in value)


def parse_concept(name: str, spec, where: str) -> Concept:
    """One concept from `[variants]` or `{variants|phrases, canonical, context}`."""
    if isinstance(spec, list):
        return Concept(name, _strings(spec, where))
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: a concept is a list of variants or a mapping")
    unknown = set(spec) - {"variants", "phrases", "canonical", "context", "nested"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    variants = _strings(spec.get("variants", spec.get("phrases")), f"{where} variants")
    canonical = str(spec.get("canonical", "") or "")
    context = _strings(spec["context"], f"{where} context") if "context" in spec else ()
    return Concept(name, variants, canonical, context, bool(spec.get("nested", False)))


def parse_lexicon(data: dict, where: str = str(LEXICON_FILE)) -> Lexicon:
    """Validate the YAML mapping of lexicon.yaml."""
    concepts: dict[str, Concept] = {}
    for section in ("concepts", "commands"):
        for name, spec in (data.get(section) or {}).items():
            if name in concepts:
                raise ValueError(f"{where}: concept {name!r} defined twice")
            concepts[name] = parse_concept(name, spec, f"{where} {section}.{name}")
    return Lexicon(
        fillers=_strings(data["fillers"], f"{where} fillers"),
        light_chars=frozenset(str(data["light_chars"])),
        light_words=frozenset(_strings(data["light_words"], f"{where} light_words")),
        courtesy=_strings(data["courtesy"], f"{where} courtesy"),
        concepts=concepts,
        topics=frozenset(_strings(data.get("topics") or [], f"{where} topics")),
        commands=frozenset(data.get("commands") or {}),
        symbols=tuple((str(k), str(v)) for k, v in (data.get("symbols") or {}).items()),
        noise=_strings(data.get("noise") or [], f"{where} noise"),
        exact_chars=frozenset(str(data.get("exact_chars") or "")),
        exact_words=frozenset(_strings(data.get("exact_words") or [], f"{where} exact_words")),
    )


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The shipped lexicon, parsed once per process."""
    return parse_lexicon(yaml.safe_load(LEXICON_FILE.read_text(encoding="utf-8")))
