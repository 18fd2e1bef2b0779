"""`python -m bot serve`: the production server (gunicorn with the configured workers)."""
from __future__ import annotations

import gc
import ipaddress
import logging
import socket
import threading
from dataclasses import replace
from urllib.parse import urlsplit

from gunicorn.app.base import BaseApplication

from bot.config import Config, ConfigError
from bot.reload import Snapshots, watch

log = logging.getLogger(__name__)

WORKER_CLASSES = ("sync", "gthread")
# The request line without its query string: WeChat's query carries signature, msg_signature and
# nonce, which a log must never record (with them, a captured plaintext request could be replayed).
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'


class BotServer(BaseApplication):
    """Gunicorn application that builds the Flask app in each worker via create_app."""

    def __init__(self, config: Config, host: str, port: int, workers: int):
        """Gunicorn options from our config ([server] worker_class, threads, access_log), one app per
        worker; workers load a checked snapshot of the answers (bot.reload), renewed on SIGHUP or
        when a file changes."""
        self.bot_config = config
        server = config.server
        if server.worker_class not in WORKER_CLASSES:
            raise ConfigError(f"[server] worker_class must be one of {', '.join(WORKER_CLASSES)}: "
                              f"{server.worker_class!r}")
        self.answers = Snapshots(config.answers_dir)
        self._stop_watch = threading.Event()
        self.options = {
            "bind": f"{host}:{port}", "workers": workers, "worker_class": server.worker_class,
            "threads": server.threads, "timeout": 30, "graceful_timeout": 10,
            "accesslog": "-" if server.access_log else None, "errorlog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            "limit_request_field_size": 8190, "proc_name": "leqi-bot",
            "control_socket_disable": True,  # gunicorn 27's shared ~/.gunicorn socket: one server per host breaks
            "when_ready": self._watch_answers, "on_exit": lambda _arbiter: self._stop(),
        }
        super().__init__()

    def load_config(self):
        """Hand our options to gunicorn; check the answers (at start and on every SIGHUP)."""
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if not self.answers.refresh() and self.answers.current is None:
            raise ConfigError(f"answers in {self.answers.folder} fail `python -m bot check` (see the log)")
        self.bot_config = replace(self.bot_config, answers_dir=self.answers.current)

    def _watch_answers(self, _arbiter) -> None:
        """In the master once it serves: reload when an answer file changes and passes check."""
        if self.bot_config.server.watch_answers:
            watch(self.answers, self._stop_watch)

    def _stop(self) -> None:
        """On exit: stop watching, remove the snapshots."""
        self._stop_watch.set()
        self.answers.close()

    def load(self):
        """Build the app inside the worker (each worker gets its own store connections)."""
        from bot.app import create_app

        app = create_app(self.bot_config, start_worker=True)
        settle_heap()
        return app


def settle_heap() -> None:
    """Move what the worker built (answers, jieba's and pinyin's tables: ~330,000 objects) out of
    the garbage collector's sight: a full collection over them took ~96 ms (bench/README.md, gc),
    a pause in some customer's reply; what is made later is still collected."""
    gc.collect()
    gc.freeze()


EXAMPLE_TOKENS = ("", "change-me")  # config.example.toml's placeholder, or none at all


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) resolves only to loopback addresses."""
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_safe_to_serve(config: Config, host: str, dev: bool) -> None:
    """Refuse the example or an empty token unless in dev mode on loopback; warn about loopback links."""
    dev = dev or config.server.dev
    if dev and not is_loopback(host):
        raise ConfigError(f"dev mode serves on loopback only, not on {host!r}: set [server] host = "
                          '"127.0.0.1", or a real [wechat] token and dev = false')
    if config.wechat.token.strip() in EXAMPLE_TOKENS:
        if not dev:
            raise ConfigError(f"{config.source}: [wechat] token is empty or the example's 'change-me': "
                              "set the token from the 公众号 admin (or BOT_WECHAT_TOKEN); for a trial "
                              "on this machine only, pass --dev or set [server] dev = true")
        log.warning("dev mode: [wechat] token is the example's; anyone who knows it can post messages")
    link_host = urlsplit(config.server.public_url).hostname or ""
    if config.ops is not None and is_loopback(link_host):
        log.warning("[server] public_url %s is a loopback address: the console links in ops "
                    "messages will not open from anyone else's phone", config.server.public_url)


def serve(config: Config, host: str | None, port: int | None, workers: int | None,
          dev: bool = False) -> int:
    """Run gunicorn until stopped (after refusing unsafe settings)."""
    host = host or config.server.host
    port = port or config.server.port
    workers = workers or config.server.workers
    check_safe_to_serve(config, host, dev)
    log.info("serving on %s:%s with %s workers (%s)", host, port, workers, config.source)
    BotServer(config, host, port, workers).run()
    return 0
