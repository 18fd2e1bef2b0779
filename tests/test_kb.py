"""Knowledge base: answer files load, render faithfully, and long replies fall back to steps + link."""
from __future__ import annotations

import pytest

from bot.kb import REPLY_LIMIT_BYTES, KBError, load_kb

from .conftest import ROOT

INTENT = """---
id: {id}
title: {title}
question: {question}
kind: faq
keywords: [发票]
{extra}
---
{body}
"""


def make_answers(tmp_path, files: dict[str, str]):
    """An answers folder with the given files (texts copied from the shipped folder)."""
    folder = tmp_path / "answers"
    (folder / "texts").mkdir(parents=True)
    for src in (ROOT / "answers" / "texts").glob("*.md"):
        (folder / "texts" / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_shipped_intents_are_all_there(kb):
    assert {"leqi-channel-missing", "leqi-ids-swapped", "greeting", "thanks", "help", "human-agent"} <= set(kb.intents)


@pytest.mark.parametrize("tax_id, expected, absent", [
    ("91110108551385082Q", "91110108551385082QfillCombineLeqiInfo", "替换成您企业的实际税号"),
    ("", "911101085513123456fillCombineLeqiInfo", "91110108551385082Q"),
])
def test_cache_key_is_exact_when_the_tax_id_is_known(kb, tax_id, expected, absent):
    text = kb.render_answer("leqi-ids-swapped", tax_id=tax_id)
    assert expected in text and absent not in text
    assert "bdm_cache_clear" in text and "清理" in text


def test_channel_missing_gives_cause_then_numbered_steps(kb):
    text = kb.render_answer("leqi-channel-missing")
    assert text.startswith("原因") and "通道类型" in text
    assert text.index("1.") < text.index("2.") < text.index("3.")
    assert "更新配置" in text and "同步" in text and "重新登录" in text


def test_long_reply_falls_back_to_short_steps_with_a_link(tmp_path):
    body = "\n".join(f"{i}. 很长的步骤说明" * 20 for i in range(1, 20))
    folder = make_answers(tmp_path, {"long-one.md": INTENT.format(
        id="long-one", title="很长", question="很长的问题", body=body,
        extra='short: "1. 简要步骤\\n详情：{{ answer_url }}"')})
    kb = load_kb(folder)
    full = kb.render("long-one")
    assert len(full.encode()) > REPLY_LIMIT_BYTES
    short = kb.render_answer("long-one", public_url="https://bot.example.com")
    assert short == "1. 简要步骤\n详情：https://bot.example.com/answers/long-one"


def test_a_third_faq_is_loaded_like_the_others(tmp_path):
    folder = make_answers(tmp_path, {"invoice-reprint.md": INTENT.format(
        id="invoice-reprint", title="重打发票", question="发票怎么重新打印", body="1. 打开发票列表", extra="")})
    kb = load_kb(folder)
    assert kb.render_answer("invoice-reprint") == "1. 打开发票列表"


@pytest.mark.parametrize("files, message", [
    ({"a.md": "---\nid: a\ntitle: [unclosed\n---\nbody"}, "a.md:3: bad front matter"),
    ({"b.md": "---\nid: b\ntitle: t\n---\nbody"}, "b.md:1: front matter lacks question"),
    ({"c.md": INTENT.format(id="x", title="t", question="q", body="b", extra="")}, "differs from the file name"),
    ({"d.md": INTENT.format(id="d", title="t", question="q", body="{% if %}", extra="")}, "d.md:9: template error"),
])
def test_broken_files_are_reported_with_file_and_line(tmp_path, files, message):
    with pytest.raises(KBError) as err:
        load_kb(make_answers(tmp_path, files))
    assert any(message in problem for problem in err.value.problems), err.value.problems


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(KBError, match="answers folder not found"):
        load_kb(tmp_path / "missing")


def test_the_tax_id_example_is_not_a_valid_code(kb):
    """A customer who copies the ask's example does not open a ticket for another company."""
    from bot.taxid import VALID, find_tax_id

    asked = kb.render("ask-tax-id", purpose="leqi-channel-missing", known_tax_id="")
    assert find_tax_id(asked).status != VALID


@pytest.mark.parametrize("intent, part", [("leqi-channel-missing", "handoff.done"), ("leqi-ids-swapped", "with_tax_id"),
                                          ("greeting", "handoff.done")])
def test_front_matter_parts_render_or_are_empty(kb, intent, part):
    """A flow text comes from the FAQ's own front matter; an FAQ without it has none."""
    text = kb.part(intent, part, ticket="T000001", tax_id="91110108551385082Q")
    assert bool(text) == (intent != "greeting")


def test_the_chat_reply_is_the_reply_key_else_the_body(kb):
    """`reply` is what the chat sends; the body stays the whole answer (the web page)."""
    assert kb.chat_reply("leqi-channel-missing") != kb.render("leqi-channel-missing")
    assert kb.chat_reply("greeting") == kb.render("greeting")
