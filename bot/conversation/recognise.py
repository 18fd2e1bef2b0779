"""What the customer's text *is*, as a command: the one seam between understanding and the dialogue.

`recognise(text, stage)` names the command a text is, given where the conversation stands, or
None. The dialogue calls nothing else to recognise commands, so this module can be reimplemented
(bot/understanding/) without touching a stage handler. Names: human, status, cancel, forget, help,
confirm, still-missing, resolved, leave.

Today's rules, on the cleaned text (bot.understanding.textnorm.clean: NFKC, simplified, lower-case,
letters/digits only): a command matches when the text is one of its phrases, or contains one and
is at most SHORT_EXTRA characters longer ("查一下进度", "我要转人工"). 取消/算了 is exact outside a
flow (so "取消发票" is a question) and uses the contains rule inside one. Confirming a remembered
tax ID ("是/对/1/确认") is exact. In a live conversation with a person only leaving (结束人工/不用了,
or an exact 取消/算了), status and asking for a person again are commands; everything else is for
the person.

Resolved rule: "乐企通道有了/显示了/可以了，谢谢" (a RESOLVED phrase, no negation, not a question)
is `resolved` instead of the FAQ that shares its words.

Still-missing rule: a text that says it still does not show after an update is `still-missing`.
It must contain a word of each group: STILL (还是/仍然/依然/还/仍), MISSING
(不显示/没有/没显示/看不到/找不到/不出现/没出现) and UPDATED (更新/同步/刷新/重新登录).
"更新了还是没有" qualifies; "还是不显示" (no update mentioned) goes to the matcher as usual.
"""
from __future__ import annotations

import re
from typing import Callable

from bot.model import Stage
from bot.understanding.textnorm import clean

SHORT_EXTRA = 4
HELP = ("帮助", "菜单", "help", "menu")
HUMAN = ("转人工", "人工客服", "找客服", "人工服务", "联系客服", "找人工")
TICKETS = ("进度", "我的工单", "工单状态", "工单进度", "查工单")
FORGET = ("忘记税号", "删除税号", "清除税号")
CANCEL = ("取消", "算了", "不用了", "退出")
CONFIRM = ("是", "对", "1", "确认", "是的", "对的", "没错", "好", "好的", "可以", "yes", "ok")
LEAVE = ("结束人工", "不用了", "退出人工", "结束会话", "不需要人工", "不找人工了")
STILL = re.compile("还是|仍然|依然|还|仍")
MISSING = re.compile("不显示|没显示|没有|看不到|找不到|不出现|没出现")
UPDATED = re.compile("更新|同步|刷新|重新登录")
RESOLVED = re.compile("(显示|出来|出现|看到|看见|有)了|可以了|解决了|正常了|搞定了|好使了")
NEGATED = re.compile("不|没|未|无|还是|仍|依然|怎么|为什么|为啥|吗|么")
_NUMERALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_CHOICE = re.compile(r"(?:选择|选|第)?([1-9]|[一二两三四五])(?:个|项|条|号)?")


def is_command(text: str, phrases: tuple[str, ...], exact: bool = False) -> bool:
    """True when the cleaned text is a phrase, or (unless exact) a short text containing one."""
    cleaned = clean(text)
    if cleaned in phrases:
        return True
    return not exact and any(p in cleaned and len(cleaned) <= len(p) + SHORT_EXTRA for p in phrases)


def says_still_missing(text: str) -> bool:
    """The still-missing rule (module docstring): still + not showing + after an update."""
    cleaned = clean(text)
    return all(pattern.search(cleaned) for pattern in (STILL, MISSING, UPDATED))


def says_resolved(text: str) -> bool:
    """"乐企通道有了/显示了，谢谢": a statement that it works now (no negation, not a question)."""
    cleaned = clean(text)
    return bool(RESOLVED.search(cleaned)) and not NEGATED.search(cleaned) and "?" not in text and "？" not in text


def pick_choice(text: str, choices: tuple[str, ...]) -> str | None:
    """The intent a clarify answer picks ("1", "２", "第一个", "选1"), or None."""
    found = _CHOICE.fullmatch(clean(text))
    if not found:
        return None
    digit = found.group(1)
    index = int(digit) if digit.isdigit() else _NUMERALS[digit]
    return choices[index - 1] if 0 < index <= len(choices) else None


def _phrases(phrases: tuple[str, ...], exact: bool = False) -> Callable[[str], bool]:
    """A rule: the text is (or, unless exact, briefly contains) one of the phrases."""
    return lambda text: is_command(text, phrases, exact)


_ANYWHERE = (("human", _phrases(HUMAN)), ("status", _phrases(TICKETS)), ("forget", _phrases(FORGET)),
             ("help", _phrases(HELP)), ("still-missing", says_still_missing), ("resolved", says_resolved))
_IDLE = (("cancel", _phrases(CANCEL, exact=True)), *_ANYWHERE)
RULES: dict[Stage, tuple[tuple[str, Callable[[str], bool]], ...]] = {
    Stage.IDLE: _IDLE,
    Stage.AWAITING_CHOICE: _IDLE,
    Stage.AWAITING_TAX_ID: (("cancel", _phrases(CANCEL)), ("confirm", _phrases(CONFIRM, exact=True)),
                            *_ANYWHERE),
    Stage.HUMAN: (("leave", _phrases(LEAVE)), ("leave", _phrases(CANCEL, exact=True)),
                  ("status", _phrases(TICKETS)), ("human", _phrases(HUMAN))),
}


def recognise(text: str, stage: Stage) -> str | None:
    """The command `text` is where the conversation stands (`stage`), or None (see the docstring)."""
    return next((name for name, rule in RULES[stage] if rule(text)), None)
