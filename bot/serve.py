"""`python -m bot serve`: the production server (gunicorn with the configured workers)."""
from __future__ import annotations

import logging
import threading
from dataclasses import replace

from gunicorn.app.base import BaseApplication

from bot.config import Config, ConfigError
from bot.reload import Snapshots, watch

log = logging.getLogger(__name__)

# The request line without its query string: WeChat's query carries signature, msg_signature and
# nonce, which a log must never record (with them, a captured plaintext request could be replayed).
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'


class BotServer(BaseApplication):
    """Gunicorn application that builds the Flask app in each worker via create_app."""

    def __init__(self, config: Config, host: str, port: int, workers: int):
        """Gunicorn options from our config: gthread workers, one app per worker; workers load a
        checked snapshot of the answers (bot.reload), renewed on SIGHUP or when a file changes."""
        self.bot_config = config
        self.answers = Snapshots(config.answers_dir)
        self._stop_watch = threading.Event()
        self.options = {
            "bind": f"{host}:{port}", "workers": workers, "worker_class": "gthread", "threads": 4,
            "timeout": 30, "graceful_timeout": 10, "accesslog": "-", "errorlog": "-",
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

        return create_app(self.bot_config, start_worker=True)


def serve(config: Config, host: str | None, port: int | None, workers: int | None) -> int:
    """Run gunicorn until stopped."""
    host = host or config.server.host
    port = port or config.server.port
    workers = workers or config.server.workers
    log.info("serving on %s:%s with %s workers (%s)", host, port, workers, config.source)
    BotServer(config, host, port, workers).run()
    return 0
