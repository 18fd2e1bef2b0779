"""The CLI's text views: authors see frequent and newest unanswered questions; ops see tickets."""
from __future__ import annotations

from bot.model import Ticket
from bot.report import format_store_report, format_ticket, format_ticket_list

REPORT = {"unanswered": [{"text": "红字发票怎么开", "count": 1, "last_at": 500.0},
                         {"text": "收费吗", "count": 3, "last_at": 100.0}],
          "hits": {"greeting": 2, "leqi-ids-swapped": 5}, "tickets": {"open": 1, "resolved": 2}}


def section(text: str, title: str) -> list[str]:
    """The indented lines under a section title."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        body.append(line)
    return body


def test_most_frequent_and_newest_unanswered_are_both_listed():
    text = format_store_report(REPORT)
    assert [line.endswith("收费吗") for line in section(text, "未答问题，最常见")] == [True, False]
    assert [line.endswith("红字发票怎么开") for line in section(text, "未答问题，最新")] == [True, False]
    assert section(text, "各问题命中次数")[0].split() == ["5", "leqi-ids-swapped"]
    assert "open 1" in text and "resolved 2" in text


def test_an_empty_store_says_so():
    text = format_store_report({"unanswered": [], "hits": {}, "tickets": {}})
    assert section(text, "未答问题，最常见") == ["  （无）"]


def test_ticket_views_show_what_ops_act_on():
    ticket = Ticket(id=7, user="o-1", kind="channel", intent="leqi-channel-missing", status="open",
                    tax_id="91110108551385082Q", flags=("校验位未通过",), words="没有乐企通道", created_at=0.0)
    listing = format_ticket_list([ticket])
    assert "T000007" in listing and "91110108551385082Q" in listing and "校验位未通过" in listing
    shown = format_ticket(ticket, [{"at": 0.0, "kind": "created", "detail": ""}])
    assert "校验位未通过" in shown and "没有乐企通道" in shown and "created" in shown
    assert format_ticket_list([]) == "no tickets"
