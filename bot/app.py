"""The composition root: `create_app(config)` wires the knowledge base, store, service and channels."""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass

from flask import Flask
from flask.sessions import SessionInterface

from pathlib import Path

from sqlalchemy.engine import make_url

from bot.config import Config, load_config
from bot.conversation import Conversation, Limits
from bot.desk import TicketDesk
from bot.kb import KnowledgeBase, load_kb
from bot.understanding.matcher import attach_matcher
from bot.service import BotService
from bot.slots import message_slots
from bot.spool import Spool, SpoolingHandler, start_drain_thread
from bot.store import Store, open_store

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Parts:
    """Everything the app is made of, for the CLI and tests."""

    config: Config
    kb: KnowledgeBase
    store: Store
    service: BotService
    desk: TicketDesk


def build_parts(config: Config, store: Store | None = None) -> Parts:
    """Load the KB, open the store and build the service (no HTTP)."""
    kb = attach_matcher(load_kb(config.answers_dir), config.matching)
    kb.public_url = public_url = config.server.public_url
    store = store or open_store(config.storage)
    desk = TicketDesk.of(kb, store, public_url, config.ops is not None, push_channels=push_channels(config),
                         wecom_ops=bool(config.wecom and config.wecom.ops_users),
                         fetch_media=MediaFetcher(config, store),
                         coalesce_seconds=config.handoff.ops_update_seconds)
    conversation = Conversation(Limits(human_idle_seconds=config.handoff.idle_minutes * 60))
    service = BotService(kb, store, public_url, ops_enabled=config.ops is not None, desk=desk,
                         conversation=conversation)
    return Parts(config, kb, store, service, desk)


def push_channels(config: Config) -> frozenset[str]:
    """The customer channels whose messages can be pushed (else they wait for the next reply)."""
    wc = config.wecom
    channels = {"wechat"} if config.wechat.app_secret else set()
    if wc and wc.corp_id and wc.secret and wc.agent_id:
        channels.add("wecom")
    return frozenset(channels)


class MediaFetcher:
    """(channel, media_id) → (content type, bytes) with media/get of that channel's API; the
    clients (and wechatpy) are made on first use."""

    def __init__(self, config: Config, store: Store):
        """Remember what the clients need."""
        self.config, self.store, self._fetch = config, store, None

    def __call__(self, channel: str, media_id: str) -> tuple[str, bytes]:
        """Download one media file; LookupError when the channel has no API configured."""
        if self._fetch is None:
            from bot.channels.media import media_downloader

            self._fetch = media_downloader(self.config, self.store)
        return self._fetch(channel, media_id)


def create_app(config: Config | None = None, start_worker: bool = False, store: Store | None = None) -> Flask:
    """The Flask application factory (gunicorn calls this once per worker)."""
    from bot.channels import ops, web, wechat, wecom  # channels import Flask/wechatpy: keep them here

    config = config or load_config(os.environ.get("BOT_CONFIG"))
    parts = build_parts(config, store)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.secret_key = _secret_key(config)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.session_interface = NoCookieSession()
    app.extensions["bot"] = parts
    app.register_blueprint(web.web_blueprint(parts))
    handle = spooling_handler(parts)
    app.extensions["spool"] = handle
    slot = message_slots(config.server.messages_at_once)
    if slot is not None:
        parts.service.sleep = slot.sleep  # a retry waiting for another attempt's reply frees its slot
    app.register_blueprint(wechat.wechat_blueprint(config.wechat, handle, slot=slot))
    if config.wecom is not None:
        app.register_blueprint(wecom.wecom_blueprint(config.wecom, _wecom_handler(parts, handle), slot=slot))
    if config.ops is not None:
        app.register_blueprint(ops.ops_blueprint(app), url_prefix="/ops")
    if start_worker and config.server.outbox_worker:
        _start_outbox(parts)
    if start_worker and handle.spool is not None:
        start_drain_thread(handle)
    return app


class NoCookieSession(SessionInterface):
    """No Flask cookie session: the console keeps its sessions server-side (bot/channels/ops_session.py),
    so no request pays for the signing serializer Flask's default interface builds per request."""

    def open_session(self, app, request):
        """None: Flask uses a NullSession, which refuses writes (nothing may rely on a cookie session)."""
        return None

    def save_session(self, app, session, response) -> None:
        """Nothing to save."""


def spool_folder(config: Config) -> Path | None:
    """[storage] spool_dir, else a spool/ folder beside a SQLite file, else var/spool (None: in memory)."""
    if config.storage.spool_dir:
        return Path(config.storage.spool_dir)
    url = make_url(config.storage.url)
    if url.get_backend_name() == "sqlite":
        return Path(url.database).parent / "spool" if url.database not in (None, "", ":memory:") else None
    return Path("var") / "spool"


def spooling_handler(parts: Parts) -> SpoolingHandler:
    """The webhook handler: the service with the local spool behind it."""
    folder = spool_folder(parts.config)
    spool = Spool(folder) if folder is not None else None
    return SpoolingHandler(parts.service, spool, lambda: parts.kb.render("received-later"))


def _wecom_handler(parts: Parts, bot_handle):
    """/wecom's handler: ops members' commands (`[wecom] ops_users`) go to the desk, others to
    `bot_handle` (the service behind the spool)."""
    if not parts.config.wecom.ops_users:
        return bot_handle
    from bot.desk.wecom_ops import WeComOps

    log.info("wecom: %d ops member(s) may answer tickets from the app", len(parts.config.wecom.ops_users))
    return WeComOps(parts.desk, parts.store, parts.config.wecom.ops_users, bot_handle)


def _secret_key(config: Config) -> str:
    """Console session key: configured, else derived from secrets so all workers agree."""
    if config.server.secret_key:
        return config.server.secret_key
    material = "|".join([config.ops.console_password if config.ops else "", config.wechat.token,
                         config.wechat.app_secret, config.wechat.encoding_aes_key])
    if not material.strip("|"):
        return secrets.token_hex(32)
    return hashlib.sha256(("bot-console|" + material).encode()).hexdigest()


def outbox_worker(parts: Parts):
    """An OutboxWorker with the clients the config enables."""
    from bot.channels.robot import RobotClient
    from bot.channels.wechat_api import CustomerService
    from bot.channels.wecom_api import WeComPush
    from bot.outbox import OutboxWorker

    config = parts.config
    ops, wc = config.ops, config.wecom
    robot = RobotClient(ops.webhook_url, ops.http_timeout) if ops and ops.webhook_url else None
    customer = CustomerService(config.wechat, parts.store.tokens) if config.wechat.app_secret else None
    wecom = WeComPush(wc, parts.store.tokens) if wc and wc.corp_id and wc.secret and wc.agent_id else None
    if robot is None:
        log.info("outbox: no [ops] webhook_url, ops notifications stay queued")
    if customer is None:
        log.info("outbox: no [wechat] app_secret, follow-ups go out with the customer's next reply")
    if wecom is None and wc is not None:
        log.info("outbox: [wecom] lacks corp_id/secret/agent_id, WeCom follow-ups go out with the next reply")
    per_minute = ops.robot_per_minute if ops else 20
    timeouts = [config.wechat.http_timeout] + [c.http_timeout for c in (ops, wc) if c is not None]
    return OutboxWorker(parts.store, robot, customer, wecom=wecom, ops_per_minute=per_minute,
                        lease=2 * max(timeouts) + 2,  # a send is over within two timeouts
                        on_hold=lambda row, error: parts.desk.delivery_held(row.ticket_id, error.code))


def _start_outbox(parts: Parts) -> None:
    """Run the outbox delivery thread inside this process."""
    from bot.outbox import start_outbox_thread

    start_outbox_thread(outbox_worker(parts))
