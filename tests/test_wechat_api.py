"""Customer-service messages through wechatpy against the fake WeChat API on 127.0.0.1.

The send → refresh once → resend flow and the shared token are CustomerService's; WeComPush
inherits them, so those scenarios run over both clients (`case`).
"""
from __future__ import annotations

import logging
import socket
import threading

import pytest

from bot.outbox import DeliveryError
from tests.api_cases import CASES, make_cs, refusal
from tests.store_cases import open_backend
from tests.fakes import OPENID

SEND = "/cgi-bin/message/custom/send"
TEXT = "您的工单 T000001 已处理：请重新登录 → 数电配置"


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request):
    """Each push client with what differs about its API."""
    return request.param


@pytest.fixture
def fake(case, clock):
    """The case's fake API on the fake clock, its test user reachable."""
    with case.serve(clock) as served:
        yield served


def test_send_text_reaches_the_recipient(case, fake, store, clock):
    """A text message arrives at the customer or member with one token fetch."""
    case.connect(fake, store, clock).send_text(case.user, TEXT)
    assert fake.messages == [(case.user, TEXT)]
    assert fake.calls_to(case.token_path) == 1


def test_token_is_shared_by_workers_through_the_store(case, fake, store, clock):
    """Two workers over one store fetch the access token once between them."""
    first, second = case.connect(fake, store, clock), case.connect(fake, store, clock)
    for client, text in ((first, "一"), (second, "二"), (first, "三")):
        client.send_text(case.user, text)
    assert [text for _, text in fake.messages] == ["一", "二", "三"]
    assert fake.calls_to(case.token_path) == 1


@pytest.mark.parametrize("reject", ["expired", "unknown", 42001])
def test_rejected_token_is_refreshed_once_and_the_send_retried(case, fake, store, clock, reject):
    """When the API rejects the token the message still goes out, once, after one refresh."""
    client = case.connect(fake, store, clock)
    client.send_text(case.user, "一")
    if reject == "expired":
        fake.expire_tokens()  # 42001 from the fake's own expiry check
    else:
        fake.fail_next(case.send_path, errcode=case.bad_token if reject == "unknown" else reject)
    client.send_text(case.user, "二")
    assert [text for _, text in fake.messages] == ["一", "二"]
    assert fake.calls_to(case.token_path) == 2


def test_token_rejected_twice_is_a_retryable_failure(case, fake, store, clock):
    """A token rejected again right after a refresh is not retried in a loop."""
    fake.fail_next(case.send_path, errcode=case.bad_token, times=3)
    assert refusal(case.connect(fake, store, clock), case.user, fake) == (True, False, case.bad_token)
    assert fake.calls_to(case.token_path) == 2


@pytest.mark.parametrize("breakage, code", [
    (lambda case, fake: fake.down("500"), None),
    (lambda case, fake: fake.down("refused"), None),
    (lambda case, fake: fake.fail_next(case.send_path, errcode=-1), -1),
    (lambda case, fake: fake.fail_next(case.send_path, errcode=45009), 45009),
    (lambda case, fake: fake.fail_next(case.token_path, status=502), None),
], ids=["500", "refused", "busy", "rate-limit", "token-502"])
def test_outages_and_busy_answers_are_retried_later(case, fake, store, clock, breakage, code):
    """An API that is down, busy or over its rate limit fails retryably; nothing is held."""
    client = case.connect(fake, store, clock)
    breakage(case, fake)
    assert refusal(client, case.user, fake) == (True, False, code)


def test_base_url_is_per_instance(case, store, clock, tmp_path):
    """Two accounts on two API hosts each reach their own host (no shared class attribute)."""
    other_store = open_backend({"url": f"sqlite:///{tmp_path}/other.db"})
    with case.serve(clock) as one, case.serve(clock, **case.other) as two:
        case.connect(one, store, clock).send_text(case.user, "to one")
        case.connect(two, other_store, clock).send_text(case.user, "to two")
        assert (one.messages, two.messages) == ([(case.user, "to one")], [(case.user, "to two")])
    other_store.close()
    assert case.library.API_BASE_URL == case.library_url


def test_silent_api_times_out(case, fake, store, clock):
    """An API that never answers fails retryably after cfg.http_timeout instead of hanging the worker."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        client = case.connect(fake, store, clock, http_timeout=0.2,
                              api_base_url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(DeliveryError) as caught:
            client.send_text(case.user, "一")
    assert caught.value.retryable and "Timeout" in caught.value.message


def test_logs_name_the_channel_never_secret_or_token(case, fake, store, clock, caplog):
    """Fetching and refreshing are logged under the client's channel, with nothing a reader could reuse."""
    caplog.set_level(logging.INFO)
    client = case.connect(fake, store, clock)
    client.send_text(case.user, "一")
    fake.expire_tokens()
    client.send_text(case.user, "二")
    assert f"{case.name}: fetching access token" in caplog.text
    assert f"{case.name}: access token rejected, refreshing once" in caplog.text
    assert fake.secret not in caplog.text and fake.TOKEN_PREFIX not in caplog.text


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
    assert wechat.calls_to(SEND) == 2  # no send was rejected


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
    assert refusal(make_cs(wechat, store, clock), OPENID, wechat) == (False, True, code)


@pytest.mark.parametrize("breakage, code", [
    (lambda fake: fake.fail_next(SEND, errcode=40003), 40003),
    (lambda fake: setattr(fake, "secret", "rotated"), 40125),
], ids=["bad-openid", "wrong-secret"])
def test_bad_openid_or_secret_is_not_retried(wechat, store, clock, breakage, code):
    """A send to an openid WeChat does not know, or with a rotated secret, gives up; none hold."""
    cs = make_cs(wechat, store, clock)
    breakage(wechat)
    assert refusal(cs, OPENID, wechat) == (False, False, code)
