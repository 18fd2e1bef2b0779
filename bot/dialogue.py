"""The pure dialogue core: one customer message + state → new state + actions (no I/O).

Commands are recognised on the cleaned text (bot.understanding.textnorm.clean: NFKC, simplified, lower-case,
letters/digits only): a command matches when the text is one of its phrases, or contains one and
is at most SHORT_EXTRA characters longer ("查一下进度", "我要转人工"). 取消/算了 is exact outside a
flow (so "取消发票" is a question) and uses the contains rule inside one. Confirming a remembered
tax ID ("是/对/1/确认") is exact.

Resolved rule: "乐企通道有了/显示了/可以了，谢谢" (a RESOLVED phrase, no negation, not a question)
gets the `resolved` text instead of the FAQ that shares its words.

Still-missing rule: a text that says it still does not show after an update gets the
`still-missing` text (ask for a screenshot) instead of the FAQ answer. It must contain a word of
each group: STILL (还是/仍然/依然/还/仍), MISSING (不显示/没有/没显示/看不到/找不到/不出现/没出现)
and UPDATED (更新/同步/刷新/重新登录). "更新了还是没有" qualifies; "还是不显示" (no update
mentioned) goes to the matcher as usual.

FAQ replies and follow-up texts are separate Reply actions with the full FAQ text; the caller
joins them with a blank line and, past WeChat's byte limit, swaps the FAQ part (Reply.answer_id)
for its short version with an absolute link — it knows the public URL — keeping the question.
"""
from __future__ import annotations

import re
from dataclasses import replace

from bot.kb import KnowledgeBase
from bot.model import (SESSION_TTL_SECONDS, Action, AttachImage, CreateTicket, EndSession,
                       ForgetTaxId, Inbound, LogClarified, LogHit, LogUnanswered, RememberTaxId, Reply, Session,
                       ShowTickets, Stage)
from bot.taxid import BAD_CHECK_DIGIT, VALID, find_tax_id, remove_tax_id
from bot.understanding.textnorm import clean

Result = tuple[Session, list[Action]]

SHORT_EXTRA = 4
MAX_BAD_ATTEMPTS = 3
HUMAN_INTENT = "human-agent"
CHECK_DIGIT_FLAG = "校验位未通过"
HELP = ("帮助", "菜单", "help", "menu")
HUMAN = ("转人工", "人工客服", "找客服", "人工服务", "联系客服", "找人工")
TICKETS = ("进度", "我的工单", "工单状态", "工单进度", "查工单")
FORGET = ("忘记税号", "删除税号", "清除税号")
CANCEL = ("取消", "算了", "不用了", "退出")
CONFIRM = ("是", "对", "1", "确认", "是的", "对的", "没错", "好", "好的", "可以", "yes", "ok")
STILL = re.compile("还是|仍然|依然|还|仍")
MISSING = re.compile("不显示|没显示|没有|看不到|找不到|不出现|没出现")
UPDATED = re.compile("更新|同步|刷新|重新登录")
RESOLVED = re.compile("(显示|出来|出现|看到|看见|有)了|可以了|解决了|正常了|搞定了|好使了")
NEGATED = re.compile("不|没|未|无|还是|仍|依然|怎么|为什么|为啥|吗|么")
_NUMERALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_CHOICE = re.compile(r"(?:选择|选|第)?([1-9]|[一二两三四五])(?:个|项|条|号)?")


def step(state: Session, inbound: Inbound, kb: KnowledgeBase, now: float) -> Result:
    """Handle one inbound message: the new session state and the actions for the caller."""
    state = _current(state, now)
    if inbound.kind == "event":
        return _event(state, inbound, kb, now)
    if inbound.kind == "image":
        return _keep(state, now), [AttachImage(inbound.media_id, inbound.pic_url)]
    if inbound.kind not in ("text", "voice"):
        return _keep(state, now), [_text(kb, "unsupported", kind=inbound.kind)]
    text = (inbound.text or "").strip()
    if not clean(text):  # empty voice recognition, or only punctuation / emoji
        reply = _text(kb, "voice-empty") if inbound.kind == "voice" else _text(kb, "fallback", question="")
        return _keep(state, now), [reply]
    if state.stage is Stage.AWAITING_TAX_ID:
        return _awaiting_tax_id(state, text, kb, now)
    if state.stage is Stage.AWAITING_CHOICE:
        picked = pick_choice(text, state.choices)
        if picked:
            return _answer(_idle(state, now), picked, state.question or text, kb, now)
    return _handle(_idle(state, now), text, kb, now)


# -- state helpers ------------------------------------------------------------------------------


def _current(state: Session, now: float) -> Session:
    """The state, or a fresh IDLE one (keeping the remembered tax ID) after 30 min of silence."""
    if state.stage is not Stage.IDLE and now - state.updated_at > SESSION_TTL_SECONDS:
        return Session(tax_id=state.tax_id, updated_at=state.updated_at)
    return state


def _keep(state: Session, now: float) -> Session:
    """The same state, touched now."""
    return replace(state, updated_at=now)


def _idle(state: Session, now: float) -> Session:
    """Back to IDLE, keeping only the remembered tax ID."""
    return Session(tax_id=state.tax_id, updated_at=now)


def _text(kb: KnowledgeBase, name: str, **variables) -> Reply:
    """A reply rendered from answers/texts/<name>.md."""
    return Reply(kb.render(name, **variables))


# -- recognisers ----------------------------------------------------------------------------------


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


# -- conversation ---------------------------------------------------------------------------------


def _match(kb: KnowledgeBase, text: str):
    """The matcher's verdict on the text without the tax ID it may contain."""
    return kb.matcher.match(remove_tax_id(text) if find_tax_id(text).found else text)


def _event(state: Session, inbound: Inbound, kb: KnowledgeBase, now: float) -> Result:
    """subscribe → welcome; unsubscribe → end the session; other events need no reply."""
    event = inbound.event.lower()
    if event == "subscribe":
        return _idle(state, now), [_text(kb, "welcome")]
    if event == "unsubscribe":
        return Session(updated_at=now), [EndSession()]
    return _keep(state, now), []


def _command(state: Session, text: str, kb: KnowledgeBase, now: float) -> Result | None:
    """Commands that work anywhere; None when the text is not one."""
    if is_command(text, HUMAN):
        return _answer(state, HUMAN_INTENT, text, kb, now)
    if is_command(text, TICKETS):
        return state, [ShowTickets()]
    if is_command(text, FORGET):
        return replace(state, tax_id=""), [ForgetTaxId(), _text(kb, "tax-id-forgotten")]
    if is_command(text, HELP) and "help" in kb.intents:
        return _answer(state, "help", text, kb, now)
    if says_still_missing(text):
        return state, [_text(kb, "still-missing")]
    if says_resolved(text):
        return state, [_text(kb, "resolved")]
    return None


def _handle(state: Session, text: str, kb: KnowledgeBase, now: float) -> Result:
    """A message outside any flow: cancel, command, or the matcher's verdict."""
    if is_command(text, CANCEL, exact=True):
        return state, [_text(kb, "cancelled")]
    handled = _command(state, text, kb, now)
    if handled:
        return handled
    match = _match(kb, text)
    if match.decision == "answer" and match.intent in kb.intents:
        return _answer(state, match.intent, text, kb, now)
    if match.decision == "clarify" and len(match.candidates) >= 2:
        return _clarify(state, match.candidates, text, kb, now)
    return state, [LogUnanswered(text), _text(kb, "fallback", question=text)]


def _clarify(state: Session, candidates, text: str, kb: KnowledgeBase, now: float) -> Result:
    """Offer the two closest intents; the next message may pick one by number."""
    choices = tuple(intent_id for intent_id, _score in candidates[:2])
    options = [kb.intents[c].title for c in choices]
    new = replace(state, stage=Stage.AWAITING_CHOICE, choices=choices, question=text)
    return new, [LogClarified(text), _text(kb, "clarify", options=options)]


def _answer(state: Session, intent_id: str, text: str, kb: KnowledgeBase, now: float) -> Result:
    """Answer an intent, starting its tax-ID flow or handoff when its front matter says so."""
    intent = kb.intents[intent_id]
    if intent.then == "handoff" and intent.collect != "tax_id":
        return state, [LogHit(intent_id), CreateTicket("human", intent_id, text)]
    if intent.collect != "tax_id":
        return state, [LogHit(intent_id), Reply(kb.render(intent_id), answer_id=intent_id)]
    given = find_tax_id(text)
    if given.status == VALID:
        flow = replace(state, stage=Stage.AWAITING_TAX_ID, purpose=intent_id, question=text)
        new, actions = _accept(flow, given.value, (), text, kb, now)
        return new, [LogHit(intent_id), *actions]
    if intent.then == "cache_key" and state.tax_id:
        reply = kb.render(intent_id, tax_id=state.tax_id)
        return state, [LogHit(intent_id), Reply(reply, answer_id=intent_id)]
    return _ask_tax_id(state, intent_id, text, given, kb, now)


def _ask_tax_id(state: Session, intent_id: str, text: str, given, kb, now: float) -> Result:
    """The answer, then ask for the tax ID (or to confirm the remembered one)."""
    known = state.tax_id if kb.intents[intent_id].then == "handoff" else ""
    new = replace(state, stage=Stage.AWAITING_TAX_ID, purpose=intent_id, question=text)
    actions: list[Action] = [LogHit(intent_id), Reply(kb.render(intent_id), answer_id=intent_id)]
    if given.status == BAD_CHECK_DIGIT:
        new = replace(new, last_rejected=given.value)
        actions.append(_text(kb, "tax-id-invalid", value=given.value, reason="check digit"))
    else:
        actions.append(_text(kb, "ask-tax-id", purpose=intent_id, known_tax_id=known))
    return new, actions


def _awaiting_tax_id(state: Session, text: str, kb: KnowledgeBase, now: float) -> Result:
    """A message while we wait for a tax ID: the ID, a confirmation, a cancel or a new topic."""
    if is_command(text, CANCEL):
        return _idle(state, now), [_text(kb, "cancelled")]
    if state.tax_id and is_command(text, CONFIRM, exact=True):
        return _accept(state, state.tax_id, (), text, kb, now)
    given = find_tax_id(text)
    if given.status == VALID:
        return _accept(state, given.value, (), text, kb, now)
    if given.status == BAD_CHECK_DIGIT:
        if given.value == state.last_rejected:
            return _accept(state, given.value, (CHECK_DIGIT_FLAG,), text, kb, now)
        new = replace(state, last_rejected=given.value, updated_at=now)
        return new, [_text(kb, "tax-id-invalid", value=given.value, reason="check digit")]
    return _not_a_tax_id(state, text, kb, now)


def _not_a_tax_id(state: Session, text: str, kb: KnowledgeBase, now: float) -> Result:
    """A topic switch is handled normally; otherwise ask again, giving up after 3 tries."""
    idle = _idle(state, now)
    handled = _command(idle, text, kb, now)
    if handled:
        return handled
    if _match(kb, text).decision in ("answer", "clarify"):
        return _handle(idle, text, kb, now)
    attempts = state.attempts + 1
    if attempts >= MAX_BAD_ATTEMPTS:
        return idle, [_text(kb, "fallback", question=text)]
    new = replace(state, attempts=attempts, updated_at=now)
    return new, [_text(kb, "tax-id-invalid", value="", reason="not found")]


def _accept(state: Session, tax_id: str, flags: tuple[str, ...], text: str, kb, now: float) -> Result:
    """Use the tax ID for the flow's purpose: a channel ticket, or the customer's cache key."""
    idle = replace(_idle(state, now), tax_id=tax_id)
    actions: list[Action] = [RememberTaxId(tax_id)]
    intent = kb.intents.get(state.purpose)
    if intent is not None and intent.then == "handoff":
        words = text if text == state.question else f"{state.question} / {text}"
        actions.append(CreateTicket("channel", intent.id, words, tax_id=tax_id, flags=flags))
    elif intent is not None and intent.then == "cache_key":
        actions.append(_text(kb, "tax-id-cached-key", tax_id=tax_id))
    elif intent is not None:
        reply = kb.render(intent.id, tax_id=tax_id)
        actions.append(Reply(reply, answer_id=intent.id))
    return idle, actions
