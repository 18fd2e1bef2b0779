"""Customer-controlled text and URLs in ops markdown (bot.tickets) stay inert."""
from __future__ import annotations

import pytest

from bot.model import Ticket
from bot.tickets import markdown_safe, markdown_url, ops_notification


@pytest.mark.parametrize("url, expected", [
    ("http://mmbiz.qpic.cn/mmbiz_jpg/abc/0", "http://mmbiz.qpic.cn/mmbiz_jpg/abc/0"),
    ("https://x.invalid/a?b=1&c=2#d", "https://x.invalid/a?b=1&c=2#d"),
    ("http://x.invalid/a)[点我](http://evil.invalid", "http://x.invalid/a%29%5B%E7%82%B9%E6%88%91%5D%28http://evil.invalid"),
    ("http://x.invalid/<font>\n### 伪造", "http://x.invalid/%3Cfont%3E###%E4%BC%AA%E9%80%A0"),
    ("javascript:alert(1)", "#"),
    ("image_media_0001", "#"),
    ("", "#"),
], ids=["wechat-picurl", "query", "link-breakout", "markup", "javascript", "media-id", "empty"])
def test_markdown_url_cannot_end_the_link_or_carry_markup(url, expected):
    """Only http(s) URLs survive, with ( ) [ ] < > percent-encoded and spaces/newlines dropped."""
    assert markdown_url(url) == expected


def test_markdown_url_keeps_the_fragment_marker_once():
    """A '#' starting a fragment stays usable; markup after it is still encoded."""
    assert markdown_url("https://x.invalid/p#<b>") == "https://x.invalid/p#%3Cb%3E"


@pytest.mark.parametrize("words", ["[点我](http://evil.invalid)", "<font color=\"warning\">紧急</font>",
                                   "第一行\n### 伪造标题", "**加粗** `代码` _斜体_"])
def test_customer_words_in_the_ops_notification_are_inert(kb, words):
    """No link, tag, heading or emphasis from the customer's words survives in the robot markdown."""
    ticket = Ticket(id=7, user="oUser1", kind="human", intent="human-agent", status="open", words=words)
    markdown = ops_notification(kb, ticket, "http://127.0.0.1:8080")["payload"]["markdown"]
    assert markdown_safe(words) in markdown
    for token in ("](http://evil", "<font color=\"warning\">紧急", "\n### 伪造", "**加粗**"):
        assert token not in markdown
