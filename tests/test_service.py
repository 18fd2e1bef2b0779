"""The service end to end over a real store: exactly-once replies, tickets, follow-ups, images."""
from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from bot.app import build_parts
from bot.config import OpsConfig, ServerConfig, StorageConfig, WeChatConfig, load_config
from bot.model import Inbound, Replay, Stamp
from bot.store.base import TurnRecord
from tests.conftest import ROOT
from tests.fakes import FakeClock
from tests.store_cases import all_backends, take_turn

TAX_ID = "91110108551385082Q"


@pytest.fixture
def clock():
    """A settable clock shared by the service and the test."""
    return FakeClock()


@pytest.fixture
def parts(store, clock):
    """Service over the `store` (a SQLite file unless parametrized), ops notifications on, WeChat
    push configured, a fixed clock."""
    config = replace(load_config(None), ops=OpsConfig(webhook_url="http://127.0.0.1:9/robot"),
                     wechat=WeChatConfig(token="t", app_secret="s3cret"))
    built = build_parts(config, store)
    built.service.clock = clock
    built.service.sleep = lambda seconds: None
    return built


def say(parts, text: str, msg_id: str, user: str = "o-user-1", kind: str = "text", **extra) -> str | None:
    """Send one message through the service and return its reply."""
    inbound = Inbound(user=user, kind=kind, text=text, msg_id=msg_id, created_at=parts.service.clock(), **extra)
    return parts.service.handle(inbound)


def outbox(parts, target: str):
    """Claim every due outbox row for a target (what the outbox worker would send)."""
    return parts.store.outbox.claim(parts.service.clock() + 3600, limit=100, target=target)


def open_channel_ticket(parts, user: str = "o-user-1") -> str:
    """Walk the channel-missing flow to a ticket; returns the ticket-created reply."""
    say(parts, "数电配置里找不到乐企联用通道", f"{user}-1", user=user)
    return say(parts, f"税号是{TAX_ID}", f"{user}-2", user=user)


def test_channel_missing_flow_opens_one_ticket_and_tells_ops_once(parts):
    first = say(parts, "数电配置里找不到乐企联用通道", "m1")
    assert "通道类型" in first and "税号" in first
    reply = say(parts, f"我们税号是 {TAX_ID}，麻烦了", "m2")
    tickets = parts.store.tickets.list()
    assert len(tickets) == 1 and tickets[0].tax_id == TAX_ID and tickets[0].status == "open"
    assert tickets[0].number in reply
    rows = outbox(parts, "ops")
    assert len(rows) == 1
    markdown = rows[0].payload["markdown"]
    assert tickets[0].number in markdown and TAX_ID in markdown and "/ops/tickets/" in markdown


def test_a_retry_gets_the_same_reply_and_no_second_ticket(parts):
    say(parts, "数电配置里找不到乐企联用通道", "m1")
    first = say(parts, TAX_ID, "m2")
    again = [say(parts, TAX_ID, "m2") for _ in range(3)]
    assert again == [first] * 3
    assert len(parts.store.tickets.list()) == 1
    assert len(outbox(parts, "ops")) == 1


def test_concurrent_retries_act_once(parts):
    say(parts, "数电配置里找不到乐企联用通道", "m1")
    replies: list = []
    threads = [threading.Thread(target=lambda: replies.append(say(parts, TAX_ID, "m2"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(parts.store.tickets.list()) == 1
    assert len(outbox(parts, "ops")) == 1
    assert any(r and "T0000" in r for r in replies)


def test_resolving_sends_step_three_and_a_held_follow_up_comes_with_the_next_reply(parts):
    open_channel_ticket(parts)
    ticket = parts.store.tickets.list()[0]
    parts.desk.resolve(ticket.id, parts.service.clock())
    rows = outbox(parts, "customer")
    assert len(rows) == 1 and "更新配置" in rows[0].payload["text"] and rows[0].user == "o-user-1"
    parts.store.outbox.hold(rows[0].id, "45015 response out of time limit")
    reply = say(parts, "你好", "m9")
    assert "更新配置" in reply and ticket.number in reply
    assert "更新配置" not in (say(parts, "你好", "m10") or "")


def test_a_screenshot_after_resolution_reopens_the_ticket_and_reaches_ops(parts):
    open_channel_ticket(parts)
    ticket = parts.store.tickets.list()[0]
    parts.desk.resolve(ticket.id, parts.service.clock())
    outbox(parts, "ops")
    reply = say(parts, "", "m5", kind="image", media_id="MEDIA1", pic_url="https://mmbiz.example/p.png")
    assert ticket.number in reply
    again = parts.store.tickets.get(ticket.id)
    assert again.status == "open" and again.attachments
    assert any(ticket.number in row.payload["markdown"] for row in outbox(parts, "ops"))


def test_an_image_without_a_ticket_asks_what_it_is_about(parts):
    reply = say(parts, "", "m1", kind="image", media_id="MEDIA1", pic_url="https://mmbiz.example/p.png")
    assert "描述" in reply and not parts.store.tickets.list()


def test_the_remembered_tax_id_gives_the_exact_cache_key(parts):
    open_channel_ticket(parts)
    reply = say(parts, "乐企接入单位ID和使用单位ID填反了，改完还是报错", "m3")
    assert f"{TAX_ID}fillCombineLeqiInfo" in reply


def test_human_handoff_carries_the_recent_transcript(parts):
    say(parts, "开票软件闪退怎么办", "m1")
    reply = say(parts, "转人工", "m2")
    assert "T0000" in reply
    tickets = parts.store.tickets.list()
    assert tickets[0].kind == tickets[0].intent == "human-agent"
    markdown = outbox(parts, "ops")[0].payload["markdown"]
    assert "开票软件闪退" in markdown


def test_unanswered_questions_are_logged_for_authors(parts):
    reply = say(parts, "红字发票怎么开", "m1")
    assert "转人工" in reply
    report = parts.store.reports.report()
    assert [row["text"] for row in report["unanswered"]] == ["红字发票怎么开"]


def test_ticket_status_lists_the_customers_tickets(parts):
    open_channel_ticket(parts)
    number = parts.store.tickets.list()[0].number
    assert number in say(parts, "进度", "m7")
    assert number not in (say(parts, "进度", "x7", user="o-other") or "")


def abandon(parts, msg_id: str = "m1") -> None:
    """A first attempt at the message that began and died before committing (a killed worker)."""
    with parts.store.turns.turn(f"wechat:{msg_id}", "o-user-1", parts.service.clock()):
        pass


@all_backends(["sqlite", "postgres", "redis"])
def test_a_retry_while_the_first_attempt_runs_gets_the_same_reply(parts, clock):
    """Whichever attempt acts, both answer alike (SQL: the first commit; Redis: the first claim)."""
    with parts.store.turns.turn("wechat:m1", "o-user-1", clock()) as first:
        waits = []

        def first_finishes(seconds):
            """The retry waits (Redis: busy); meanwhile the first attempt commits."""
            waits.append(first.commit(lambda tx: TurnRecord(reply="第一次的回复")))
            clock.now += seconds
        parts.service.sleep = first_finishes
        retry = say(parts, "你好", "m1")
        if not waits:  # SQL: the retry answered; the first attempt's commit returns that answer
            waits.append(first.commit(lambda tx: pytest.fail("the message was answered twice")))
    assert retry == waits[0] and retry


@all_backends(["sqlite", "redis"])
def test_a_claim_left_by_a_killed_worker_is_taken_over(parts, clock):
    abandon(parts)
    clock.now += 5  # WeChat retries after 5 s; the first worker never finished
    reply = say(parts, "你好", "m1")
    assert reply and "乐企" in reply


def test_unsubscribe_forgets_the_conversation(parts):
    say(parts, "数电配置里找不到乐企联用通道", "m1")
    say(parts, "", "e1", kind="event", event="unsubscribe")
    reply = say(parts, TAX_ID, "m2")
    assert not parts.store.tickets.list()
    assert reply is None or "T0000" not in reply


def test_a_tax_id_in_an_unanswered_question_is_masked_for_authors(parts):
    say(parts, f"{TAX_ID} 开票软件闪退", "m1")
    texts = [row["text"] for row in parts.store.reports.report()["unanswered"]]
    assert texts and TAX_ID not in texts[0] and "9111" in texts[0]


@all_backends(["sqlite", "redis"])
def test_a_waiting_retry_takes_over_when_the_first_attempt_dies(parts, clock):
    abandon(parts)
    clock.now += 1  # a retry arrives while the first attempt still looks alive

    def tick(seconds):
        clock.now += seconds

    parts.service.sleep = tick
    reply = say(parts, "乐企通道不显示", "m1")
    assert reply and "通道类型" in reply
    assert take_turn(parts.store, "wechat:m1", now=clock()) == ("done", reply)


def test_an_over_long_answer_becomes_its_steps_with_an_absolute_link(tmp_path, clock):
    answers = tmp_path / "answers"
    (answers / "texts").mkdir(parents=True)
    for src in (ROOT / "answers" / "texts").glob("*.md"):
        (answers / "texts" / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    for src in (ROOT / "answers").glob("*.md"):
        (answers / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    long_body = "\n".join(f"{i}. 打开发票列表，找到需要重新打印的那张发票，再点打印" * 6 for i in range(1, 12))
    (answers / "invoice-reprint.md").write_text(
        "---\nid: invoice-reprint\ntitle: 重新打印发票\nquestion: 发票怎么重新打印\nkind: faq\n"
        "keywords: [打印, 重打]\nshort: \"1. 发票列表 → 打印\\n详细步骤：{{ answer_url }}\"\n---\n" + long_body,
        encoding="utf-8")
    config = replace(load_config(None), answers_dir=answers,
                     storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db"),
                     server=ServerConfig(public_url="https://bot.example.com"))
    built = build_parts(config)
    built.service.clock = clock
    reply = say(built, "发票怎么重新打印", "m1")
    assert reply == "1. 发票列表 → 打印\n详细步骤：https://bot.example.com/answers/invoice-reprint"


def test_a_second_message_under_a_used_stamp_is_a_replay_and_acts_not(parts):
    """A captured timestamp+nonce carrying another message: Replay (the channel answers 409), no ticket."""
    stamp = Stamp(f"wechat:{parts.service.clock():.0f}:42", parts.service.clock() + 300)
    first = Inbound(user="o-user-1", kind="text", text="你好", msg_id="m1", created_at=parts.service.clock(),
                    stamp=stamp)
    assert parts.service.handle(first) and parts.service.handle(first) == parts.service.handle(first)
    with pytest.raises(Replay):
        parts.service.handle(replace(first, text="转人工", msg_id="m2"))
    assert parts.store.tickets.list() == []
