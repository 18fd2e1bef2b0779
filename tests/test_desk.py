"""The ticket desk over a real store with the shipped answers: one ticket per need, live lines,
images where the conversation is, and status lines that say exactly what happened."""
from __future__ import annotations

import pytest

from bot.desk import TicketDesk
from bot.desk.desk import COALESCE_SECONDS, CUSTOMER_WINDOW_SECONDS
from bot.model import Ticket
from tests.store_cases import T0, pending, take_turn

TAX_ID = "91110108551385082Q"
CM, HUMAN = "leqi-channel-missing", "human-agent"


@pytest.fixture
def desk(kb, store):
    """A desk with ops on and WeChat push configured."""
    return TicketDesk.of(kb, store, "https://bot.example.com", True, push_channels=frozenset({"wechat"}),
                         clock=lambda: T0 + 60)


def draft(intent: str = CM, tax_id: str = TAX_ID, words: str = "乐企通道没有", at: float = T0,
          user: str = "o1", channel: str = "wechat") -> Ticket:
    """A ticket as the service hands it over."""
    return Ticket(id=0, user=user, kind=intent, intent=intent, status="open", tax_id=tax_id, words=words,
                  channel=channel, created_at=at)


def ops_texts(store) -> list[str]:
    """The markdown of every ops row due within a day."""
    return [row.payload["markdown"] for row in pending(store, "ops")]


def test_asking_again_joins_the_open_ticket_and_ops_hear_it_once(desk, store, kb):
    """The same need again: one ticket, the words on it, one coalesced "wrote again" update."""
    ticket, how = desk.open_ticket(draft(), "m1", [])
    again = [desk.open_ticket(draft(words=f"还没好吗{n}", at=T0 + n), f"m{n + 2}", []) for n in range(3)]
    assert how == "created" and {(t.id, h) for t, h in again} == {(ticket.id, "joined")}
    assert [m.text for m in store.conversations.ticket_messages(ticket.id)] == ["还没好吗0", "还没好吗1", "还没好吗2"]
    notify, update = ops_texts(store)
    assert ticket.number in notify and kb.part(CM, "handoff.ops", ticket=ticket.number, tax_id=TAX_ID,
                                               words="") in notify
    assert all(f"还没好吗{n}" in update for n in range(3))


def test_a_different_tax_id_is_a_different_need(desk, store):
    """Another company's tax ID opens its own ticket."""
    first, _ = desk.open_ticket(draft(), "m1", [])
    second, how = desk.open_ticket(draft(tax_id="110105600037341"), "m2", [])
    assert how == "created" and second.id != first.id


def test_a_flood_of_human_requests_is_one_ticket_and_two_ops_messages(desk, store):
    """15 × 转人工: one ticket; ops get its notification and one update, not 15 messages."""
    results = [desk.open_ticket(draft(HUMAN, "", "转人工", T0 + n), f"m{n}", []) for n in range(15)]
    assert len({t.id for t, _ in results}) == 1 and len(store.tickets.list()) == 1
    assert len(ops_texts(store)) == 2


def test_live_lines_reach_the_ticket_and_note_an_faq_answer(desk, store, kb):
    """A live conversation's messages land on its ticket; an FAQ answer is noted for ops."""
    ticket, _ = desk.open_ticket(draft(HUMAN, "", "转人工"), "m1", [])
    desk.forward("o1", HUMAN, "开票时提示通道异常", "", "m2", T0 + 1)
    desk.forward("o1", HUMAN, "单位ID填反了", "leqi-ids-swapped", "m3", T0 + 2)
    desk.forward("o1", HUMAN, "单位ID填反了", "leqi-ids-swapped", "m3", T0 + 2)  # WeChat's retry
    note = kb.render("desk-note", event="answered", title=kb.intents["leqi-ids-swapped"].title)
    assert [(m.who, m.text) for m in store.conversations.ticket_messages(ticket.id)] == [
        ("customer", "开票时提示通道异常"), ("customer", "单位ID填反了"), ("bot", note)]
    assert desk.forward("o-nobody", HUMAN, "在吗", "", "m9", T0) is None


@pytest.mark.parametrize("reason, status", [("customer", "resolved"), ("idle", "open")])
def test_ending_a_conversation(desk, store, kb, reason, status):
    """The customer leaving closes the ticket; going idle leaves it open; both are noted."""
    ticket, _ = desk.open_ticket(draft(HUMAN, "", "转人工"), "m1", [])
    desk.end_conversation("o1", HUMAN, reason, T0 + 5)
    assert store.tickets.get(ticket.id).status == status
    assert store.conversations.ticket_messages(ticket.id)[-1].text == kb.render("desk-note", event=f"ended-{reason}", title="")


def test_resolving_sends_the_faqs_done_text_and_says_so(desk, store, kb):
    """The customer gets the FAQ's done step; resolving again says it was done already."""
    ticket, _ = desk.open_ticket(draft(), "m1", [])
    take_turn(store, "in-1", user="o1", now=T0, lines=(("in", "乐企通道没有"),))
    outcome = desk.resolve(ticket.id, actor="cli:ops")
    assert outcome.line == kb.render("desk-status", action="resolve", outcome="queued", ticket=ticket.number)
    (row,) = pending(store, "customer")
    done = kb.part(CM, "handoff.done", ticket=ticket.number, tax_id=TAX_ID)
    assert row.payload["text"] == kb.render("ops-done", ticket=ticket.number, tax_id=TAX_ID, done=done)
    again = desk.resolve(ticket.id)
    assert (again.outcome, again.line) == ("already-resolved", kb.render(
        "desk-status", action="resolve", outcome="already-resolved", ticket=ticket.number))
    assert desk.resolve(999).ticket is None


@pytest.mark.parametrize("channel, last_in, outcome", [
    ("wechat", T0, "queued"),
    ("wechat", T0 - CUSTOMER_WINDOW_SECONDS, "held"),  # 48 h window closed
    ("wecom", T0, "held"),  # no WeCom push configured
])
def test_a_reply_says_whether_it_goes_out_or_waits(desk, store, kb, channel, last_in, outcome):
    """A reply is recorded with its author; one that cannot go out now is held, and says so."""
    ticket, _ = desk.open_ticket(draft(HUMAN, "", "转人工", channel=channel), "m1", [])
    take_turn(store, "in-1", user="o1", now=last_in, lines=(("in", "转人工"),))
    result = desk.reply(ticket.id, "  您好，已经处理了 ", actor="wecom:zhangsan")
    assert result.line == kb.render("desk-status", action="reply", outcome=outcome, ticket=ticket.number)
    (message,) = store.conversations.ticket_messages(ticket.id)
    assert (message.author, message.text, message.delivery) == (
        "wecom:zhangsan", "您好，已经处理了", "held" if outcome == "held" else "pending")
    assert desk.reply(ticket.id, "  ").outcome == "empty"


def test_a_screenshot_goes_to_the_ticket_the_conversation_is_about(desk, store, kb):
    """After "still missing", the image reopens the channel ticket though a newer ticket exists,
    and ops get a link to the kept image."""
    channel, _ = desk.open_ticket(draft(), "m1", [])
    store.tickets.resolve(channel.id, T0 + 1, [])
    human, _ = desk.open_ticket(draft(HUMAN, "", "转人工", T0 + 2), "m2", [])
    store.tickets.resolve(human.id, T0 + 3, [])
    ticket, attachment_id = desk.attach_image("o1", "wechat", "MEDIA1", "http://p.invalid/1", CM, T0 + 4)
    assert ticket.id == channel.id and store.tickets.get(channel.id).status == "open"
    assert store.tickets.get(human.id).status == "resolved"
    assert desk.attachment_url(attachment_id) in ops_texts(store)[-1]
    newest, _ = desk.attach_image("o1", "wechat", "MEDIA2", "", "", T0 + 5)
    assert newest.id == channel.id  # no hint: the open ticket


def test_images_are_downloaded_and_kept(kb, store):
    """The image bytes come from the media API once; a failure is noted and retried on view."""
    calls = []

    def fetch(channel, media_id):
        """media/get: fails once, then answers."""
        calls.append((channel, media_id))
        if len(calls) == 1:
            raise ConnectionError("media API down")
        return "image/jpeg", b"JPEG"

    desk = TicketDesk.of(kb, store, "", True, push_channels=frozenset({"wechat"}), fetch_media=fetch)
    ticket, _ = desk.open_ticket(draft(), "m1", [])
    _, attachment_id = desk.attach_image("o1", "wechat", "MEDIA1", "", "", T0)
    assert desk.download(attachment_id, "wechat", "MEDIA1") is None
    assert desk.attachment(attachment_id) == ("image/jpeg", b"JPEG")
    assert desk.attachment(attachment_id) == ("image/jpeg", b"JPEG") and len(calls) == 2


def test_updates_wait_for_more_lines(desk, store):
    """An update is due COALESCE_SECONDS after its first line."""
    ticket, _ = desk.open_ticket(draft(HUMAN, "", "转人工"), "m1", [])
    store.outbox.claim(T0 + 1, limit=10, target="ops")  # the notification went out
    desk.forward("o1", HUMAN, "在吗", "", "m2", T0 + 2)
    assert store.outbox.claim(T0 + 2 + COALESCE_SECONDS - 1, limit=10, target="ops") == []
    assert len(store.outbox.claim(T0 + 2 + COALESCE_SECONDS, limit=10, target="ops")) == 1


def test_a_refused_message_is_told_to_ops(desk, store, kb):
    """WeChat refused a ticket's message (held for the customer's next one): ops hear it plainly."""
    ticket, _ = desk.open_ticket(draft(HUMAN, "", "转人工"), "m1", [])
    store.outbox.claim(T0 + 1, limit=10, target="ops")
    desk.delivery_held(ticket.id, 45015)
    (update,) = [row.payload["markdown"] for row in pending(store, "ops")]
    assert kb.render("desk-note", event="held", title="45015") in update
