"""Helpers shared by the WeChat and WeCom callbacks: signatures, safe XML in and out, AES keys."""
from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import struct
from typing import Callable, Iterable
from xml.parsers import expat

from wechatpy.exceptions import WeChatException
from wechatpy.utils import WeChatSigner

from bot.model import Inbound

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # bytes; WeChat messages are a few KiB at most
MAX_DEPTH = 8  # <xml> plus nested event details (e.g. SendPicsInfo/PicList/item) fit easily
DEFAULT_TOLERANCE = 300  # seconds a request's timestamp may differ from our clock
SUCCESS = "success"  # the reply that tells WeChat "received, nothing to say"

NONCE = re.compile(r"[A-Za-z0-9]{1,64}")
TIMESTAMP = re.compile(r"[0-9]{1,12}")
# C0 (except \t \n) and C1 controls, lone surrogates and the XML non-characters U+FFFE/U+FFFF
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
LONG_ID = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{15,20}(?![A-Za-z0-9])")

# The fields we read: each may appear at most once, as plain text without child elements.
FIELDS = ("ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId",
          "Recognition", "MediaId", "PicUrl", "Event", "Encrypt")
KEEP_SPACES = ("Content", "Recognition")
REQUIRED = ("ToUserName", "FromUserName", "CreateTime", "MsgType")
KINDS = {"text": "text", "voice": "voice", "image": "image", "event": "event",
         "location": "location", "link": "link", "video": "video", "shortvideo": "video"}
# What wechatpy's decryption raises on a wrong key, wrong AppID/CorpID, bad padding or base64.
CRYPTO_ERRORS = (WeChatException, ValueError, binascii.Error, struct.error, IndexError, TypeError)


class Rejected(Exception):
    """A request refused with an HTTP status; `reason` goes to the log, never to the sender."""

    def __init__(self, status: int, reason: str):
        """A refusal with its HTTP status and the reason to log."""
        super().__init__(reason)
        self.status = status
        self.reason = reason


def mask(text: str, limit: int = 300) -> str:
    """Make text safe to log: every 15-20 char ID shows only its first 4 + last 4, cut to `limit`."""
    masked = LONG_ID.sub(lambda m: f"{m[0][:4]}…{m[0][-4:]}", str(text))
    return masked if len(masked) <= limit else masked[:limit] + "…"


def strip_control(text: str) -> str:
    """Drop control characters (newline and tab stay) and characters XML cannot carry."""
    return CONTROL.sub("", text)


def signature(*parts: str) -> str:
    """WeChat's signature: sha1 over the sorted, concatenated parts."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def check_signature(given: str, *parts: str) -> None:
    """Raise Rejected(403) unless `given` signs `parts` (constant-time comparison)."""
    expected = signature(*parts).encode("ascii")
    if not given or not hmac.compare_digest(expected, given.encode("utf-8", "replace")):
        raise Rejected(403, "missing or bad signature")


def check_stamp(timestamp: str, nonce: str, tolerance: int, now: float) -> None:
    """Raise unless the nonce is plain and the timestamp is within ±tolerance s of `now`."""
    if not NONCE.fullmatch(nonce or ""):
        raise Rejected(400, "missing or malformed nonce")
    if not TIMESTAMP.fullmatch(timestamp or ""):
        raise Rejected(403, f"missing or malformed timestamp {timestamp!r}")
    skew = int(timestamp) - now
    if abs(skew) > tolerance:
        raise Rejected(403, f"stale timestamp {timestamp} ({skew:+.0f} s off: replay or clock skew)")


def read_body(stream, limit: int = MAX_BODY) -> bytes:
    """Read the body, at most `limit` bytes; Rejected(413) when there is more (chunked too)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise Rejected(413, f"body larger than {limit} bytes")
    return b"".join(chunks)


def parse_xml(body: bytes | str) -> dict[str, str]:
    """Parse a WeChat XML document safely into {field: text}; Rejected(400) when unsafe or bad.

    Expat is driven directly (no element tree is built): a DTD — and with it every entity
    declaration, billion laughs and external entities — is refused as it starts, as are nesting
    deeper than MAX_DEPTH, a field twice and a field holding elements.
    """
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise Rejected(400, f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    reader = _FieldReader()
    parser = expat.ParserCreate(namespace_separator="}")  # namespaced tags never match a field
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _forbidden("DTD")
    parser.EntityDeclHandler = parser.UnparsedEntityDeclHandler = _forbidden("entity declaration")
    parser.ExternalEntityRefHandler = _forbidden("external entity")
    parser.StartElementHandler, parser.EndElementHandler = reader.start, reader.end
    parser.CharacterDataHandler = reader.text
    try:  # a str input makes expat ignore any encoding="…" declaration
        parser.Parse(strip_control(body), True)
    except (expat.ExpatError, ValueError) as exc:
        raise Rejected(400, f"malformed XML: {exc}") from None
    if reader.root != "xml" or not reader.children:
        raise Rejected(400, "the document is not a non-empty <xml> element")
    return reader.found


def _forbidden(construct: str):
    """An expat handler that refuses the document."""
    def refuse(*_args):
        """Refuse: WeChat never sends it."""
        raise Rejected(400, f"forbidden XML construct: {construct}")
    return refuse


class _FieldReader:
    """Expat handlers keeping the FIELDS under <xml>, each once and as plain text; others ignored."""

    def __init__(self):
        """Nothing read yet."""
        self.found: dict[str, str] = {}
        self.root: str | None = None
        self.children = 0  # elements directly under the root
        self.depth = 0
        self.field: str | None = None  # the field being read
        self.parts: list[str] = []

    def start(self, tag: str, _attributes) -> None:
        """An element opens: track depth, start reading a field, refuse elements inside one."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Rejected(400, f"XML nested deeper than {MAX_DEPTH} levels")
        if self.depth == 1:
            self.root = tag
        elif self.depth == 2:
            self.children += 1
            if tag in FIELDS:
                if tag in self.found:
                    raise Rejected(400, f"duplicate <{tag}>")
                self.field, self.parts = tag, []
        elif self.depth == 3 and self.field is not None:
            raise Rejected(400, f"<{self.field}> contains elements, not text")

    def text(self, data: str) -> None:
        """Character data (CDATA included) of the field being read."""
        if self.depth == 2 and self.field is not None:
            self.parts.append(data)

    def end(self, _tag: str) -> None:
        """An element closes: a field's text is kept (controls dropped, trimmed but for KEEP_SPACES)."""
        if self.depth == 2 and self.field is not None:
            value = strip_control("".join(self.parts))
            self.found[self.field] = value if self.field in KEEP_SPACES else value.strip()
            self.field = None
        self.depth -= 1


def to_inbound(fields: dict[str, str], channel: str) -> Inbound:
    """The channel-neutral Inbound for a parsed message; Rejected(400) when fields are missing."""
    missing = [name for name in REQUIRED if not fields.get(name)]
    if missing:
        raise Rejected(400, "missing " + ", ".join(f"<{name}>" for name in missing))
    if not TIMESTAMP.fullmatch(fields["CreateTime"]):
        raise Rejected(400, "malformed <CreateTime>")
    kind = KINDS.get(fields["MsgType"].lower(), "unknown")
    if kind == "event" and not fields.get("Event"):
        raise Rejected(400, "event without <Event>")
    user, created = fields["FromUserName"], fields["CreateTime"]
    text_field = {"text": "Content", "voice": "Recognition"}.get(kind, "")
    return Inbound(
        user=user, kind=kind, text=fields.get(text_field, ""),
        event=fields.get("Event", "").lower() if kind == "event" else "",
        msg_id=fields.get("MsgId") or f"{user}{created}", created_at=float(created),
        media_id=fields.get("MediaId", ""), pic_url=fields.get("PicUrl", ""), channel=channel,
    )


def cdata(value: str) -> str:
    """`value` as CDATA that cannot break out: controls dropped, `]]>` split over two sections."""
    return "<![CDATA[" + strip_control(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(message: dict[str, str], text: str, now: float) -> str:
    """The passive text reply to `message`: sender and receiver swapped, every value CDATA-safe."""
    return (
        "<xml>"
        f"<ToUserName>{cdata(message['FromUserName'])}</ToUserName>"
        f"<FromUserName>{cdata(message['ToUserName'])}</FromUserName>"
        f"<CreateTime>{int(now)}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(text)}</Content>"
        "</xml>"
    )


def make_cryptos(factory: Callable, token: str, keys: Iterable[tuple[str, str]], own_id: str):
    """One wechatpy crypto per configured (name, EncodingAESKey), current key first."""
    cryptos = []
    for name, key in keys:
        if not key:
            continue
        try:
            valid = len(key) == 43 and len(base64.b64decode(key + "=", validate=True)) == 32
        except binascii.Error:
            valid = False
        if not valid:
            raise ValueError(f"{name} must be the 43-character EncodingAESKey")
        if not own_id:
            raise ValueError(f"{name} needs the AppID/CorpID it is bound to")
        cryptos.append(factory(token, key, own_id))
    return tuple(cryptos)


def with_any_key(cryptos: tuple, attempt: Callable) -> tuple[str, object]:
    """`attempt(crypto)` with each key in turn: (result, crypto) of the first that works."""
    if not cryptos:
        raise Rejected(400, "encrypted request but no EncodingAESKey configured")
    failures = []
    for index, crypto in enumerate(cryptos):
        try:
            result = attempt(crypto)
        except CRYPTO_ERRORS as exc:
            failures.append(f"{'current' if index == 0 else 'previous'} key: {type(exc).__name__}")
            continue
        if index:
            log.debug("decrypted with the previous EncodingAESKey (key rotation in progress)")
        return result, crypto
    raise Rejected(400, "cannot decrypt (" + "; ".join(failures) + ")")
