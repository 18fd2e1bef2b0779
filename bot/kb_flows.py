"""The flow keys an FAQ's front matter may carry (issue 7): `reply`, `handoff:` texts, `with_tax_id`.

Each becomes a template "<intent id>#<part>" in the knowledge base, rendered with PART_VARS' names
(`python -m bot check` renders them with these sample values and reports unknown ones).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.kb import Intent

# Variables each template receives. Intent bodies all get INTENT_VARS; texts get their own.
INTENT_VARS = {"tax_id": "", "answer_url": "https://example.invalid/answers/x"}

# Templates an FAQ's front matter may add, compiled as "<id>#<part>", with the variables each gets.
_TICKET = {"ticket": "T000001", "tax_id": "91110108551385082Q"}
PART_VARS: dict[str, dict] = {
    "short": INTENT_VARS,
    "reply": INTENT_VARS,
    "handoff.customer": _TICKET | {"flagged": False},  # told when the ticket opens
    "handoff.ops": _TICKET | {"words": "样例"},  # what ops must do
    "handoff.done": _TICKET,  # sent to the customer when ops resolve the ticket
    "handoff.still_missing": {},  # customer says it still fails after `done`: ask for a screenshot
    "with_tax_id": {"tax_id": "91110108551385082Q"},  # then: cache_key, once the tax ID is known
}
HANDOFF_KEYS = ("label", "customer", "ops", "done", "still_missing")
HANDOFF_REQUIRED = ("customer", "ops", "done")


def text_key(meta: dict, key: str, where: str, problems: list[str]) -> str | None:
    """An optional front-matter template (a string), reporting anything else."""
    value = meta.get(key)
    if value is not None and not isinstance(value, str):
        problems.append(f"{where}: {key} must be text (a template), not {type(value).__name__}")
        return None
    return value


def parse_handoff(value, where: str, problems: list[str]) -> dict[str, str] | None:
    """The `handoff:` mapping of texts (HANDOFF_KEYS), reporting unknown keys and non-text values."""
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(f"{where}: handoff must be a mapping of {', '.join(HANDOFF_KEYS)}")
        return None
    unknown = sorted(set(map(str, value)) - set(HANDOFF_KEYS))
    if unknown:
        problems.append(f"{where}: unknown handoff key(s) {', '.join(unknown)} "
                        f"(expected {', '.join(HANDOFF_KEYS)})")
    texts = {k: v for k, v in value.items() if k in HANDOFF_KEYS}
    bad = [k for k, v in texts.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        problems.append(f"{where}: handoff {', '.join(bad)} must be non-empty text")
    return {k: v for k, v in texts.items() if k not in bad}


def intent_parts(intent: Intent) -> list[tuple[str, str]]:
    """(part, template source) of every front-matter template of an intent (see PART_VARS)."""
    parts = [("short", intent.short), ("reply", intent.reply), ("with_tax_id", intent.with_tax_id)]
    parts += [(f"handoff.{key}", text) for key, text in (intent.handoff or {}).items() if key != "label"]
    return [(part, source) for part, source in parts if source]
