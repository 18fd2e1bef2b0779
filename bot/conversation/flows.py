"""Stage handlers outside a live conversation: answers, clarify choices and the tax-ID flow.

What a flow does comes from the intent's front matter: `collect: tax_id` asks for the tax ID,
`then: handoff` opens a ticket (kind = the intent id), `then: cache_key` answers with the FAQ's
`with_tax_id` template once the tax ID is known; a handoff without `collect` is a live conversation
with a person (bot.conversation.human). FAQ replies are Reply actions with the FAQ's chat reply
(`reply`, else the body) and its id, so the service can swap in the `short` version past WeChat's
byte limit.
"""
from __future__ import annotations

from dataclasses import replace

from bot.conversation.recognise import pick_choice
from bot.conversation.turn import Result, Turn
from bot.model import (Action, AttachImage, CreateTicket, EndSession, ForgetTaxId, LogClarified, LogHit,
                       LogUnanswered, RememberTaxId, Reply, Session, ShowTickets, Stage)
from bot.taxid import BAD_CHECK_DIGIT, VALID, find_tax_id, looks_like_tax_id
from bot.taxid import only_tax_id as is_only_tax_id
from bot.understanding.commands import mentions

MAX_BAD_ATTEMPTS = 3
HUMAN_INTENT = "human-agent"
HELP_INTENT = "help"  # its `menu` is what texts/welcome.md lists too
CHECK_DIGIT_FLAG = "校验位未通过"


# -- any stage: events and messages that are not text -------------------------------------------


def event(turn: Turn) -> Result:
    """subscribe → welcome; unsubscribe → end the session; other events need no reply."""
    name = turn.inbound.event.lower()
    if name == "subscribe":  # the welcome lists the help intent's menu
        menu = getattr(turn.kb.intents.get(HELP_INTENT), "menu", ())
        return with_menu(turn.idle(), menu), [turn.say("welcome")]
    if name == "unsubscribe":
        return Session(updated_at=turn.now), [EndSession()]
    return turn.keep(), []


def image(turn: Turn) -> Result:
    """A screenshot goes to the ticket the conversation is about (or the open/recent one)."""
    inbound = turn.inbound
    return turn.keep(), [AttachImage(inbound.media_id, inbound.pic_url, about=turn.state.about)]


def unsupported(turn: Turn) -> Result:
    """Location, link, video …: a short polite text."""
    return turn.keep(), [turn.say("unsupported", kind=turn.inbound.kind)]


def empty(turn: Turn) -> Result:
    """Empty voice recognition, or only punctuation / emoji (👌 / 👍: an acknowledgment)."""
    if turn.inbound.kind == "voice":
        return turn.keep(), [turn.say("voice-empty")]
    return acknowledged(turn)


def only_tax_id(turn: Turn) -> bool:
    """Filter: a valid tax ID and only words naming it (税号：9111…), before any question."""
    return is_only_tax_id(turn.text)


def tax_id_first(turn: Turn) -> Result:
    """A tax ID sent before the question: remember it and ask what the problem is."""
    value = find_tax_id(turn.text).value
    return replace(turn.keep(), tax_id=value), [RememberTaxId(value), turn.say("tax-id-noted", tax_id=value)]


# -- IDLE: commands and the matcher ---------------------------------------------------------------


def cancelled(turn: Turn) -> Result:
    """取消 / 算了: leave the flow (or nothing to leave)."""
    return turn.idle(), [turn.say("cancelled")]


def human(turn: Turn) -> Result:
    """Asking for a person in any words: the human-agent intent (a live conversation)."""
    return answer(turn, HUMAN_INTENT)


def status(turn: Turn) -> Result:
    """进度: the state of the customer's tickets."""
    return turn.state, [ShowTickets()]


def forget(turn: Turn) -> Result:
    """忘记税号: drop the remembered tax ID."""
    return replace(turn.state, tax_id=""), [ForgetTaxId(), turn.say("tax-id-forgotten")]


def help_(turn: Turn) -> Result | None:
    """帮助 / 菜单: the help intent, when the answers have one."""
    return answer(turn, "help") if "help" in turn.kb.intents else None


def still_missing(turn: Turn) -> Result | None:
    """"更新了还是没有": the FAQ that says what to do then (its handoff.still_missing) asks for a
    screenshot, and the next image goes to that FAQ's ticket. None when no FAQ says so."""
    owners = [i for i in turn.kb.intents.values() if "still_missing" in (i.handoff or {})]
    if not owners:
        return None
    ranked = {intent_id: score for intent_id, score in turn.match().candidates}
    owner = max(owners, key=lambda i: ranked.get(i.id, 0.0))
    new = replace(turn.state, about=owner.id)
    return new, [Reply(turn.kb.part(owner.id, "handoff.still_missing"))]


def resolved(turn: Turn) -> Result:
    """"通道有了，谢谢": glad it works (not the FAQ that shares its words)."""
    return turn.state, [turn.say("resolved")]


def identity(turn: Turn) -> Result:
    """你是机器人吗: say what the bot is (not a request for a person); a flow keeps waiting."""
    return turn.keep(), [turn.say("identity", waiting=turn.state.stage is Stage.AWAITING_TAX_ID)]


def acknowledged(turn: Turn) -> Result:
    """好的 / 嗯 / 好的我试试: a short reply (still waiting for the tax ID, when we are); nothing logged."""
    return turn.keep(), [turn.say("ack", waiting=turn.state.stage is Stage.AWAITING_TAX_ID)]


def matched(turn: Turn) -> Result:
    """The matcher's verdict: answer, clarify, or fall back (logged for authors)."""
    match = turn.match()
    if match.decision == "answer" and match.intent in turn.kb.intents:
        return answer(turn, match.intent)
    if match.decision == "clarify" and len(match.candidates) >= 2:
        return clarify(turn, match.candidates)
    return turn.state, [LogUnanswered(turn.text), turn.say("fallback", question=turn.text)]


def clarify(turn: Turn, candidates) -> Result:
    """Offer the two closest intents; the next message may pick one by number."""
    choices = tuple(intent_id for intent_id, _score in candidates[:2])
    options = [turn.kb.intents[c].title for c in choices]
    new = replace(turn.state, stage=Stage.AWAITING_CHOICE, choices=choices, question=turn.text)
    return new, [LogClarified(turn.text), turn.say("clarify", options=options)]


def picked(turn: Turn) -> Result | None:
    """AWAITING_CHOICE: a number picks an offered intent (asked as the customer's question, or, from
    a menu, as that FAQ's own question); anything else is a new message."""
    choice = pick_choice(turn.text, turn.state.choices) if turn.text else None
    if choice is None:
        return None
    return answer(turn.at(turn.idle()), choice, turn.state.question or turn.kb.intents[choice].question)


def with_menu(state: Session, menu: tuple[str, ...]) -> Session:
    """The state after a reply that lists `menu` as 1., 2., …: waiting for a pick (else unchanged)."""
    return replace(state, stage=Stage.AWAITING_CHOICE, choices=menu, question="") if menu else state


def answer(turn: Turn, intent_id: str, words: str = "") -> Result:
    """Answer an intent, starting its tax-ID flow, ticket or live conversation as its file says."""
    intent, words, state = turn.kb.intents[intent_id], words or turn.text, turn.state
    if intent.live:
        return enter_human(turn, intent_id, words)
    if intent.collect != "tax_id":
        reply = Reply(turn.kb.chat_reply(intent_id), answer_id=intent_id)
        return with_menu(state, intent.menu), [LogHit(intent_id), reply]
    given = find_tax_id(turn.text)
    flow = replace(state, stage=Stage.AWAITING_TAX_ID, purpose=intent_id, question=words, attempts=0,
                   about=intent_id if intent.then == "handoff" else state.about)
    if given.status == VALID:
        new, actions = accept(turn.at(flow), given.value)
        return new, [LogHit(intent_id), *actions]
    if intent.then == "cache_key" and state.tax_id:
        reply = turn.kb.chat_reply(intent_id, tax_id=state.tax_id)
        return state, [LogHit(intent_id), Reply(reply, answer_id=intent_id)]
    actions: list[Action] = [LogHit(intent_id), Reply(turn.kb.chat_reply(intent_id), answer_id=intent_id)]
    if given.status == BAD_CHECK_DIGIT:
        flow = replace(flow, last_rejected=given.value)
        actions.append(turn.say("tax-id-invalid", value=given.value, reason="check digit"))
    else:
        known = state.tax_id if intent.then == "handoff" else ""
        actions.append(turn.say("ask-tax-id", purpose=intent_id, known_tax_id=known))
    return replace(flow, updated_at=turn.now), actions


def enter_human(turn: Turn, intent_id: str, words: str) -> Result:
    """A handoff with nothing to collect: open the ticket and talk to a person (Stage.HUMAN)."""
    new = Session(stage=Stage.HUMAN, purpose=intent_id, question=words, tax_id=turn.state.tax_id,
                  about=turn.state.about, updated_at=turn.now)
    return new, [LogHit(intent_id), CreateTicket(intent_id, words)]


# -- AWAITING_TAX_ID ------------------------------------------------------------------------------


def confirmed(turn: Turn) -> Result:
    """"是": use the remembered tax ID; without one, 好的 / 嗯 only acknowledge (still waiting)."""
    return accept(turn, turn.state.tax_id) if turn.state.tax_id else acknowledged(turn)


def tax_id_given(turn: Turn) -> Result | None:
    """A valid tax ID; a bad check digit is asked again, and accepted (flagged) when repeated."""
    given = find_tax_id(turn.text)
    if given.status == VALID:
        return accept(turn, given.value)
    if given.status != BAD_CHECK_DIGIT:
        return None
    if given.value == turn.state.last_rejected:
        return accept(turn, given.value, (CHECK_DIGIT_FLAG,))
    new = replace(turn.state, last_rejected=given.value, updated_at=turn.now)
    return new, [turn.say("tax-id-invalid", value=given.value, reason="check digit")]


def tax_id_where(turn: Turn) -> Result:
    """税号在哪看 / 税号是什么: where to find it; still waiting, and not a failed attempt."""
    return replace(turn.state, updated_at=turn.now), [turn.say("tax-id-where")]


def asks_for_person(turn: Turn) -> bool:
    """Filter: an explicit request for a person anywhere in the message (……直接找个人工帮我弄吧)."""
    return mentions(turn.text, "human_request")


def tries_tax_id(turn: Turn) -> bool:
    """Filter: where a tax ID was expected, a message that looks like an attempt at one (a code-like
    run of letters and digits, or words about the tax ID); anything else is a question (SPEC 15)."""
    return looks_like_tax_id(turn.text)


def ask_again(turn: Turn) -> Result:
    """Not a tax ID: ask again, giving up after MAX_BAD_ATTEMPTS tries."""
    attempts = turn.state.attempts + 1
    if attempts >= MAX_BAD_ATTEMPTS:
        return turn.idle(), [turn.say("fallback", question=turn.text)]
    new = replace(turn.state, attempts=attempts, updated_at=turn.now)
    return new, [turn.say("tax-id-invalid", value="", reason="not found")]


def accept(turn: Turn, tax_id: str, flags: tuple[str, ...] = ()) -> Result:
    """Use the tax ID for the flow's purpose: a handoff ticket, or the self-service reply."""
    state = turn.state
    idle = replace(turn.idle(), tax_id=tax_id)
    actions: list[Action] = [RememberTaxId(tax_id)]
    intent = turn.kb.intents.get(state.purpose)
    if intent is not None and intent.then == "handoff":
        words = turn.text if turn.text == state.question else f"{state.question} / {turn.text}"
        actions.append(CreateTicket(intent.id, words, tax_id=tax_id, flags=flags))
    elif intent is not None and intent.then == "cache_key":
        text = turn.kb.part(intent.id, "with_tax_id", tax_id=tax_id)
        actions.append(Reply(text) if text else Reply(turn.kb.chat_reply(intent.id, tax_id=tax_id),
                                                      answer_id=intent.id))
    elif intent is not None:
        actions.append(Reply(turn.kb.chat_reply(intent.id, tax_id=tax_id), answer_id=intent.id))
    return idle, actions
