"""`python -m bot chat`: a terminal REPL over the same service the webhook uses."""
from __future__ import annotations

import time
import uuid
from typing import TextIO

from bot.model import Inbound

HELP = ("输入问题与机器人对话。命令：/done 把最近的工单标记为已处理（模拟运营），"
        "/image 发送一张截图，/tickets 查看工单，/quit 退出。")


def _inbound(user: str, line: str) -> Inbound:
    """A text (or simulated image) message from the terminal user."""
    msg_id = uuid.uuid4().hex
    if line == "/image":
        return Inbound(user=user, kind="image", msg_id=msg_id, created_at=time.time(),
                       media_id="cli-" + msg_id[:8], pic_url="", channel="cli")
    return Inbound(user=user, kind="text", text=line, msg_id=msg_id, created_at=time.time(), channel="cli")


def _mark_done(parts, user: str) -> str:
    """Resolve the user's newest open ticket and show its follow-up; other users' rows stay queued."""
    open_tickets = parts.store.tickets.list(status="open", user=user)
    if not open_tickets:
        return "（没有处理中的工单）"
    outcome = parts.desk.resolve(open_tickets[0].id)
    rows = parts.store.outbox.claim(time.time(), limit=50, target="customer")
    texts = [row.payload["text"] for row in parts.store.outbox.take_held(user, time.time())]  # cli: no push
    for row in rows:
        if row.user == user:
            texts.append(row.payload["text"])
            parts.store.outbox.sent(row.id, time.time())
        else:  # a chat against a shared store must not swallow real customers' messages
            parts.store.outbox.retry(row.id, row.next_at, "released by chat")
    return f"（运营已处理 {outcome.ticket.number}）\n" + "\n".join(texts)


def run_chat(parts, stdin: TextIO, stdout: TextIO, user: str = "cli-user") -> int:
    """Read lines, print the bot's replies, until EOF or /quit."""
    interactive = stdin.isatty()
    print(HELP, file=stdout)
    while True:
        if interactive:
            print("你> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line or line.strip() == "/quit":
            return 0
        line = line.strip()
        if not line:
            continue
        if line == "/done":
            reply = _mark_done(parts, user)
        elif line == "/tickets":
            reply = "\n".join(f"{t.number} {t.status} {t.tax_id}" for t in parts.store.tickets.list(user=user)) or "（无）"
        else:
            reply = parts.service.handle(_inbound(user, line)) or "（无回复）"
        print(f"机器人> {reply}\n", file=stdout, flush=True)
