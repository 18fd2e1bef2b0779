"""`python -m bot check`: validate an answers folder; every problem is 'file:line: message'."""
from __future__ import annotations

import re
import string
import traceback
import unicodedata
from pathlib import Path

import jinja2
from jinja2 import meta

from bot.kb import (REPLY_LIMIT_BYTES, REQUIRED_INTENTS, TEXT_VARS, Intent, KBError, KnowledgeBase, load_kb,
                    make_environment)
from bot.kb_flows import HANDOFF_REQUIRED, INTENT_VARS, PART_VARS

LONGEST_TAX_ID = "1" * 17 + "X" + "01"  # 20 chars: the longest legacy taxpayer ID
LONGEST_URL = "https://support.example-invoice-cloud.com/answers/" + "x" * 40
OPS_LIMIT_BYTES = 4096  # WeCom group robot markdown limit
MAX_CHARS_BEFORE_ASK = 300  # a phone shows about this much without scrolling (issue 7); the ask follows
KNOWN_COLLECT = (None, "tax_id")
KNOWN_THEN = (None, "handoff", "cache_key")
_PUNCTUATION = set(string.punctuation) | set("，。！？、；：“”‘’（）《》【】…—～·「」『』")


def check_answers(folder: str | Path) -> list[str]:
    """Every problem in `folder` as 'file:line: message'; an empty list means OK."""
    problems = _load_problems(folder)
    try:
        kb = load_kb(folder, strict=False)
    except (KBError, OSError, UnicodeDecodeError):
        return problems  # the folder itself is missing or unreadable
    problems += _check_templates(kb)
    problems += _check_similar(kb)
    problems += _check_intent_fields(kb)
    problems += _check_flows(kb)
    problems += _check_reply_length(kb)
    problems += _check_required(kb, Path(folder))
    return problems or _check_needs(kb)  # a folder with other problems is not worth matching


def _load_problems(folder: str | Path) -> list[str]:
    """The problems load_kb(strict=True) reports (parse, front matter, duplicate ids)."""
    try:
        load_kb(folder, strict=True)
    except KBError as exc:
        return list(exc.problems)
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{folder}:1: cannot read answers: {exc}"]
    return []


def normalise_question(text: str) -> str:
    """NFKC, lower-case, without punctuation or white space: the key for duplicate questions."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in text if not c.isspace() and c not in _PUNCTUATION
                   and not unicodedata.category(c).startswith("P"))


def _line_of(path: Path, needle: str, default: int = 1) -> int:
    """1-based line of the first line of `path` containing `needle`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return default
    return next((i for i, line in enumerate(lines, 1) if needle in line), default)


def _template_start(kb: KnowledgeBase, name: str) -> tuple[Path, int, str]:
    """(file, line where the template source starts, source) for an intent body, short or text."""
    path, line, source = kb.sources[name]
    if "#" in name:  # a front-matter template: its key's line (the next one for a | or > block)
        key = name.split("#", 1)[1].split(".")[-1]
        key_line = _line_of(path, f"{key}:")
        text = path.read_text(encoding="utf-8").splitlines()[key_line - 1]
        line = key_line + 1 if re.match(rf"\s*{key}:\s*[|>]", text) else key_line
    return path, line, source


def _context(kb: KnowledgeBase, name: str) -> dict | None:
    """Variables the bot passes to template `name`; None for a text the bot never sends."""
    intent_id, _, part = name.partition("#")
    if intent_id in kb.intents:
        return dict(PART_VARS[part] if part else INTENT_VARS)
    return TEXT_VARS.get(name)


def _check_templates(kb: KnowledgeBase) -> list[str]:
    """Unknown variables, render errors and over-long replies, for every template."""
    env = make_environment()
    problems: list[str] = []
    for name in sorted(kb.templates):
        path, start, source = _template_start(kb, name)
        context = _context(kb, name)
        if context is None:
            problems.append(f"{path}:1: text '{name}' is not used by the bot (not in TEXT_VARS)")
            continue
        unknown = _undeclared(env, name, source, context, path, start)
        problems += unknown or _render_problems(kb, name, context, path, start)
    return problems


def _undeclared(env, name, source, context, path, start) -> list[str]:
    """Names the template uses that its context does not provide, at their first line."""
    unknown = meta.find_undeclared_variables(env.parse(source)) - set(context)
    problems = []
    for var in sorted(unknown):
        lineno = next((ln for ln, kind, value in env.lex(source) if kind == "name" and value == var), 1)
        allowed = ", ".join(sorted(context)) or "none"
        problems.append(f"{path}:{start + lineno - 1}: unknown variable '{var}' in '{name}' "
                        f"(available: {allowed})")
    return problems


def _error_line(exc: Exception) -> int:
    """Template line where a render error happened (1 if unknown)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno if frames else 1


def _render_problems(kb, name, context, path, start) -> list[str]:
    """Render with the bot's variables (StrictUndefined) and check the byte limits."""
    variants = [context]
    if name.split("#")[0] in kb.intents:
        longest = {"tax_id": LONGEST_TAX_ID, "answer_url": LONGEST_URL}
        variants.append(context | {k: v for k, v in longest.items() if k in context})
    texts = []
    for variables in variants:
        try:
            texts.append(kb.templates[name].render(**variables).strip())
        except jinja2.UndefinedError as exc:
            return [f"{path}:{start + _error_line(exc) - 1}: {exc.message} in '{name}'"]
        except Exception as exc:  # a template bug must be reported, never crash check
            return [f"{path}:{start + _error_line(exc) - 1}: cannot render '{name}': {exc}"]
    return _size_problem(kb, name, max(len(t.encode("utf-8")) for t in texts), path, start)


def _size_problem(kb, name, size, path, start) -> list[str]:
    """A reply longer than its channel allows, unless a `short` fallback covers it."""
    limit = OPS_LIMIT_BYTES if name.startswith("ops-") or name.endswith("#handoff.ops") else REPLY_LIMIT_BYTES
    if size <= limit:
        return []
    if name in kb.intents and f"{name}#short" in kb.templates:
        return []
    hint = " and has no `short` fallback" if name in kb.intents else ""
    return [f"{path}:{start}: '{name}' renders to {size} bytes, over the {limit}-byte limit{hint}"]


def _check_similar(kb: KnowledgeBase) -> list[str]:
    """A question (own or similar) that two intents share after normalisation."""
    seen: dict[str, tuple[Intent, str]] = {}
    problems: list[str] = []
    for intent in kb.intents.values():
        for phrase in (intent.question, *intent.similar):
            key = normalise_question(phrase)
            owner, first = seen.setdefault(key, (intent, phrase))
            if key and owner.id != intent.id:
                where = f"{owner.path.name}:{_line_of(owner.path, first)}"
                problems.append(f"{intent.path}:{_line_of(intent.path, phrase)}: question "
                                f"'{phrase}' is also in '{owner.id}' ({where}: '{first}')")
    return problems


def _check_intent_fields(kb: KnowledgeBase) -> list[str]:
    """`collect` / `then` values the dialogue does not know."""
    problems = []
    for intent in kb.intents.values():
        for key, value, known in (("collect", intent.collect, KNOWN_COLLECT),
                                  ("then", intent.then, KNOWN_THEN)):
            if value not in known:
                allowed = ", ".join(k for k in known if k)
                problems.append(f"{intent.path}:{_line_of(intent.path, key + ':')}: "
                                f"unknown {key} '{value}' (expected {allowed})")
    return problems


def _check_required(kb: KnowledgeBase, folder: Path) -> list[str]:
    """Required intents and every text the bot sends must exist."""
    problems = [f"{folder / (i + '.md')}:1: required intent '{i}' is missing"
                for i in REQUIRED_INTENTS
                if i not in kb.intents and not (folder / f"{i}.md").exists()]  # else reported
    problems += [f"{folder / 'texts' / (t + '.md')}:1: text '{t}' is missing (the bot sends it)"
                 for t in TEXT_VARS if t not in kb.templates]
    return problems



def _check_flows(kb: KnowledgeBase) -> list[str]:
    """The flow keys a `then` needs: handoff texts for handoff, with_tax_id for cache_key."""
    problems = []
    for intent in kb.intents.values():
        where = f"{intent.path}:{_line_of(intent.path, 'then:')}"
        if intent.then == "handoff":
            missing = [k for k in HANDOFF_REQUIRED if k not in (intent.handoff or {})]
            if missing:
                problems.append(f"{where}: then: handoff needs handoff: {', '.join(missing)} (what the "
                                "customer is told, what ops must do, what the customer gets when done)")
        elif intent.handoff is not None:
            problems.append(f"{intent.path}:{_line_of(intent.path, 'handoff:')}: handoff texts are only "
                            "used with then: handoff")
        if intent.then == "cache_key" and (intent.collect != "tax_id" or not intent.with_tax_id):
            problems.append(f"{where}: then: cache_key needs collect: tax_id and with_tax_id "
                            "(the reply once the tax ID is known)")
        if intent.live and "still_missing" in (intent.handoff or {}):
            problems.append(f"{where}: handoff still_missing needs collect (a live conversation has none)")
    return problems


def _check_reply_length(kb: KnowledgeBase) -> list[str]:
    """An FAQ that asks for a tax ID says what to do in few words: the ask must fit on a phone."""
    problems = []
    for intent in kb.intents.values():
        if intent.collect is None or intent.id not in kb.templates:
            continue
        name = f"{intent.id}#reply" if f"{intent.id}#reply" in kb.templates else intent.id
        try:
            text = kb.templates[name].render(**INTENT_VARS | {"answer_url": ""}).strip()
        except Exception:  # noqa: BLE001 - reported by _check_templates
            continue
        if len(text) > MAX_CHARS_BEFORE_ASK:
            path, start, _ = _template_start(kb, name)
            problems.append(f"{path}:{start}: the reply before the tax-ID ask is {len(text)} characters, "
                            f"over {MAX_CHARS_BEFORE_ASK}: keep what to do now in `reply` and the rest "
                            "in the body (the answer page)")
    return problems


def _check_needs(kb: KnowledgeBase) -> list[str]:
    """An intent's own question or similar question that its `needs` do not recognise as it."""
    from bot.understanding.matcher import attach_matcher

    if not any(i.needs or i.follow_ups for i in kb.intents.values()):
        return []
    matcher = attach_matcher(kb).matcher
    problems = []
    for intent in kb.intents.values():
        if not (intent.needs or intent.follow_ups):
            continue
        for phrase in (intent.question, *intent.similar):
            if not matcher.states_need(phrase, intent.id):
                problems.append(f"{intent.path}:{_line_of(intent.path, phrase)}: question '{phrase}' is not "
                                f"recognised as '{intent.id}' by its needs; see python -m bot explain")
    return problems
