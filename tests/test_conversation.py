"""The pure dialogue core: every transition, run on the shipped answers with the real matcher.
Expected replies are rendered from the answer files (texts, FAQ replies, front-matter parts)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bot.conversation import step
from bot.kb import load_kb
from bot.understanding.matcher import attach_matcher
from bot.model import (SESSION_TTL_SECONDS, AttachImage, CreateTicket, EndSession, ForgetTaxId, Inbound,
                       LogClarified, LogHit, LogUnanswered, RememberTaxId, Reply, Session, ShowTickets,
                       Stage, TicketView)
from bot.store.codec import decode_session, encode_session

ROOT = Path(__file__).resolve().parent.parent
USCC = "91110108551385082Q"
BAD = "91110108551385082X"
CM, IDS = "leqi-channel-missing", "leqi-ids-swapped"
Q = "数电配置里没有乐企联用通道"
Q_IDS = "乐企单位ID填反了怎么办"
HUMAN_ID = "human-agent"
IDLE, TAX, CHOICE, HUMAN = Stage.IDLE, Stage.AWAITING_TAX_ID, Stage.AWAITING_CHOICE, Stage.HUMAN


@dataclass(frozen=True)
class T:
    """Expected Reply of answers/texts/<name>.md rendered with `vars`."""

    name: str
    vars: tuple = ()


@dataclass(frozen=True)
class A:
    """Expected Reply of an intent's chat reply (optionally with a tax ID)."""

    intent: str
    tax_id: str = ""


@dataclass(frozen=True)
class P:
    """Expected Reply of a front-matter part of an intent (e.g. handoff.still_missing)."""

    intent: str
    part: str
    vars: tuple = ()


def t(name: str, **variables) -> T:
    """Shorthand for an expected text reply."""
    return T(name, tuple(variables.items()))


def ask(purpose: str = CM, known: str = "") -> T:
    """The ask-tax-id text."""
    return t("ask-tax-id", purpose=purpose, known_tax_id=known)


def channel_ticket(words: str, tax_id: str = USCC, flags: tuple = ()) -> list:
    """Remember the tax ID and open a channel ticket."""
    return [RememberTaxId(tax_id), CreateTicket(CM, words, tax_id=tax_id, flags=flags)]


def cache_key(tax_id: str = USCC) -> list:
    """Remember the tax ID and give the self-service FAQ's with_tax_id reply."""
    return [RememberTaxId(tax_id), P(IDS, "with_tax_id", (("tax_id", tax_id),))]


def resolve(kb, expected: list) -> list:
    """Turn T/A shorthands into the Reply actions the dialogue must produce."""
    out = []
    for item in expected:
        if isinstance(item, T):
            out.append(Reply(kb.render(item.name, **dict(item.vars))))
        elif isinstance(item, A):
            out.append(Reply(kb.chat_reply(item.intent, tax_id=item.tax_id), answer_id=item.intent))
        elif isinstance(item, P):
            out.append(Reply(kb.part(item.intent, item.part, **dict(item.vars))))
        else:
            out.append(item)
    return out


def inbound(message) -> Inbound:
    """A text Inbound from a string; other Inbounds pass through."""
    return message if isinstance(message, Inbound) else Inbound(user="u1", kind="text", text=message)


def run(kb, state: Session, turns: list, ticket: TicketView | None = None) -> Session:
    """Play (message, expected actions, expected stage[, seconds later]) turns and check each;
    `ticket` is what the desk says about a live conversation's ticket. Returns the last state."""
    now = 1_000_000.0
    for number, (message, expected, stage, *later) in enumerate(turns, 1):
        now += later[0] if later else 60
        view = ticket if state.stage is HUMAN else None
        state, actions = step(state, inbound(message), kb, now, view)
        assert actions == resolve(kb, expected), f"turn {number}: {message!r}"
        assert state.stage == stage, f"turn {number}: {message!r}"
        assert state.updated_at == now
    return state


@pytest.fixture(scope="module")
def bot_kb():
    """The shipped answers with the matcher attached."""
    return attach_matcher(load_kb(ROOT / "answers"))


ASK = (Q, [LogHit(CM), A(CM), ask()], TAX)

FLOWS = {
    "invalid then valid": [ASK, (BAD, [t("tax-id-invalid", value=BAD, reason="check digit")], TAX),
                           (f"不好意思，是 {USCC}", channel_ticket(f"{Q} / 不好意思，是 {USCC}"), IDLE)],
    "tax id inside a sentence": [ASK, (f"我们税号是 {USCC}，麻烦了",
                                       channel_ticket(f"{Q} / 我们税号是 {USCC}，麻烦了"), IDLE)],
    "full-width digits": [ASK, ("９１１１０１０８５５１３８５０８２ｑ",
                                channel_ticket(f"{Q} / ９１１１０１０８５５１３８５０８２ｑ"), IDLE)],
    "tax id in the question": [(f"{Q}，税号 {USCC}", [LogHit(CM), *channel_ticket(f"{Q}，税号 {USCC}")],
                                IDLE)],
    "same bad value twice is flagged": [
        ASK, (BAD, [t("tax-id-invalid", value=BAD, reason="check digit")], TAX),
        (f"没错就是{BAD}", channel_ticket(f"{Q} / 没错就是{BAD}", BAD, ("校验位未通过",)), IDLE)],
    "a different bad value is asked again": [
        ASK, (BAD, [t("tax-id-invalid", value=BAD, reason="check digit")], TAX),
        ("91110108551385083X", [t("tax-id-invalid", value="91110108551385083X", reason="check digit")],
         TAX)],
    "topic switch": [ASK, (Q_IDS, [LogHit(IDS), A(IDS), ask(IDS)], TAX), (USCC, cache_key(), IDLE)],
    "command during the flow keeps the flow waiting": [ASK, ("进度", [ShowTickets(), t("tax-id-reminder")], TAX),
                                                       (USCC, channel_ticket(f"{Q} / {USCC}"), IDLE)],
    "cancel": [ASK, ("算了", [t("cancelled")], IDLE)],
    "cancel in a sentence": [ASK, ("不用了，谢谢", [t("cancelled")], IDLE)],
    "three non-tax-ids give up": [
        ASK, ("123456", [t("tax-id-invalid", value="", reason="not found")], TAX),
        ("税号是多少", [t("tax-id-invalid", value="", reason="not found")], TAX),
        ("税号我明天问下", [t("fallback", question="税号我明天问下")], IDLE)],
    "expired flow is idle: a tax ID alone is noted": [
        ASK, (USCC, [RememberTaxId(USCC), t("tax-id-noted", tax_id=USCC)], IDLE, SESSION_TTL_SECONDS + 1),
        (Q, [LogHit(CM), A(CM), ask(known=USCC)], TAX), ("是", channel_ticket(f"{Q} / 是"), IDLE)],
    "an acknowledgment and a tax ID first": [
        (f"好的，{USCC}", [RememberTaxId(USCC), t("tax-id-noted", tax_id=USCC)], IDLE)],
    "a tax ID first, the problem next": [
        (f"税号：{USCC}", [RememberTaxId(USCC), t("tax-id-noted", tax_id=USCC)], IDLE),
        (Q_IDS, [LogHit(IDS), A(IDS, tax_id=USCC)], IDLE)],
    "an emoji acknowledges": [("👌", [t("ack", waiting=False)], IDLE)],
    "refreshed and still nothing asks for a screenshot": [("刷新了也没有", [P(CM, "handoff.still_missing")], IDLE)],
    "not yet expired": [ASK, (USCC, channel_ticket(f"{Q} / {USCC}"), IDLE, SESSION_TTL_SECONDS - 1)],
    "cache key asked then given": [(Q_IDS, [LogHit(IDS), A(IDS), ask(IDS)], TAX),
                                   (f"税号{USCC}", cache_key(), IDLE)],
    "still missing after update": [("更新了还是没有", [P(CM, "handoff.still_missing")], IDLE),
                                   ("刷新之后仍然不显示", [P(CM, "handoff.still_missing")], IDLE)],
    "a screenshot after still missing is about that FAQ's ticket": [
        ("更新配置后还是没有", [P(CM, "handoff.still_missing")], IDLE),
        (Inbound("u1", "image", media_id="m1"), [AttachImage("m1", "", about=CM)], IDLE),
        (Inbound("u1", "image", media_id="m2"), [AttachImage("m2", "", about="")], IDLE,
         SESSION_TTL_SECONDS + 1)],
    "it works now": [("乐企通道已经有了，谢谢", [t("resolved")], IDLE),
                     ("更新以后显示了", [t("resolved")], IDLE)],
    "asking whether it shows is still the FAQ": [("乐企通道显示了吗", [LogHit(CM), A(CM), ask()], TAX)],
    "still not showing without update goes to the FAQ": [
        ("还是不显示乐企联用通道", [LogHit(CM), A(CM), ask()], TAX)],
    "out of scope": [("乐企怎么收费", [LogUnanswered("乐企怎么收费"), t("fallback", question="乐企怎么收费")],
                      IDLE)],
    "cancel word that is a question": [("取消发票", [LogUnanswered("取消发票"),
                                                     t("fallback", question="取消发票")], IDLE)],
    "commands": [("帮助", [LogHit("help"), A("help")], CHOICE), ("菜单", [LogHit("help"), A("help")], CHOICE),
                 ("进度", [ShowTickets()], IDLE), ("我的工单", [ShowTickets()], IDLE),
                 ("工单状态？", [ShowTickets()], IDLE), ("你好", [LogHit("greeting"), A("greeting")], IDLE)],
    "forget": [("忘记税号", [ForgetTaxId(), t("tax-id-forgotten")], IDLE)],
    "events and other kinds": [
        (Inbound("u1", "event", event="subscribe"), [t("welcome")], CHOICE),
        (Inbound("u1", "event", event="unsubscribe"), [EndSession()], IDLE),
        (Inbound("u1", "image", media_id="m1", pic_url="http://127.0.0.1/p.png"),
         [AttachImage("m1", "http://127.0.0.1/p.png")], IDLE),
        (Inbound("u1", "voice", text=""), [t("voice-empty")], IDLE),
        (Inbound("u1", "voice", text="数电配置里没有乐企联用通道。"), [LogHit(CM), A(CM), ask()], TAX),
        (Inbound("u1", "location"), [t("unsupported", kind="location")], TAX),
        (Inbound("u1", "link"), [t("unsupported", kind="link")], TAX)],
}


@pytest.mark.parametrize("turns", list(FLOWS.values()), ids=list(FLOWS))
def test_flows(bot_kb, turns):
    """A new customer (no remembered tax ID) through each conversation."""
    run(bot_kb, Session(), turns)


REMEMBERED = {
    "confirm with 是": [(Q, [LogHit(CM), A(CM), ask(known=USCC)], TAX), ("是", channel_ticket(f"{Q} / 是"), IDLE)],
    "confirm with full-width 1": [(Q, [LogHit(CM), A(CM), ask(known=USCC)], TAX),
                                  ("１", channel_ticket(f"{Q} / １"), IDLE)],
    "replace with a new one": [(Q, [LogHit(CM), A(CM), ask(known=USCC)], TAX),
                               ("110105600037341", channel_ticket(f"{Q} / 110105600037341",
                                                                  "110105600037341"), IDLE)],
    "cache key at once": [(Q_IDS, [LogHit(IDS), A(IDS, tax_id=USCC)], IDLE)],
    "forget then ask again": [("忘记税号", [ForgetTaxId(), t("tax-id-forgotten")], IDLE),
                              (Q_IDS, [LogHit(IDS), A(IDS), ask(IDS)], TAX)],
}


@pytest.mark.parametrize("turns", list(REMEMBERED.values()), ids=list(REMEMBERED))
def test_remembered_tax_id(bot_kb, turns):
    """A customer whose tax ID we remember is asked to confirm it, or gets the exact key."""
    run(bot_kb, Session(tax_id=USCC), turns)


def test_expiry_keeps_remembered_tax_id(bot_kb):
    """A stale flow is dropped, but the remembered tax ID survives."""
    stale = Session(stage=TAX, purpose=CM, question=Q, updated_at=0.0, tax_id=USCC)
    state, _ = step(stale, inbound("你好"), bot_kb, SESSION_TTL_SECONDS + 1.0)
    assert state == Session(tax_id=USCC, updated_at=SESSION_TTL_SECONDS + 1.0)


@pytest.fixture(scope="module")
def close_kb(tmp_path_factory):
    """Shipped answers plus two deliberately close intents, so the matcher asks to clarify."""
    folder = tmp_path_factory.mktemp("answers")
    shutil.copytree(ROOT / "answers", folder, dirs_exist_ok=True)
    for intent, what in (("print-offset", "格式"), ("print-paper", "纸张")):
        (folder / f"{intent}.md").write_text(
            f"---\nid: {intent}\ntitle: 打印发票时{what}错位\nquestion: 开票软件打印发票时{what}错位怎么办\n"
            f"keywords: [打印, 错位, {what}]\n---\n请检查{what}。\n", encoding="utf-8")
    return attach_matcher(load_kb(folder))


CLARIFY = (("打印发票错位", [LogClarified("打印发票错位"), t("clarify", options=["打印发票时格式错位", "打印发票时纸张错位"])], CHOICE))


@pytest.mark.parametrize("pick, intent", [
    ("1", "print-offset"), ("2", "print-paper"), ("２", "print-paper"), ("第一个", "print-offset"),
    ("选1", "print-offset"), ("第2个", "print-paper"),
])
def test_clarify_pick(close_kb, pick, intent):
    """A number (any common form) picks the offered intent."""
    run(close_kb, Session(), [CLARIFY, (pick, [LogHit(intent), A(intent)], IDLE)])


@pytest.mark.parametrize("reply, expected, stage", [
    ("3", [LogUnanswered("3"), t("fallback", question="3")], IDLE),
    ("谢谢", [LogHit("thanks"), A("thanks")], IDLE),
    (Q, [LogHit(CM), A(CM), ask()], TAX),
])
def test_clarify_other_reply(close_kb, reply, expected, stage):
    """Anything but a valid number is handled as a new message."""
    run(close_kb, Session(), [CLARIFY, (reply, expected, stage)])


def test_picked_channel_intent_keeps_question(close_kb):
    """A flow started from a clarify pick keeps the customer's original words for the ticket."""
    state = Session(stage=CHOICE, choices=(CM, IDS), question="乐企联用", updated_at=1_000_000.0)
    run(close_kb, state, [("1", [LogHit(CM), A(CM), ask()], TAX),
                          (USCC, channel_ticket(f"乐企联用 / {USCC}"), IDLE)])


def test_state_round_trips_through_store_dict(bot_kb):
    """The state a flow leaves behind survives the store's session codec."""
    state, _ = step(Session(), inbound(Q), bot_kb, 5.0)
    assert decode_session(encode_session(state)) == state == replace(
        Session(), stage=TAX, purpose=CM, question=Q, updated_at=5.0, about=CM)


THIRD = "print-service-offline"


@pytest.fixture(scope="module")
def third_kb(tmp_path_factory):
    """Shipped answers plus a third handoff FAQ written only as a file (tests/fixtures/answers_third)."""
    folder = tmp_path_factory.mktemp("answers-third")
    shutil.copytree(ROOT / "answers", folder, dirs_exist_ok=True)
    shutil.copytree(ROOT / "tests" / "fixtures" / "answers_third", folder, dirs_exist_ok=True)
    return attach_matcher(load_kb(folder))


def test_a_third_handoff_faq_runs_from_its_file(third_kb):
    """collect + then: handoff in a new file: its own reply, the ask, a ticket of its own kind."""
    q = "开票页面一直提示打印服务离线"
    run(third_kb, Session(), [(q, [LogHit(THIRD), A(THIRD), ask(THIRD)], TAX),
                              (USCC, [RememberTaxId(USCC), CreateTicket(THIRD, f"{q} / {USCC}", tax_id=USCC)],
                               IDLE)])


@pytest.mark.parametrize("text, owner", [("更新配置后数电配置还是没有乐企通道", CM),
                                         ("刷新以后打印服务还是没有连上", THIRD)])
def test_still_missing_goes_to_the_faq_it_is_about(third_kb, text, owner):
    """With two FAQs that say what to do when it still fails, the closer one answers and owns the image."""
    run(third_kb, Session(), [(text, [P(owner, "handoff.still_missing")], IDLE),
                              (Inbound("u1", "image", media_id="m1"), [AttachImage("m1", "", about=owner)], IDLE)])


def enters_human(text: str) -> tuple:
    """A message asking for a person in any words opens the live conversation."""
    return (text, [LogHit(HUMAN_ID), CreateTicket(HUMAN_ID, text)], HUMAN)


# The understanding issue's conversation cases: commands in any words, acknowledgments, and a
# question asked while the bot waits for a tax ID (SPEC behaviours 10, 11, 14, 15).
UNDERSTOOD = {
    "status in any words": [("我的工单进度怎么样了", [ShowTickets()], IDLE),
                            ("我提交的那个问题处理到哪一步了", [ShowTickets()], IDLE)],
    "客服 alone asks for a person": [enters_human("客服")],
    "a person, politely": [enters_human("能不能让人工来处理")],
    "a complaint": [enters_human("我要投诉")],
    "a person at the end of a long complaint": [
        enters_human("你们这个机器人说了半天都是一样的步骤，我都做过了，请马上给我转一个真人客服")],
    "typo'd greeting": [("在马", [LogHit("greeting"), A("greeting")], IDLE)],
    "slang thanks": [("3q", [LogHit("thanks"), A("thanks")], IDLE)],
    "help in other words": [("你都能帮我干点啥", [LogHit("help"), A("help")], CHOICE)],
    "a number picks from the help menu": [("帮助", [LogHit("help"), A("help")], CHOICE),
                                          ("1", [LogHit(CM), A(CM), ask()], TAX)],
    "a number picks from the welcome": [(Inbound("u1", "event", event="subscribe"), [t("welcome")], CHOICE),
                                        ("２", [LogHit(IDS), A(IDS), ask(IDS)], TAX)],
    "a question after the menu is a question": [("菜单", [LogHit("help"), A("help")], CHOICE),
                                                ("你好", [LogHit("greeting"), A("greeting")], IDLE)],
    "acknowledgments get a short reply, not the fallback": [
        ("好的我试试", [t("ack", waiting=False)], IDLE), ("嗯", [t("ack", waiting=False)], IDLE),
        ("ok", [t("ack", waiting=False)], IDLE)],
    "thanking acknowledgment is thanks": [("好的谢谢", [LogHit("thanks"), A("thanks")], IDLE)],
    "mid-flow: an off-topic question is a question, and the flow still waits": [
        ASK, ("对了，红字发票怎么开", [LogUnanswered("对了，红字发票怎么开"),
                                   t("fallback", question="对了，红字发票怎么开"), t("tax-id-reminder")], TAX),
        ("你好", [LogHit("greeting"), A("greeting"), t("tax-id-reminder")], TAX),
        (USCC, channel_ticket(f"{Q} / {USCC}"), IDLE)],
    "mid-flow: an acknowledgment with the tax ID is the tax ID": [ASK, (f"对的吧，{USCC}", channel_ticket(f"{Q} / 对的吧，{USCC}"), IDLE)],
    "mid-flow: asking which of two tax IDs": [ASK, ("我们有两个税号，用哪个？", [t("tax-id-where")], TAX),
                                              ("那我问问财务", [t("ack", waiting=True)], TAX)],
    "mid-flow: 好的 without a remembered tax ID acknowledges and waits": [
        ASK, ("好的", [t("ack", waiting=True)], TAX), (USCC, channel_ticket(f"{Q} / {USCC}"), IDLE)],
    "mid-flow: asking whether it is a bot is not asking for a person": [
        ASK, ("你是机器人还是真人", [t("identity", waiting=True)], TAX)],
    "mid-flow: asking for a person with words about the tax ID": [
        ASK, ("我不知道税号啊，直接找个人工帮我弄吧", [LogHit(HUMAN_ID),
                                                 CreateTicket(HUMAN_ID, "我不知道税号啊，直接找个人工帮我弄吧")], HUMAN)],
    "mid-flow: a padded FAQ question is that FAQ": [
        ASK, ("我再问问，乐企单位ID填反了怎么处理", [LogHit(IDS), A(IDS), ask(IDS)], TAX)],
    "mid-flow: an acknowledgment keeps waiting": [ASK, ("好的我找一下", [t("ack", waiting=True)], TAX),
                                                  (USCC, channel_ticket(f"{Q} / {USCC}"), IDLE)],
    "mid-flow: fetching the tax ID is acknowledged": [
        ASK, ("税号我得问下会计", [t("ack", waiting=True)], TAX), ("稍等我去问下财务", [t("ack", waiting=True)], TAX)],
    "mid-flow: words about the tax ID are an attempt": [
        ASK, ("税号是这个吗9111", [t("tax-id-invalid", value="", reason="not found")], TAX)],
    "a setup step done is not the problem solved": [
        ("公众号里也把电子税局账号配好了", [LogUnanswered("公众号里也把电子税局账号配好了"),
                                         t("fallback", question="公众号里也把电子税局账号配好了")], IDLE)],
    "mid-flow: where to find the tax ID is answered, not counted as a try": [
        ASK, ("我不知道税号在哪看", [t("tax-id-where")], TAX), ("统一社会信用代码是什么", [t("tax-id-where")], TAX),
        ("税号去哪里查", [t("tax-id-where")], TAX), (USCC, channel_ticket(f"{Q} / {USCC}"), IDLE)],
    "mid-flow: forgetting the remembered tax ID keeps waiting": [
        ASK, ("忘记税号", [ForgetTaxId(), t("tax-id-forgotten")], TAX)],
    "progress in other words": [("大概什么时候能处理完", [ShowTickets()], IDLE), ("现在什么情况了", [ShowTickets()], IDLE),
                                ("any update?", [ShowTickets()], IDLE), ("帮我催一下", [ShowTickets()], IDLE),
                                ("怎么还没好", [ShowTickets()], IDLE)],
    "a person in other words": [enters_human("叫你们技术来")],
    "asking whether it is a bot": [("你是机器人吗", [t("identity", waiting=False)], IDLE)],
    "how long, after a ticket, is its status": [("要多久能好", [ShowTickets()], IDLE),
                                               ("啥时候能好啊", [ShowTickets()], IDLE)],
    "mid-flow: a mistyped code is an attempt": [
        ASK, ("9111010855138", [t("tax-id-invalid", value="", reason="not found")], TAX)],
}


@pytest.mark.parametrize("turns", list(UNDERSTOOD.values()), ids=list(UNDERSTOOD))
def test_understood_as_people_write(bot_kb, turns):
    """Commands, small talk and mid-flow questions in the words customers really use."""
    run(bot_kb, Session(), turns)
