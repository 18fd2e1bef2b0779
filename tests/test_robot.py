"""WeCom group-robot client against the fake robot on 127.0.0.1."""
from __future__ import annotations

import socket

import pytest

from bot.channels.robot import MAX_MARKDOWN_BYTES, TRUNCATED_NOTE, RobotClient, fit_markdown
from bot.outbox import DeliveryError

CONSOLE = "[在控制台处理](http://127.0.0.1:8080/ops/tickets/7)"
TRANSCRIPT = "\n".join(f"> 客户：第{i}句，乐企通道不显示，税号 91110000600037341L" for i in range(200))


@pytest.mark.parametrize("text", [
    "### 新工单 T000001\n> 税号：91110000600037341L",
    "x" * MAX_MARKDOWN_BYTES,
    "税" * (MAX_MARKDOWN_BYTES // 3),
])
def test_fit_markdown_keeps_text_that_fits(text):
    """Markdown within 4096 bytes is sent as written."""
    assert fit_markdown(text) == text


@pytest.mark.parametrize("text, keeps_link", [
    (f"### 新工单 T000007\n{TRANSCRIPT}\n\n{CONSOLE}", True),
    (f"### 新工单 T000007\n{TRANSCRIPT}", False),
    ("税" * 3000, False),
    ("### 标题\n" + "税" * 3000 + "\n" + CONSOLE, True),
])
def test_fit_markdown_truncates_at_a_line_with_a_note(text, keeps_link):
    """Long markdown is cut to ≤ 4096 bytes between lines, says so, and keeps the console link."""
    short = fit_markdown(text)
    assert len(short.encode("utf-8")) <= MAX_MARKDOWN_BYTES
    assert TRUNCATED_NOTE in short
    assert short.endswith(CONSOLE) == keeps_link
    head = short.split(TRUNCATED_NOTE)[0].rstrip("\n")
    assert text.startswith(head)
    if "\n" in text.split(CONSOLE)[0].rstrip("\n"):  # several lines: no line is cut in half
        assert all(line in text.split("\n") for line in head.split("\n"))


def test_send_markdown_delivers_the_content(robot):
    """The robot receives the markdown message exactly as written."""
    RobotClient(robot.webhook_url, timeout=5).send_markdown("### 新工单 T000001\n> 税号：9111")
    assert robot.messages == ["### 新工单 T000001\n> 税号：9111"]


def test_send_markdown_sends_long_text_truncated(robot):
    """A notification longer than 4096 bytes is accepted by the robot, truncated."""
    RobotClient(robot.webhook_url, timeout=5).send_markdown(f"### 新工单\n{TRANSCRIPT}\n{CONSOLE}")
    assert robot.rejected == []
    assert robot.messages[0].endswith(f"{TRUNCATED_NOTE}\n{CONSOLE}")


def _rate_limit(fake):
    """The robot's per-minute budget is used up."""
    fake.per_minute = 0


def _wrong_key(fake):
    """The configured key no longer exists."""
    fake.key = "another-key"


@pytest.mark.parametrize("break_it, retryable, code", [
    (_rate_limit, True, 45009),
    (_wrong_key, False, 93000),
    (lambda fake: fake.down("500"), True, None),
    (lambda fake: fake.down("refused"), True, None),
    (lambda fake: fake.fail_next("/cgi-bin/webhook/send", errcode=-1), True, -1),
    (lambda fake: fake.fail_next("/cgi-bin/webhook/send", status=502), True, None),
])
def test_send_markdown_failures_say_whether_to_retry(robot, break_it, retryable, code):
    """Outages and rate limits are retryable; a bad key is not; nothing is recorded."""
    client = RobotClient(robot.webhook_url, timeout=5)
    break_it(robot)
    with pytest.raises(DeliveryError) as caught:
        client.send_markdown("hello")
    assert (caught.value.retryable, caught.value.code, caught.value.hold) == (retryable, code, False)
    assert robot.messages == []


def test_send_markdown_times_out_on_a_silent_server():
    """A robot that accepts the connection but never answers is a retryable failure."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/cgi-bin/webhook/send?key=k"
        with pytest.raises(DeliveryError) as caught:
            RobotClient(url, timeout=0.2).send_markdown("hello")
    assert caught.value.retryable and "Timeout" in caught.value.message


def test_robot_comes_back_after_an_outage(robot):
    """After the port was closed and reopened, sending works again."""
    client = RobotClient(robot.webhook_url, timeout=5)
    robot.down("refused")
    with pytest.raises(DeliveryError):
        client.send_markdown("one")
    robot.up()
    client.send_markdown("two")
    assert robot.messages == ["two"]


def test_repr_hides_the_webhook_key(robot):
    """Logging the client never shows the secret key."""
    assert robot.key not in repr(RobotClient(robot.webhook_url))
