"""Customer-service messages through wechatpy against the fake WeChat API on 127.0.0.1."""
from __future__ import annotations

import logging
import socket
import threading

import pytest
from wechatpy import WeChatClient

from bot.channels.robot import DeliveryError
from bot.channels.wechat_api import CustomerService
from bot.config import WeChatConfig
from bot.store.sql import SqlStore
from tests.fakes import OPENID, FakeWeChat

SEND = "/cgi-bin/message/custom/send"


@pytest.fixture
def store(tmp_path):
    """A real store on a temporary SQLite file."""
    store = SqlStore(f"sqlite:///{tmp_path}/bot.db")
    yield store
    store.close()


def make_cs(fake: FakeWeChat, store, clock) -> CustomerService:
    """A CustomerService pointed at `fake`."""
    cfg = WeChatConfig(app_id=fake.app_id, app_secret=fake.secret, api_base_url=fake.url,
                       http_timeout=5.0)
    return CustomerService(cfg, store, clock=clock)


def test_send_text_reaches_the_customer(wechat, store, clock):
    """A text message arrives at the customer with one token fetch."""
    make_cs(wechat, store, clock).send_text(OPENID, "您的工单 T000001 已处理：请重新登录 → 数电配置")
    assert wechat.messages == [(OPENID, "您的工单 T000001 已处理：请重新登录 → 数电配置")]
    assert wechat.token_fetches == 1


def test_token_is_shared_by_workers_through_the_store(wechat, store, clock):
    """Two workers over one store fetch the access token once between them."""
    first, second = make_cs(wechat, store, clock), make_cs(wechat, store, clock)
    first.send_text(OPENID, "一")
    second.send_text(OPENID, "二")
    first.send_text(OPENID, "三")
    assert [text for _, text in wechat.messages] == ["一", "二", "三"]
    assert wechat.token_fetches == 1


def test_concurrent_first_sends_fetch_one_token(wechat, store, clock):
    """Four workers sending at the same moment with no token yet still fetch it once."""
    workers = [make_cs(wechat, store, clock) for _ in range(4)]
    wechat.quota = len(workers)
    barrier = threading.Barrier(len(workers))

    def send(cs):
        """Wait for the others, then send."""
        barrier.wait()
        cs.send_text(OPENID, "hi")

    threads = [threading.Thread(target=send, args=(cs,)) for cs in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (wechat.token_fetches, len(wechat.messages)) == (1, 4)


@pytest.mark.parametrize("later, fetches", [
    (0, 1),
    (7200 - 301, 1),  # still more than 5 minutes left: reuse
    (7200 - 299, 2),  # less than 5 minutes left: refresh before WeChat expires it
    (7200 + 1, 2),
    (3 * 7200, 2),
])
def test_token_is_refreshed_before_it_expires(wechat, store, clock, later, fetches):
    """The token is reused while valid and refreshed 5 minutes before expiry, never rejected."""
    cs = make_cs(wechat, store, clock)
    cs.send_text(OPENID, "一")
    clock.advance(later)
    wechat.user_message(OPENID)
    cs.send_text(OPENID, "二")
    assert wechat.token_fetches == fetches
    assert len(wechat.messages) == 2
    assert sum(call["path"] == SEND for call in wechat.calls) == 2  # no send was rejected


@pytest.mark.parametrize("reject", [
    lambda fake: fake.expire_tokens(),  # 42001
    lambda fake: fake.fail_next(SEND, errcode=40001),
    lambda fake: fake.fail_next(SEND, errcode=42001),
])
def test_rejected_token_is_refreshed_once_and_the_send_retried(wechat, store, clock, reject):
    """When WeChat rejects the token the message still goes out, once, after one refresh."""
    cs = make_cs(wechat, store, clock)
    cs.send_text(OPENID, "一")
    reject(wechat)
    cs.send_text(OPENID, "二")
    assert [text for _, text in wechat.messages] == ["一", "二"]
    assert wechat.token_fetches == 2


def test_token_rejected_twice_is_a_retryable_failure(wechat, store, clock):
    """A token rejected again right after a refresh is not retried in a loop."""
    wechat.fail_next(SEND, errcode=40001, times=3)
    with pytest.raises(DeliveryError) as caught:
        make_cs(wechat, store, clock).send_text(OPENID, "一")
    assert caught.value.retryable and not caught.value.hold
    assert wechat.token_fetches == 2
    assert wechat.messages == []


def _window_closed(fake):
    """The customer last wrote more than 48 h ago."""
    fake.windows[OPENID] -= 48 * 3600 + 1


def _quota_used(fake):
    """Five messages already went out in this window."""
    fake.quota_used[OPENID] = 5


def _unverified(fake):
    """The account may not use the customer-service API."""
    fake.unverified = True


@pytest.mark.parametrize("situation, code", [
    (_window_closed, 45015),
    (lambda fake: fake.windows.clear(), 45015),
    (_quota_used, 45047),
    (_unverified, 48001),
])
def test_closed_window_holds_the_message(wechat, store, clock, situation, code):
    """Window closed, quota used or API unauthorized: hold for the next passive reply."""
    situation(wechat)
    with pytest.raises(DeliveryError) as caught:
        make_cs(wechat, store, clock).send_text(OPENID, "您的工单已处理")
    assert (caught.value.hold, caught.value.retryable, caught.value.code) == (True, False, code)
    assert wechat.messages == []


@pytest.mark.parametrize("breakage, retryable, code", [
    (lambda fake: fake.down("500"), True, None),
    (lambda fake: fake.down("refused"), True, None),
    (lambda fake: fake.fail_next(SEND, errcode=-1), True, -1),
    (lambda fake: fake.fail_next(SEND, errcode=45009), True, 45009),
    (lambda fake: fake.fail_next(SEND, errcode=40003), False, 40003),
    (lambda fake: fake.fail_next("/cgi-bin/token", status=502), True, None),
    (lambda fake: setattr(fake, "secret", "rotated"), False, 40125),
])
def test_other_failures_say_whether_to_retry(wechat, store, clock, breakage, retryable, code):
    """Outages and busy answers are retried later; a bad openid or secret is not; none hold."""
    cs = make_cs(wechat, store, clock)
    breakage(wechat)
    with pytest.raises(DeliveryError) as caught:
        cs.send_text(OPENID, "一")
    assert (caught.value.retryable, caught.value.hold, caught.value.code) == (retryable, False, code)
    assert wechat.messages == []


def test_base_url_is_per_instance(store, clock, tmp_path):
    """Two accounts on two API hosts each reach their own host (no shared class attribute)."""
    other_store = SqlStore(f"sqlite:///{tmp_path}/other.db")
    with FakeWeChat(clock=clock) as one, FakeWeChat(app_id="wx-other", clock=clock) as two:
        for fake in (one, two):
            fake.user_message(OPENID)
        make_cs(one, store, clock).send_text(OPENID, "to one")
        make_cs(two, other_store, clock).send_text(OPENID, "to two")
        assert (one.messages, two.messages) == ([(OPENID, "to one")], [(OPENID, "to two")])
    other_store.close()
    assert WeChatClient.API_BASE_URL == "https://api.weixin.qq.com/cgi-bin/"


def test_silent_api_times_out(store, clock):
    """An API that never answers fails retryably after cfg.http_timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        cfg = WeChatConfig(app_id="wx", app_secret="s", http_timeout=0.2,
                           api_base_url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(DeliveryError) as caught:
            CustomerService(cfg, store, clock=clock).send_text(OPENID, "一")
    assert caught.value.retryable and "Timeout" in caught.value.message


def test_logs_never_show_secret_or_token(wechat, store, clock, caplog):
    """Refreshing and sending log nothing a reader could reuse."""
    caplog.set_level(logging.INFO)
    cs = make_cs(wechat, store, clock)
    cs.send_text(OPENID, "一")
    wechat.expire_tokens()
    cs.send_text(OPENID, "二")
    assert wechat.secret not in caplog.text
    assert "TOKEN-" not in caplog.text
