"""GET /metrics: bearer token or loopback only, figures from the store's cheap counts."""
from __future__ import annotations

from dataclasses import replace

import pytest

from bot.app import create_app
from bot.config import OpsConfig, ServerConfig, StorageConfig, WeChatConfig, load_config
from bot.model import Inbound

TAX_ID = "91110108551385082Q"


def app_for(tmp_path, token: str = ""):
    """The app on a SQLite file with ops on, /metrics guarded by `token`."""
    config = replace(load_config(None), wechat=WeChatConfig(token="tok", app_id="wx1"),
                     storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db"), ops=OpsConfig(),
                     server=replace(ServerConfig(), metrics_token=token))
    return create_app(config)


@pytest.mark.parametrize("token, remote, header, status", [
    ("", "127.0.0.1", None, 200), ("", "::1", None, 200), ("", "10.1.2.3", None, 403),
    ("s3cret", "10.1.2.3", "Bearer s3cret", 200), ("s3cret", "10.1.2.3", "Bearer wrong", 403),
    ("s3cret", "127.0.0.1", None, 403), ("s3cret", "10.1.2.3", "s3cret", 200),
    ("s3cret", "10.1.2.3", "Bearer ", 403),
], ids=["loopback", "loopback-v6", "remote-no-token", "token", "wrong-token", "token-needed-on-loopback",
        "bare-token", "empty-bearer"])
def test_metrics_needs_the_token_or_a_loopback_client(tmp_path, token, remote, header, status):
    """With a token every scrape must carry it; without one, only loopback clients are answered."""
    client = app_for(tmp_path, token).test_client()
    headers = {"Authorization": header} if header else {}
    response = client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": remote})
    assert response.status_code == status
    assert (b"bot_tickets" in response.data) == (status == 200)


def test_metrics_count_tickets_outbox_hits_and_unanswered(tmp_path):
    """After a handoff, an FAQ answer and an unanswered question, the figures say so."""
    app = app_for(tmp_path)
    service = app.extensions["bot"].service
    for n, text in enumerate(["数电配置里找不到乐企联用通道", TAX_ID, "乐企联用怎么收费", "你好"], 1):
        service.handle(Inbound(user="o-cust", kind="text", text=text, msg_id=str(n), created_at=float(n)))
    body = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'bot_tickets{status="open"} 1.0' in body and 'bot_tickets{status="resolved"} 0.0' in body
    assert 'bot_outbox{status="pending",target="ops"} 1.0' in body
    assert 'bot_outbox{status="sent",target="any"} 0.0' in body
    assert 'bot_intent_hits{intent="greeting"} 1.0' in body
    assert "bot_unanswered 1.0" in body
