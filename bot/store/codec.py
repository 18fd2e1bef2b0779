"""The one session codec: a Session to the JSON text every backend stores, and back.

The remembered tax ID is not part of it (it lives in the users table, kept longer than the
30-minute conversation). Generic over Session's fields: enums are stored by value, tuples as lists,
so a new field needs no change here. Unreadable state starts a fresh conversation.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import types
import typing
from enum import Enum

from bot.model import Session

log = logging.getLogger(__name__)

_FIELDS = {f.name: f for f in dataclasses.fields(Session) if f.name != "tax_id"}
_TYPES = typing.get_type_hints(Session)


def _plain(value):
    """A field value as JSON: enums by value, tuples as lists."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _typed(name: str, value):
    """A stored value back as the field's type (enum member, tuple)."""
    hint = _TYPES[name]
    if value is not None and typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    kind = typing.get_origin(hint) or hint
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if kind is tuple:
        return tuple(value)
    return value


def encode_session(session: Session) -> str:
    """The state to persist (everything but the tax ID) as JSON text."""
    data = {name: _plain(getattr(session, name)) for name in _FIELDS}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode_session(raw: str | bytes | dict | None, tax_id: str = "") -> Session:
    """The stored state (JSON text, or a value the driver already decoded) plus the tax ID."""
    if raw is None or raw == "":
        return Session(tax_id=tax_id or "")
    try:
        data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        if not isinstance(data, dict):
            raise TypeError(f"state is a {type(data).__name__}")
        values = {k: _typed(k, v) for k, v in data.items() if k in _FIELDS}
        return Session(**values, tax_id=tax_id or "")
    except (ValueError, TypeError, AttributeError, KeyError):
        log.warning("store: unreadable session state dropped: %.200r", raw)
        return Session(tax_id=tax_id or "")
