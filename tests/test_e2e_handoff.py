"""End to end, handoffs: `python -m bot serve` (2 workers, SQLite) with the shipped answers plus a
third FAQ in its own folder (`[answers] dir`), WeChat delivering safe-mode messages, FakeWeChat
(customer-service messages, media/get), FakeWeCom (ops members write to the app, encrypted as WeCom
does) and FakeRobot (the ops group). Expected texts are rendered from that answers folder.
"""
from __future__ import annotations

import secrets
import shutil
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from bot.kb import load_kb
from tests.conftest import FIXTURES, ROOT
from tests.e2e_helpers import Account, Stack, free_port, poll, run_cli, start_bot, write_config
from tests.fakes import FakeRobot, FakeWeChat, FakeWeCom
from tests.test_e2e import SqliteBackend, all_sent
from tests.wechat_sim import WeComSim

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WORKERS = 2
TAX_ID = "91110108551385082Q"
THIRD = "print-service-offline"
OPS_MEMBER = "ops-zhang"
UPDATE_SECONDS = 1  # [handoff] ops_update_seconds: coalesce briefly so the tests do not wait


@dataclass
class HandoffStack:
    """The running bot, its fakes, its answers folder and the WeCom app's side."""

    stack: Stack
    answers: Path
    wecom: FakeWeCom
    wecom_sim: WeComSim

    def kb(self):
        """The answers the server runs, to render expected texts from."""
        return load_kb(self.answers)

    def ops_says(self, text: str) -> str | None:
        """An ops member writes to the WeCom app; the decrypted passive reply (None: "success")."""
        sim = replace(self.wecom_sim, now=int(time.time()), nonce=str(secrets.randbelow(10**9)))
        xml = (f"<xml><ToUserName><![CDATA[{sim.app_id}]]></ToUserName><FromUserName><![CDATA[{OPS_MEMBER}]]>"
               f"</FromUserName><CreateTime>{sim.now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
               f"<Content><![CDATA[{text}]]></Content><MsgId>{secrets.randbelow(10**15)}</MsgId>"
               f"<AgentID>{self.wecom.agent_id}</AgentID></xml>")
        req = sim.message_request(xml)
        url = f"{self.stack.server.url}{req['path']}?{urlencode(req['query_string'])}"
        res = requests.post(url, data=req["data"], timeout=15, headers={"Content-Type": "text/xml"})
        assert res.status_code == 200, res.text[:200]
        return None if res.text == "success" else sim.open_reply(res.content)["Content"]

    def robot_about(self, number: str) -> list[str]:
        """Group robot messages naming a ticket number."""
        return [m for m in list(self.stack.robot.messages) if number in m]


@pytest.fixture(scope="module")
def hs(tmp_path_factory):
    """The server with its fakes and a copy of the answers plus the third FAQ; stopped afterwards."""
    tag = f"{secrets.randbelow(10**8):08d}"
    folder = tmp_path_factory.mktemp("e2e-handoff")
    answers = folder / "answers"
    shutil.copytree(ROOT / "answers", answers)
    shutil.copytree(FIXTURES / "answers_third", answers, dirs_exist_ok=True)
    account = Account(app_id=f"wx{tag}{secrets.token_hex(4)}")
    wechat, robot = FakeWeChat(app_id=account.app_id, secret=secrets.token_hex(16)), FakeRobot()
    wecom = FakeWeCom(corp_id=f"ww{tag}")
    sim = WeComSim(token=uuid.uuid4().hex, app_id=wecom.corp_id, encoding_aes_key=Account("x").aes_key)
    backend, server = SqliteBackend(folder), None
    try:
        port = free_port()
        extra = {"answers": {"dir": str(answers)},
                 "handoff": {"ops_update_seconds": UPDATE_SECONDS},
                 "wecom": {"corp_id": wecom.corp_id, "agent_id": str(wecom.agent_id), "secret": wecom.secret,
                           "token": sim.token, "encoding_aes_key": sim.encoding_aes_key, "api_base_url": wecom.url,
                           "ops_users": [OPS_MEMBER]}}
        config = write_config(folder, port, account, backend, wechat, robot, extra)
        server = start_bot(config, port, WORKERS)
        server.wait_ready()
        yield HandoffStack(Stack(server, backend, account, wechat, robot, config, tag), answers, wecom, sim)
    finally:
        if server is not None:
            server.stop()
        for fake in (wechat, robot, wecom):
            fake.close()
        backend.cleanup()


def image_message(customer, media_id: str) -> str:
    """An image message (PicUrl + MediaId) as WeChat sends it."""
    return (f"<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[{customer.user}]]>"
            f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
            f"<PicUrl><![CDATA[http://mmbiz.invalid/{media_id}]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>"
            f"<MsgId>{next(customer.msg_ids)}</MsgId></xml>")


def only_ticket(hs, customer, intent: str | None = None) -> dict:
    """The customer's one ticket (of `intent`)."""
    (ticket,) = [t for t in hs.stack.tickets(customer.user) if intent is None or t["intent"] == intent]
    return ticket


def test_a_live_conversation_both_ways(hs):
    """转人工; what the customer explains reaches the ops group (not an FAQ fallback); ops answer with
    `tickets reply` and the customer gets it as a customer-service message; leaving hands back."""
    kb, customer, stack = hs.kb(), hs.stack.customer(), hs.stack
    opened = customer.say("转人工")
    ticket = only_ticket(hs, customer)
    assert ticket["number"] in opened and kb.part("human-agent", "handoff.customer") in opened
    words = "就是开票的时候提示乐企通道异常"
    assert customer.say(words) == kb.render("human-ack")
    poll(lambda: any(words in m for m in hs.robot_about(ticket["number"])), 30, "the words in the ops group")
    stack.wechat.user_message(customer.user)  # the 48 h window their messages opened
    said = run_cli(stack.config, "tickets", "reply", str(ticket["id"]), "您好，请发一下报错截图").stdout.strip()
    assert said == kb.render("desk-status", action="reply", outcome="queued", ticket=ticket["number"])
    poll(lambda: stack.cs_messages(customer.user), 30, "the reply to reach the customer")
    assert stack.cs_messages(customer.user) == [kb.render("ops-reply", text="您好，请发一下报错截图")]
    assert customer.say("结束人工") == kb.render("human-ended", reason="customer")
    assert customer.say("乐企怎么收费") == kb.render("fallback", question="乐企怎么收费")
    assert only_ticket(hs, customer)["status"] == "resolved"


def test_a_flood_of_human_requests_is_one_ticket(hs):
    """15 × 转人工 at once from one customer: one ticket, named in every reply; ops get its
    notification and the repeats coalesced, not 15 messages."""
    kb, customer = hs.kb(), hs.stack.customer()
    with ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda _: customer.say("转人工"), range(15)))
    ticket = only_ticket(hs, customer)
    exists = kb.render("ticket-exists", ticket=ticket["number"], live=True)
    assert all(ticket["number"] in reply for reply in replies) and replies.count(exists) == 14
    poll(lambda: hs.stack.backend.outbox("", ticket["id"]).count(("ops", "sent")) >= 2, 30,
         "the notification and the coalesced update to go out")
    hs.stack.wait_outbox(customer.user, all_sent, "the customer's messages to go out")
    assert 2 <= len(hs.robot_about(ticket["number"])) <= 4


def test_the_screenshot_goes_to_the_ticket_it_is_about(hs):
    """Channel ticket resolved, then a 转人工 ticket resolved: "更新配置后还是没有" and a screenshot
    reopen the channel ticket; the image is downloaded and kept, and ops get a link to it."""
    kb, customer, stack = hs.kb(), hs.stack.customer(), hs.stack
    customer.say("数电配置里没有乐企联用通道")
    customer.say(TAX_ID)
    customer.say("转人工")
    stack.wechat.user_message(customer.user)
    for ticket in stack.tickets(customer.user):
        run_cli(stack.config, "tickets", "resolve", str(ticket["id"]))
    poll(lambda: len(stack.cs_messages(customer.user)) == 2, 30, "both done messages to go out")
    assert customer.say("更新配置后还是没有") == kb.part("leqi-channel-missing", "handoff.still_missing")
    media_id = f"MEDIA{stack.tag}"
    stack.wechat.media[media_id] = ("image/jpeg", b"\xff\xd8\xff-screenshot")
    channel = only_ticket(hs, customer, "leqi-channel-missing")
    assert customer.post(image_message(customer, media_id)) == kb.render("image-attached", ticket=channel["number"])
    assert only_ticket(hs, customer, "leqi-channel-missing")["status"] == "open"
    assert only_ticket(hs, customer, "human-agent")["status"] == "resolved"
    query = "SELECT data FROM attachment_files WHERE media_id = ?"

    def kept():
        """The image bytes in the database, once downloaded."""
        with sqlite3.connect(stack.backend.path) as conn:
            row = conn.execute(query, (media_id,)).fetchone()
        return row and row[0]
    assert poll(kept, 30, "the image to be downloaded") == b"\xff\xd8\xff-screenshot"
    poll(lambda: any("/ops/attachments/" in m for m in hs.robot_about(channel["number"])), 30,
         "the ops group to get a link to the image")


def test_a_third_faq_speaks_with_its_own_texts(hs):
    """A handoff FAQ added as a file: its customer, ops and done messages, nothing of 乐企."""
    kb, customer, stack = hs.kb(), hs.stack.customer(), hs.stack
    assert customer.say("开票页面一直提示打印服务离线").endswith(kb.render("ask-tax-id", purpose=THIRD, known_tax_id=""))
    created = customer.say(TAX_ID)
    ticket = only_ticket(hs, customer)
    assert ticket["kind"] == THIRD and kb.part(THIRD, "handoff.customer", ticket="", tax_id="", flagged=False) in created
    (ops,) = poll(lambda: hs.robot_about(ticket["number"]), 30, "the ops notification")
    assert kb.part(THIRD, "handoff.ops", ticket="", tax_id="", words="") in ops
    stack.wechat.user_message(customer.user)
    run_cli(stack.config, "tickets", "resolve", str(ticket["id"]))
    (done,) = poll(lambda: stack.cs_messages(customer.user), 30, "the done message")
    assert kb.part(THIRD, "handoff.done", ticket="", tax_id="") in done
    assert not any("乐企" in text for text in (created, ops, done))


def test_ops_answer_from_the_wecom_app(hs):
    """An ops member writes "T000123 …" to the app: the customer gets it; "#123 完成" resolves."""
    kb, customer, stack = hs.kb(), hs.stack.customer(), hs.stack
    customer.say("转人工")
    ticket = only_ticket(hs, customer)
    stack.wechat.user_message(customer.user)
    said = hs.ops_says(f"{ticket['number']} 你好，已经处理了")
    assert said == kb.render("desk-status", action="reply", outcome="queued", ticket=ticket["number"])
    poll(lambda: stack.cs_messages(customer.user), 30, "the reply to reach the customer")
    assert stack.cs_messages(customer.user) == [kb.render("ops-reply", text="你好，已经处理了")]
    assert hs.ops_says(f"#{ticket['id']} 完成") == kb.render("desk-status", action="resolve", outcome="queued",
                                                               ticket=ticket["number"])
    assert only_ticket(hs, customer)["status"] == "resolved"


def test_a_reply_wechat_refuses_is_told_to_ops_and_comes_with_the_next_message(hs):
    """The customer's window is closed at WeChat (45015): the reply is held, the ops group hears it
    plainly, and the customer's next message brings it."""
    kb, customer, stack = hs.kb(), hs.stack.customer(), hs.stack
    customer.say("转人工")
    ticket = only_ticket(hs, customer)
    run_cli(stack.config, "tickets", "reply", str(ticket["id"]), "请问是哪个页面？")
    stack.wait_outbox(customer.user, lambda rows: ("customer", "held") in rows, "the reply to be held")
    note = kb.render("desk-note", event="held", title="45015")
    poll(lambda: any(note in m for m in hs.robot_about(ticket["number"])), 30, "ops to hear of it")
    reply = customer.say("在吗")
    assert reply.startswith(kb.render("ops-reply", text="请问是哪个页面？")) and stack.cs_messages(customer.user) == []


def test_an_edited_answer_takes_effect_and_a_broken_one_does_not(hs):
    """The author edits the third FAQ: the next question gets the new words without a restart; a
    broken edit is refused (logged) and the last good answers keep serving."""
    customer, stack = hs.stack.customer(), hs.stack
    path = hs.answers / f"{THIRD}.md"
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace("需要由技术支持在后台重新绑定", "需要由技术支持在后台重新绑定（已更新）"),
                    encoding="utf-8")
    poll(lambda: "（已更新）" in (customer.say("打印服务显示离线，发票打不出来") or "") and customer.say("取消"),
         60, "the edited answer to be served")
    path.write_text(original.replace("handoff:", "handoff: [broken"), encoding="utf-8")
    poll(lambda: "check failed" in stack.server.log_path.read_text(errors="replace"), 30, "the refusal in the log")
    assert "（已更新）" in customer.say("打印服务显示离线，发票打不出来")
    customer.say("取消")
    path.write_text(original, encoding="utf-8")
