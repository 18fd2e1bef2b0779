"""The knowledge base: FAQ intents and customer-facing texts, loaded from `answers/`."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import frontmatter
import jinja2
import yaml

from bot.kb_flows import intent_parts, parse_handoff, text_key

REPLY_LIMIT_BYTES = 2048  # WeChat passive text reply limit (UTF-8)


class KBError(Exception):
    """The answers folder has problems; `problems` are 'file:line: message' strings."""

    def __init__(self, problems: list[str]):
        """Keep the problem list for callers that print it."""
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Intent:
    """One FAQ / small-talk intent, as written in `answers/<id>.md`."""

    id: str
    title: str
    question: str  # the FAQ's own question
    similar: tuple[str, ...]  # author-written similar questions
    keywords: tuple[str, ...]  # domain terms a question must touch to match
    collect: str | None  # e.g. "tax_id"
    then: str | None  # e.g. "handoff"
    kind: str  # "faq" | "smalltalk"
    images: tuple[dict, ...]  # screenshots for the web page: {"file", "caption", "step", "source"}
    short: str | None  # template used when the full reply exceeds the byte limit
    path: Path
    body_line: int  # line where the body starts (for error messages)
    reply: str | None = None  # the chat reply when it is shorter than the body (the web page)
    handoff: dict[str, str] | None = None  # then: handoff — FLOW_PARTS texts (label, customer, ops …)
    with_tax_id: str | None = None  # then: cache_key — the reply once the tax ID is known
    concepts: tuple = ()  # the intent's own concepts (bot.understanding.lexicon.Concept)
    needs: tuple[tuple[str, ...], ...] = ()  # any one: all its concepts present = this need
    follow_ups: tuple[tuple[str, ...], ...] = ()  # needs judged on the whole message (short follow-ups)
    excludes: tuple[tuple[str, ...], ...] = ()  # any one present in the message: not this need
    min_coverage: float | None = None  # share of the words around the need that must be its own
    scope: str = ""  # "clause" | "message": where a need is judged (default: FAQs clause, small talk message)
    menu: tuple[str, ...] = ()  # the intents its reply lists as 1., 2., …: a number sent next picks one

    @property
    def live(self) -> bool:
        """A handoff with nothing to collect is a live conversation with a person (human mode)."""
        return self.then == "handoff" and self.collect is None

    @property
    def label(self) -> str:
        """What ops call this kind of ticket: `handoff.label`, else the title."""
        return (self.handoff or {}).get("label") or self.title


# Variables each text of answers/texts/ receives (intent templates: bot.kb_flows).
_OPS_LINK = {"console_url": "https://example.invalid/ops/tickets/1", "wecom": True}
TEXT_VARS: dict[str, dict] = {
    "welcome": {},
    "fallback": {"question": "样例问题"},
    "clarify": {"options": ["选项一", "选项二"]},
    "ask-tax-id": {"purpose": "leqi-channel-missing", "known_tax_id": ""},
    "tax-id-invalid": {"value": "91110108551385082X", "reason": "check digit"},
    "tax-id-where": {},
    "identity": {"waiting": False},
    "tax-id-noted": {"tax_id": "91110108551385082Q"},
    "tax-id-reminder": {},
    "ticket-created": {"ticket": "T000001", "tax_id": "91110108551385082Q", "flagged": False,
                       "next": "样例", "live": False},
    "ticket-exists": {"ticket": "T000001", "live": False},
    "ticket-status": {"tickets": [{"number": "T000001", "status": "open", "title": "样例"}]},
    "ops-done": {"ticket": "T000001", "tax_id": "91110108551385082Q", "done": "样例"},
    "resolved": {},
    "ack": {"waiting": False},
    "image-attached": {"ticket": "T000001"},
    "image-no-ticket": {},
    "cancelled": {},
    "voice-empty": {},
    "unsupported": {"kind": "location"},
    "tax-id-forgotten": {},
    "human-ack": {},
    "human-ended": {"reason": "customer"},
    "ops-notify": {"ticket": "T000001", "label": "样例", "tax_id": "91110108551385082Q",
                   "flags": ["校验位未通过"], "words": "样例", "time": "2026-01-01 09:00",
                   "user": "o-abc", "transcript": [], "task": "样例", "live": False} | _OPS_LINK,
    "ops-update": {"ticket": "T000001", "label": "样例", "live": True, "reopened": False,
                   "lines": [{"time": "09:00:00", "who": "customer", "text": "样例", "url": ""}]} | _OPS_LINK,
    "ops-reply": {"text": "样例"},
    "received-later": {},
    "ops-usage": {},
    "desk-note": {"event": "answered", "title": "样例"},
    "desk-status": {"action": "reply", "outcome": "queued", "ticket": "T000001"},
}
REQUIRED_INTENTS = ("greeting", "thanks", "help", "human-agent")



def make_environment() -> jinja2.Environment:
    """The one jinja2 environment: StrictUndefined, no autoescape (plain-text replies)."""
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                              keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True)


def _body_line(raw: str) -> int:
    """1-based line number where the body starts after the front matter."""
    if not raw.startswith("---"):
        return 1
    end = raw.find("\n---", 3)
    return raw[:end].count("\n") + 3 if end >= 0 else 1


def _as_tuple(value, where: str, problems: list[str]) -> tuple[str, ...]:
    """A front-matter list of strings as a tuple, reporting anything else."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"{where}: expected a list of non-empty strings")
        return ()
    return tuple(v.strip() for v in value)


def _alternatives(value, where: str, problems: list[str]) -> tuple[tuple[str, ...], ...]:
    """`needs`/`excludes`: a list whose entries are concept names or lists of names."""
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(f"{where}: expected a list of concept lists, e.g. [[leqi, absent]]")
        return ()
    out = []
    for entry in value:
        names = [entry] if isinstance(entry, str) else entry
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            problems.append(f"{where}: {entry!r} is not a concept name or a list of names")
            continue
        out.append(tuple(n.strip() for n in names))
    return tuple(out)


def _key_line(raw: str, *keys: str) -> int:
    """1-based line of the first front-matter line starting with one of `keys` (1 if none)."""
    starts = tuple(f"{k}:" for k in keys)
    return next((n for n, text in enumerate(raw.splitlines(), 1) if text.startswith(starts)), 1)


def _scope(value, where: str, problems: list[str]) -> str:
    """`scope`: clause or message, or absent."""
    if value in (None, "clause", "message"):
        return value or ""
    problems.append(f"{where}: scope must be clause or message, not {value!r}")
    return ""


def _coverage(value, where: str, problems: list[str]) -> float | None:
    """`coverage`: a number in (0, 1], or absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        problems.append(f"{where}: coverage must be a number in (0, 1], not {value!r}")
        return None
    return float(value)


def _parse_concepts(meta: dict, where: str, problems: list[str]) -> tuple[tuple, tuple, tuple, tuple]:
    """The front matter's own `concepts`, its `needs`, `follow_ups` and `excludes`; names must be known."""
    from bot.understanding.lexicon import lexicon, parse_concept

    own = []
    raw = meta.get("concepts") or {}
    if not isinstance(raw, dict):
        problems.append(f"{where} concepts: expected a mapping name -> [variants]")
        raw = {}
    for name, spec in raw.items():
        try:
            own.append(parse_concept(str(name), spec, f"{where} concepts.{name}"))
        except ValueError as exc:
            problems.append(str(exc))
    needs = _alternatives(meta.get("needs"), f"{where} needs", problems)
    follow_ups = _alternatives(meta.get("follow_ups"), f"{where} follow_ups", problems)
    excludes = _alternatives(meta.get("excludes"), f"{where} excludes", problems)
    known = {c.name for c in own} | set(lexicon().concepts)
    for alt in needs + follow_ups:
        if all(n.startswith("-") for n in alt):
            problems.append(f"{where}: needs line {list(alt)} names only absent concepts")
    for name in sorted({n.lstrip("-") for alt in needs + follow_ups + excludes for n in alt} - known):
        problems.append(f"{where}: unknown concept '{name}' (define it under concepts, or use one of lexicon.yaml)")
    return tuple(own), needs, follow_ups, excludes


def _parse_intent(path: Path, problems: list[str]) -> tuple[Intent, str] | None:
    """Parse one intent file into (Intent, body source); report problems."""
    raw = path.read_text(encoding="utf-8")
    try:
        post = frontmatter.loads(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1  # marks count from the opening ---
        problems.append(f"{path}:{line}: bad front matter: {getattr(exc, 'problem', exc)}")
        return None
    meta = post.metadata
    where = f"{path}:1"
    missing = [k for k in ("id", "title", "question") if not isinstance(meta.get(k), str) or not meta[k].strip()]
    if missing:
        problems.append(f"{where}: front matter lacks {', '.join(missing)}")
        return None
    if meta["id"] != path.stem:
        problems.append(f"{where}: id '{meta['id']}' differs from the file name '{path.stem}'")
    kind = meta.get("kind", "faq")
    if kind not in ("faq", "smalltalk"):
        problems.append(f"{where}: kind must be faq or smalltalk, not {kind!r}")
    images = _images(meta.get("images"), where, problems)
    where_concepts = f"{path}:{_key_line(raw, 'concepts', 'needs')}"
    concepts, needs, follow_ups, excludes = _parse_concepts(meta, where_concepts, problems)
    intent = Intent(
        concepts=concepts, needs=needs, follow_ups=follow_ups, excludes=excludes,
        min_coverage=_coverage(meta.get("coverage"), f"{path}:{_key_line(raw, 'coverage')}", problems),
        scope=_scope(meta.get("scope"), f"{path}:{_key_line(raw, 'scope')}", problems),
        id=meta["id"].strip(), title=meta["title"].strip(), question=meta["question"].strip(),
        similar=_as_tuple(meta.get("similar"), f"{where} similar", problems),
        keywords=_as_tuple(meta.get("keywords"), f"{where} keywords", problems),
        collect=meta.get("collect"), then=meta.get("then"), kind=kind,
        images=tuple(images), short=text_key(meta, "short", where, problems), path=path,
        body_line=_body_line(raw), reply=text_key(meta, "reply", where, problems),
        handoff=parse_handoff(meta.get("handoff"), where, problems),
        with_tax_id=text_key(meta, "with_tax_id", where, problems),
        menu=_as_tuple(meta.get("menu"), f"{path}:{_key_line(raw, 'menu')} menu", problems),
    )
    return intent, post.content


IMAGE_KEYS = {"file", "url", "caption", "step"}
IMAGE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.(png|jpe?g|webp|gif)", re.IGNORECASE)


def _images(raw, where: str, problems: list[str]) -> tuple[dict, ...]:
    """Screenshot entries: `file` (in answers/images/), `caption`, `step` (the numbered step it
    illustrates; none = under the first paragraph), `url` (where the original came from — the page
    never loads it)."""
    if not raw:
        return ()
    if not isinstance(raw, list) or not all(isinstance(i, dict) and ("file" in i or "url" in i) for i in raw):
        problems.append(f"{where}: images must be a list of {{file, caption, step}}")
        return ()
    images = []
    for item in raw:
        name, step = str(item.get("file") or ""), item.get("step")
        if set(item) - IMAGE_KEYS:
            problems.append(f"{where}: unknown image key(s) {', '.join(sorted(set(item) - IMAGE_KEYS))}")
        if name and not IMAGE_FILE.fullmatch(name):
            problems.append(f"{where}: image file {name!r} must be a plain .png/.jpg/.webp/.gif name in images/")
            name = ""
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
            problems.append(f"{where}: image step must be a step number (1, 2, …), not {step!r}")
            step = None
        images.append({"file": name, "caption": str(item.get("caption") or ""), "step": step,
                       "source": str(item.get("url") or "")})
    return tuple(images)


class KnowledgeBase:
    """Intents and texts with their compiled templates; `matcher` is attached by load_kb."""

    def __init__(self, intents: dict[str, Intent], templates: dict[str, jinja2.Template],
                 sources: dict[str, tuple[Path, int, str]]):
        """Hold the parsed intents and compiled templates; the matcher is attached later."""
        self.intents = intents
        self.templates = templates
        self.sources = sources  # name -> (path, body line, source)
        self.matcher = None
        self.public_url = ""  # set by the composition root: answer links in replies are absolute

    def render(self, name: str, **variables) -> str:
        """Render an intent body or a text by name; missing variables raise (StrictUndefined).

        Intent templates get `tax_id` ("" unless given) and `answer_url` (the absolute link to the
        answer page when the public URL is known, else "").
        """
        intent_id = name.split("#")[0]
        context = {}
        if intent_id in self.intents:
            url = self.answer_url(intent_id, self.public_url) if self.public_url else ""
            context = {"tax_id": "", "answer_url": url}
        return self.templates[name].render(**context | variables).strip()

    def chat_reply(self, intent_id: str, **variables) -> str:
        """What the chat sends for an intent: its `reply` when it has one, else its body."""
        name = f"{intent_id}#reply"
        return self.render(name if name in self.templates else intent_id, **variables)

    def part(self, intent_id: str, part: str, **variables) -> str:
        """An intent's front-matter template (e.g. "handoff.done") rendered, "" when it has none."""
        name = f"{intent_id}#{part}"
        return self.render(name, **variables) if name in self.templates else ""

    def answer_url(self, intent_id: str, public_url: str = "") -> str:
        """Link to an FAQ's web page (/answers/<id>), absolute when public_url is known."""
        return f"{public_url.rstrip('/')}/answers/{intent_id}"

    def short_answer(self, intent_id: str, public_url: str = "", **variables) -> str | None:
        """The steps-plus-link version of an answer, or None when its file has no `short`."""
        name = f"{intent_id}#short"
        if name not in self.templates:
            return None
        return self.render(name, answer_url=self.answer_url(intent_id, public_url), **variables)

    def render_answer(self, intent_id: str, public_url: str = "", **variables) -> str:
        """The reply for an intent, shortened to its `short` template past the byte limit."""
        text = self.render(intent_id, answer_url=self.answer_url(intent_id, public_url), **variables)
        if len(text.encode("utf-8")) <= REPLY_LIMIT_BYTES:
            return text
        # `check` reports an over-long answer without `short`; the reply is never cut mid-step
        return self.short_answer(intent_id, public_url, **variables) or text


def _compile(env, name, source, path, line, problems, templates, sources) -> None:
    """Compile one template, reporting syntax errors with file:line."""
    try:
        templates[name] = env.from_string(source)
        sources[name] = (path, line, source)
    except jinja2.TemplateSyntaxError as exc:
        problems.append(f"{path}:{line + (exc.lineno or 1) - 1}: template error: {exc.message}")


def load_kb(folder: str | Path, strict: bool = True) -> KnowledgeBase:
    """Load `answers/`: `*.md` intents and `texts/*.md` texts; KBError lists every problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KBError([f"{folder}: answers folder not found or not a directory"])
    env = make_environment()
    problems: list[str] = []
    intents: dict[str, Intent] = {}
    templates: dict[str, jinja2.Template] = {}
    sources: dict[str, tuple[Path, int, str]] = {}
    for path in sorted(folder.glob("*.md")):
        parsed = _parse_intent(path, problems)
        if parsed is None:
            continue
        intent, body = parsed
        if intent.id in intents:
            problems.append(f"{path}:1: duplicate id '{intent.id}' (also {intents[intent.id].path})")
            continue
        intents[intent.id] = intent
        _compile(env, intent.id, body, path, intent.body_line, problems, templates, sources)
        for part, source in intent_parts(intent):
            _compile(env, f"{intent.id}#{part}", source, path, 1, problems, templates, sources)
    for path in sorted((folder / "texts").glob("*.md")):
        raw = path.read_text(encoding="utf-8")
        _compile(env, path.stem, frontmatter.loads(raw).content, path, _body_line(raw),
                 problems, templates, sources)
    if not intents:
        problems.append(f"{folder}: no intent files (*.md)")
    problems += [f"{i.path}:{_key_line(i.path.read_text(encoding='utf-8'), 'menu')}: menu names unknown intent {m!r}"
                 for i in intents.values() for m in i.menu if m not in intents]
    if problems and strict:
        raise KBError(problems)
    return KnowledgeBase(intents, templates, sources)
