"""What the customer's text *is*, as a command: the one seam between understanding and the dialogue.

`recognise(text, stage)` names the command a text is, given where the conversation stands, or
None. Commands are understood the way questions are (bot.understanding.commands: the concepts of
bot/understanding/lexicon.yaml, heard by sound; a command's phrases and little else), so 转人工 /
客服 / 能不能让人工来处理 / 我要投诉 are all `human`, 我提交的那个问题处理到哪一步了 is `status`, and
取消发票 is not `cancel`. Names: human, status, cancel, forget, help, confirm, still-missing,
resolved, leave, ack, identity (你是机器人吗), tax-id-where (waiting for a tax ID: where do I find it).

RULES says per stage which commands count, in order. Waiting for a tax ID, 是/对/确认 confirms the
remembered one; in a live conversation with a person only leaving (结束人工/不用了), status and asking
for a person again are commands — everything else is for the person. An acknowledgment (好的/嗯/ok/
好的我试试) is `ack` unless it also thanks (好的谢谢 is small talk, answered as thanks).
"""
from __future__ import annotations

import re
from functools import lru_cache

from bot.model import Stage
from bot.understanding.commands import mentions, says
from bot.understanding.textnorm import clean

# The dialogue's names for the understanding's commands.
UNDERSTOOD = {"still-missing": "still_missing", "leave": "leave_human", "tax-id-where": "tax_id_where"}
_IDLE = ("cancel", "identity", "human", "status", "forget", "help", "still-missing", "resolved", "ack")
RULES: dict[Stage, tuple[str, ...]] = {
    Stage.IDLE: _IDLE,
    Stage.AWAITING_CHOICE: _IDLE,
    Stage.AWAITING_TAX_ID: ("cancel", "confirm", "identity", "human", "status", "forget", "tax-id-where", "help",
                            "still-missing", "resolved", "ack"),
    Stage.HUMAN: ("leave", "status", "human"),
}
RECOGNISED_CACHE = 8192  # (text, stage) pairs kept: the lexicon is fixed for the process, so is the answer
_NUMERALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_CHOICE = re.compile(r"(?:选择|选|第)?([1-9]|[一二两三四五])(?:个|项|条|号)?")


def is_(text: str, name: str) -> bool:
    """Whether the text is command `name` (an acknowledgment that thanks is not an `ack`)."""
    if name == "ack" and mentions(text, "thanks"):
        return False
    return says(text, UNDERSTOOD.get(name, name))


@lru_cache(maxsize=RECOGNISED_CACHE)
def recognise(text: str, stage: Stage) -> str | None:
    """The command `text` is where the conversation stands (`stage`), or None (see the docstring)."""
    return next((name for name in RULES[stage] if is_(text, name)), None)


def pick_choice(text: str, choices: tuple[str, ...]) -> str | None:
    """The intent a clarify answer picks ("1", "２", "第一个", "选1"), or None."""
    found = _CHOICE.fullmatch(clean(text))
    if not found:
        return None
    digit = found.group(1)
    index = int(digit) if digit.isdigit() else _NUMERALS[digit]
    return choices[index - 1] if 0 < index <= len(choices) else None
