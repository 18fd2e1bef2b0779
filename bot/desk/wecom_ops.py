"""Ops answer from WeCom: a member listed in `[wecom] ops_users` writing to the self-built app
`T000123 你好，已经处理了` (or `#123 …`) replies to that ticket's customer; `T000123 完成` resolves it.

Anyone else who writes to the app is a customer (staff, partners) and talks to the bot. The group
robot stays the notification channel: it cannot receive messages, the app can. An ops command is
answered once per message (WeCom retries like WeChat), with the desk's status line.
"""
from __future__ import annotations

import logging
import re
import time
import unicodedata
from typing import Callable

from bot.desk.desk import TicketDesk
from bot.model import Inbound
from bot.store.base import TurnRecord

log = logging.getLogger(__name__)

COMMAND = re.compile(r"\s*[TtＴｔ#＃]\s*(\d{1,9})[\s:：,，]*(.*)", re.DOTALL)  # \d, \s: full-width too
DONE = ("完成", "已完成", "处理完成", "标记完成", "done")  # a command whose whole text is one of these resolves
CLAIM_LEASE_SECONDS = 4.0


def parse(text: str) -> tuple[int, str] | None:
    """(ticket id, rest) of "T000123 rest" / "#123 rest" (full-width forms too), else None."""
    found = COMMAND.fullmatch(text or "")
    if not found or int(unicodedata.normalize("NFKC", found.group(1))) == 0:
        return None
    return int(unicodedata.normalize("NFKC", found.group(1))), found.group(2).strip()


class WeComOps:
    """The /wecom handler: ops members' commands go to the desk, everyone else to the bot."""

    def __init__(self, desk: TicketDesk, store, ops_users: tuple[str, ...],
                 handle: Callable[[Inbound], str | None], clock: Callable[[], float] = time.time):
        """Wrap the service's `handle` for the members in `ops_users`."""
        self.desk, self.store, self.ops_users = desk, store, frozenset(ops_users)
        self.handle, self.clock = handle, clock

    def __call__(self, inbound: Inbound) -> str | None:
        """The passive reply to one /wecom message."""
        if inbound.user not in self.ops_users:
            return self.handle(inbound)
        if inbound.kind == "event":
            return None
        key = f"{inbound.channel}:ops:{inbound.msg_id}" if inbound.msg_id else ""
        with self.store.turns.turn(key, inbound.user, self.clock(), CLAIM_LEASE_SECONDS, inbound.stamp) as turn:
            if turn.status != "new":
                return turn.reply or None  # a retry: the command ran (or runs) once
            return turn.commit(lambda tx: TurnRecord(reply=self._command(inbound, self.desk.within(tx))))

    def _command(self, inbound: Inbound, desk: TicketDesk) -> str:
        """Run one ops command in the message's transaction; the usage text when it is not one."""
        parsed = parse(inbound.text) if inbound.kind == "text" else None
        if parsed is None:
            return desk.kb.render("ops-usage")
        ticket_id, rest = parsed
        actor = f"wecom:{inbound.user}"
        if rest.lower() in DONE:
            outcome = desk.resolve(ticket_id, self.clock(), actor=actor)
        else:
            outcome = desk.reply(ticket_id, rest, self.clock(), actor=actor)
        log.info("wecom ops: %s %s ticket %d: %s", inbound.user, "resolved" if rest.lower() in DONE else "replied to",
                 ticket_id, outcome.outcome)
        return outcome.line
