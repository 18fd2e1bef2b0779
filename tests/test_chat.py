"""The terminal chat: /done plays ops for the chat user only."""
from __future__ import annotations

import io
from dataclasses import replace

from bot.app import build_parts
from bot.chat import run_chat
from bot.config import StorageConfig, load_config

TAX_ID = "91110108551385082Q"


def test_done_shows_the_follow_up_and_leaves_other_customers_messages_queued(tmp_path):
    parts = build_parts(replace(load_config(None), storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db")))
    other = parts.store.outbox.queue({"target": "customer", "user": "o-real-customer",
                                       "payload": {"text": "给真实客户的消息"}}, None, 0.0)
    out = io.StringIO()
    run_chat(parts, io.StringIO(f"数电配置里没有乐企通道\n{TAX_ID}\n/done\n"), out)
    assert "更新配置" in out.getvalue().split("运营已处理")[-1]
    pending = parts.store.outbox.claim(10**10, limit=10, target="customer")
    assert [row.id for row in pending] == [other]
