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


def _kind(name: str):
    """The class a field's values have (an Optional's inner class)."""
    hint = _TYPES[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.get_origin(hint) or hint


def _to_json(kind):
    """How a value of `kind` becomes JSON: enums by value, tuples as lists."""
    if isinstance(kind, type) and issubclass(kind, Enum):
        return lambda value: value.value if value is not None else None
    if kind is tuple:
        return lambda value: [item.value if isinstance(item, Enum) else item for item in value]
    return None


def _from_json(kind):
    """How a stored value becomes a `kind` again (enum member, tuple)."""
    if isinstance(kind, type) and issubclass(kind, Enum):
        return lambda value: kind(value) if value is not None else None
    if kind is tuple:
        return tuple
    return None


_ENCODE = {name: _to_json(_kind(name)) for name in _FIELDS}  # built once: a message encodes one state
_DECODE = {name: _from_json(_kind(name)) for name in _FIELDS}


def encode_session(session: Session) -> str:
    """The state to persist (everything but the tax ID) as JSON text."""
    data = {}
    for name, convert in _ENCODE.items():
        value = getattr(session, name)
        data[name] = convert(value) if convert else value
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode_session(raw: str | bytes | dict | None, tax_id: str = "") -> Session:
    """The stored state (JSON text, or a value the driver already decoded) plus the tax ID."""
    if raw is None or raw == "":
        return Session(tax_id=tax_id or "")
    try:
        data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        if not isinstance(data, dict):
            raise TypeError(f"state is a {type(data).__name__}")
        values = {k: _DECODE[k](v) if _DECODE[k] else v for k, v in data.items() if k in _FIELDS}
        return Session(**values, tax_id=tax_id or "")
    except (ValueError, TypeError, AttributeError, KeyError):
        log.warning("store: unreadable session state dropped: %.200r", raw)
        return Session(tax_id=tax_id or "")
