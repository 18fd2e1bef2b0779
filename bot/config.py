"""Configuration: one TOML file loaded once into frozen dataclasses; secrets may come from env."""
from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from bot.localtime import zone

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ANSWERS = PACKAGE_ROOT / "answers"
MAX_IDLE_MINUTES = 24 * 60  # stores keep conversation state a day (bot.model.STATE_KEEP_SECONDS)


class ConfigError(Exception):
    """The configuration file is missing or invalid."""


@dataclass(frozen=True)
class WeChatConfig:
    """The 公众号 (Official Account)."""

    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    encoding_aes_key: str = ""
    previous_encoding_aes_key: str = ""  # accepted during a key rotation
    mode: str = ""  # safe | compatible | plain; "" = safe with an encoding_aes_key, else plain
    api_base_url: str = "https://api.weixin.qq.com"
    timestamp_tolerance: int = 300
    http_timeout: float = 5.0


@dataclass(frozen=True)
class WeComConfig:
    """The WeCom self-built app callback."""

    corp_id: str = ""
    agent_id: str = ""
    secret: str = ""
    token: str = ""
    encoding_aes_key: str = ""
    previous_encoding_aes_key: str = ""  # accepted during a key rotation
    api_base_url: str = "https://qyapi.weixin.qq.com"
    timestamp_tolerance: int = 300
    http_timeout: float = 5.0
    ops_users: tuple[str, ...] = ()  # member userids whose app messages are ops commands ("T000123 …")


@dataclass(frozen=True)
class HandoffConfig:
    """Live conversations with a person (human mode)."""

    idle_minutes: int = 60  # a live conversation nobody wrote in for this long goes back to the bot
    ops_update_seconds: int = 30  # what customers write on a ticket reaches ops at most this often per ticket


@dataclass(frozen=True)
class OpsAccount:
    """One console operator from `[[ops.accounts]]` (line printed by `python -m bot ops-user add`)."""

    name: str
    password_hash: str  # werkzeug.security format ("scrypt:…$salt$hash"), never a plaintext password


@dataclass(frozen=True)
class OpsConfig:
    """The ops side: WeCom group robot and the console."""

    webhook_url: str = ""
    console_user: str = "ops"  # a single account (console_password plaintext or a werkzeug hash)
    console_password: str = ""
    accounts: tuple[OpsAccount, ...] = ()
    session_idle_minutes: int = 480  # a console session unused this long ends (one working day)
    session_max_days: int = 7  # and any session ends after this long
    robot_per_minute: int = 20
    http_timeout: float = 5.0


@dataclass(frozen=True)
class StorageConfig:
    """Where state lives."""

    url: str = "sqlite:///var/bot.db"
    redis_url: str = ""
    spool_dir: str = ""  # local disk for messages the store cannot take; "" = spool/ beside a SQLite file, else var/spool


@dataclass(frozen=True)
class ServerConfig:
    """The HTTP server."""

    public_url: str = "http://127.0.0.1:8080"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    worker_class: str = "gthread"  # gunicorn worker class: sync | gthread (see bench/README.md)
    # Threads per gthread worker. A thread reading a body is held until it arrives or the body
    # deadline (bot.channels.deadline, 2 s) cuts it off, so threads bound how many stalled clients a
    # worker absorbs while still answering others within WeChat's 5 s (tests/test_attacks.py: 12
    # stallers on 2 workers). Threads waiting on sockets cost no CPU.
    threads: int = 16
    # Messages a worker works on at once, once their bodies are in (its other threads keep reading
    # bodies and writing replies); 0 = as many as threads. One at a time keeps the threads from
    # fighting over the GIL and SQLite's writer lock (bench/README.md, "Worker model").
    messages_at_once: int = 1
    access_log: bool = False  # one log line per request (costs ~4 % of a worker under load)
    secret_key: str = ""  # signs console sessions; random per start when empty
    outbox_worker: bool = True  # run the outbox delivery thread inside the server
    watch_answers: bool = True  # reload answers/ when a file changes (and passes check); SIGHUP always does
    metrics_token: str = ""  # GET /metrics needs "Authorization: Bearer <token>"; "" = loopback clients only
    dev: bool = False  # allow the example/empty token (loopback only): a trial run, never production
    timezone: str = "Asia/Shanghai"  # times in the console and `report` (IANA name)


@dataclass(frozen=True)
class MatchingConfig:
    """Decision thresholds of the matcher (chosen by measurement, see README)."""

    answer_threshold: float = 0.0  # 0 means: use the matcher's measured default
    clarify_margin: float = 0.0


@dataclass(frozen=True)
class Config:
    """The whole configuration; a missing optional section is None (feature off)."""

    wechat: WeChatConfig = field(default_factory=WeChatConfig)
    wecom: WeComConfig | None = None
    ops: OpsConfig | None = None
    storage: StorageConfig = field(default_factory=StorageConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    handoff: HandoffConfig = field(default_factory=HandoffConfig)
    answers_dir: Path = DEFAULT_ANSWERS
    source: str = "<defaults>"


SECTIONS = {
    "wechat": WeChatConfig, "wecom": WeComConfig, "ops": OpsConfig,
    "storage": StorageConfig, "server": ServerConfig, "matching": MatchingConfig,
    "handoff": HandoffConfig,
}
OPTIONAL = ("wecom", "ops")


def _build_section(name: str, cls: type, raw: dict, env: dict, source: str):
    """Build one section from TOML values overlaid with BOT_<SECTION>_<KEY> env vars."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"{source}: [{name}] unknown key(s): {', '.join(sorted(unknown))}")
    values = dict(raw)
    for key, f in known.items():
        env_value = env.get(f"BOT_{name.upper()}_{key.upper()}")
        if env_value is not None:
            values[key] = env_value
    for key, value in values.items():
        default = getattr(cls(), key)
        try:
            values[key] = _coerce(value, default, key)
        except ValueError as exc:
            raise ConfigError(f"{source}: [{name}] {key}: {exc}") from None
    return cls(**values)


def _accounts(value) -> tuple[OpsAccount, ...]:
    """`[[ops.accounts]]` tables: each exactly a name and a werkzeug password hash."""
    if not isinstance(value, list):
        raise ValueError("expected [[ops.accounts]] tables")
    accounts = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"name", "password_hash"}:
            raise ValueError("each [[ops.accounts]] needs exactly name and password_hash")
        name, hashed = item["name"], item["password_hash"]
        if not (isinstance(name, str) and name.strip() and isinstance(hashed, str) and hashed.count("$") == 2):
            raise ValueError(f"account {name!r}: a name and a hash from `python -m bot ops-user add`")
        accounts.append(OpsAccount(name.strip(), hashed))
    return tuple(accounts)


def _coerce(value, default, key: str = ""):
    """Coerce an env string (or TOML value) to the type of the field's default."""
    if isinstance(default, tuple) and key == "accounts":
        return _accounts(value)
    if isinstance(default, tuple):  # a list of strings; from an env var, comma-separated
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ValueError("expected a list of strings")
        return tuple(i.strip() for i in items if i.strip())
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def load_config(path: str | os.PathLike | None, env: dict | None = None) -> Config:
    """Load a TOML file (or defaults when path is None) into a frozen Config."""
    env = dict(os.environ if env is None else env)
    raw: dict = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    extra = set(raw) - set(SECTIONS) - {"answers"}
    if extra:
        raise ConfigError(f"{source}: unknown section(s): {', '.join(sorted(extra))}")
    if path is not None and "wechat" not in raw:
        raise ConfigError(f"{source}: the [wechat] section is required")
    built = {}
    for name, cls in SECTIONS.items():
        if name in OPTIONAL and name not in raw:
            built[name] = None
            log.info("no [%s] section: %s disabled", name,
                     "the /wecom callback" if name == "wecom" else "ops notification and console")
            continue
        built[name] = _build_section(name, cls, raw.get(name, {}), env, source)
    config = Config(**built, source=source)
    if not 1 <= config.handoff.idle_minutes <= MAX_IDLE_MINUTES:
        raise ConfigError(f"{source}: [handoff] idle_minutes must be 1..{MAX_IDLE_MINUTES}")
    try:
        zone(config.server.timezone)
    except ValueError as exc:
        raise ConfigError(f"{source}: [server] timezone: {exc}") from None
    answers = raw.get("answers", {}).get("dir")
    if answers:
        base = Path(path).resolve().parent if path else Path.cwd()
        config = replace(config, answers_dir=(base / answers).resolve())
    return config
