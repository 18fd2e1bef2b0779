"""`serve`'s safe defaults (bot.serve.check_safe_to_serve) and the example config's trial run."""
from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from bot.config import ConfigError, OpsConfig, ServerConfig, WeChatConfig, load_config
from bot.serve import check_safe_to_serve
from tests.conftest import ROOT


def config(token: str, dev: bool = False, public_url: str = "https://bot.example.invalid"):
    """A config with this token, dev flag and public URL, ops enabled."""
    base = load_config(None)
    return replace(base, wechat=WeChatConfig(token=token), ops=OpsConfig(),
                   server=replace(ServerConfig(), dev=dev, public_url=public_url))


@pytest.mark.parametrize("token, dev, flag, host, ok", [
    ("a-real-token", False, False, "0.0.0.0", True),
    ("change-me", False, False, "127.0.0.1", False),
    ("", False, False, "127.0.0.1", False),
    ("  ", False, False, "127.0.0.1", False),
    ("change-me", True, False, "127.0.0.1", True),
    ("change-me", False, True, "localhost", True),
    ("change-me", False, True, "::1", True),
    ("change-me", True, False, "0.0.0.0", False),
    ("a-real-token", False, True, "10.0.0.5", False),
], ids=["real-token", "example-token", "empty", "blank", "dev-config", "dev-flag", "dev-ipv6",
        "dev-on-all-interfaces", "dev-off-loopback"])
def test_serve_refuses_the_example_token_outside_dev_on_loopback(token, dev, flag, host, ok):
    """The example/empty token needs --dev or [server] dev = true, and dev mode needs loopback."""
    if ok:
        check_safe_to_serve(config(token, dev), host, flag)
        return
    with pytest.raises(ConfigError) as error:
        check_safe_to_serve(config(token, dev), host, flag)
    assert "token" in str(error.value) or "loopback" in str(error.value)


@pytest.mark.parametrize("public_url, warned", [
    ("http://127.0.0.1:8080", True), ("http://localhost:8080", True), ("http://[::1]/", True),
    ("https://bot.example.invalid", False)])
def test_a_loopback_public_url_is_warned_about(caplog, public_url, warned):
    """Ops links built from a loopback public_url open nowhere but here: serve says so."""
    with caplog.at_level(logging.WARNING, logger="bot.serve"):
        check_safe_to_serve(config("a-real-token", public_url=public_url), "127.0.0.1", False)
    assert ("public_url" in caplog.text) == warned


def test_the_example_config_is_a_trial_run_that_serve_accepts(caplog):
    """README's run command copies config.example.toml: it serves on loopback in dev mode, with
    warnings about the example token."""
    example = load_config(ROOT / "config.example.toml")
    with caplog.at_level(logging.WARNING, logger="bot.serve"):
        check_safe_to_serve(example, example.server.host, False)
    assert example.server.dev and "example" in caplog.text
