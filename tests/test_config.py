"""Config loading: TOML into frozen dataclasses, env secrets, optional sections, clear errors."""
from __future__ import annotations

import dataclasses
import re
import logging

import pytest

from bot.config import ConfigError, load_config

from .conftest import ROOT


def write(tmp_path, text: str):
    """A config file with the given TOML."""
    path = tmp_path / "bot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads_and_documents_every_key():
    config = load_config(ROOT / "config.example.toml", env={})
    assert config.wechat.token == "change-me"
    assert config.ops is not None and config.wecom is None
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for name in ("token", "app_id", "app_secret", "encoding_aes_key", "api_base_url", "corp_id",
                 "agent_id", "secret", "webhook_url", "console_password", "url", "redis_url",
                 "public_url", "workers", "mode", "spool_dir", "metrics_token", "dev"):
        assert f"{name} =" in example, name


def test_config_is_frozen(tmp_path):
    config = load_config(write(tmp_path, '[wechat]\ntoken = "t"\n'), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.wechat.token = "other"


def test_secrets_come_from_env(tmp_path):
    path = write(tmp_path, '[wechat]\ntoken = "t"\napp_secret = ""\n[ops]\nwebhook_url = ""\n')
    env = {"BOT_WECHAT_APP_SECRET": "s3cret", "BOT_OPS_CONSOLE_PASSWORD": "pw", "BOT_SERVER_WORKERS": "4"}
    config = load_config(path, env=env)
    assert (config.wechat.app_secret, config.ops.console_password, config.server.workers) == ("s3cret", "pw", 4)


def test_missing_optional_sections_turn_features_off_with_a_log_line(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bot.config")
    config = load_config(write(tmp_path, '[wechat]\ntoken = "t"\n'), env={})
    assert config.wecom is None and config.ops is None
    assert any("[wecom]" in r.message for r in caplog.records)
    assert any("[ops]" in r.message for r in caplog.records)


@pytest.mark.parametrize("text, message", [
    ('[server]\nport = 1\n', "[wechat] section is required"),
    ('[wechat]\ntoken = "t"\ntokn = "typo"\n', "unknown key(s): tokn"),
    ('[wechat]\ntoken = "t"\n[wechatt]\n', "unknown section(s): wechatt"),
    ('[wechat\ntoken = "t"\n', "invalid TOML"),
    ('[wechat]\ntoken = 5\n', "expected a string"),
    ('[wechat]\ntoken = "t"\n[server]\nworkers = "many"\n', "workers"),
    ('[wechat]\ntoken = "t"\n[handoff]\nidle_minutes = 0\n', "idle_minutes must be 1..1440"),
    ('[wechat]\ntoken = "t"\n[wecom]\nops_users = "zhangsan"\n[handoff]\nidle_minutes = 2000\n', "1..1440"),
    ('[wechat]\ntoken = "t"\n[wecom]\nops_users = [1, 2]\n', "expected a list of strings"),
])
def test_bad_config_gives_a_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_config(write(tmp_path, text), env={})


def test_ops_members_and_handoff_limits(tmp_path):
    """[wecom] ops_users is a list (an env var: comma-separated); [handoff] has its own limits."""
    path = write(tmp_path, '[wechat]\ntoken = "t"\n[wecom]\nops_users = ["zhangsan"]\n[handoff]\nidle_minutes = 15\n')
    config = load_config(path, env={})
    assert (config.wecom.ops_users, config.handoff.idle_minutes) == (("zhangsan",), 15)
    from_env = load_config(path, env={"BOT_WECOM_OPS_USERS": "lisi, wangwu ,"})
    assert from_env.wecom.ops_users == ("lisi", "wangwu")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_answers_dir_is_relative_to_the_config_file(tmp_path):
    config = load_config(write(tmp_path, '[wechat]\ntoken = "t"\n[answers]\ndir = "faq"\n'), env={})
    assert config.answers_dir == (tmp_path / "faq").resolve()


def test_console_accounts_come_from_ops_accounts(tmp_path):
    path = write(tmp_path, '[wechat]\ntoken = "t"\n[ops]\n[[ops.accounts]]\nname = "王"\n'
                           'password_hash = "scrypt:32768:8:1$salt$hash"\n')
    (account,) = load_config(path, env={}).ops.accounts
    assert (account.name, account.password_hash) == ("王", "scrypt:32768:8:1$salt$hash")


@pytest.mark.parametrize("accounts, message", [
    ('[[ops.accounts]]\nname = "王"\npassword_hash = "plaintext"\n', "ops-user add"),
    ('[[ops.accounts]]\nname = "王"\n', "exactly name and password_hash"),
    ('accounts = "王"\n', "[[ops.accounts]]"),
])
def test_bad_console_accounts_are_clear_errors(tmp_path, accounts, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, f'[wechat]\ntoken = "t"\n[ops]\n{accounts}'), env={})


def test_an_unknown_time_zone_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="timezone"):
        load_config(write(tmp_path, '[wechat]\ntoken = "t"\n[server]\ntimezone = "Mars/Olympus"\n'), env={})
