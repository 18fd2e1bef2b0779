"""`python -m bot explain`: an author sees why a question got what it got."""
from __future__ import annotations

import json

import pytest

from bot.cli import main
from bot.tools.explain import explanation, format_explanation


@pytest.fixture(scope="module")
def matcher(kb):
    """The shipped knowledge base's matcher."""
    return kb.matcher


@pytest.mark.parametrize("text, intent, verdict, words", [
    ("乐企到底藏哪了", "leqi-channel-missing", "verified", ["leqi(乐企)", "absent(藏哪)"]),
    ("乐企是什么意思", "leqi-channel-missing", "excluded", ["definition"]),
    ("乐企联用的通道", "leqi-channel-missing", "missing", ["lacks absent"]),
    ("没有收到乐企联用邀请怎么办", "leqi-channel-missing", "excluded", ["not_invited"]),
    ("乐企通道里没有证书下载", "leqi-channel-missing", "verified", ["does not know: 证书, 下载"]),  # not its words
])
def test_explanation_names_concepts_and_verdict(matcher, text, intent, verdict, words):
    """Concepts found, the verdict per intent and what was missing or excluding are shown."""
    data = explanation(matcher, text)
    row = next(c for c in data["candidates"] if c["intent"] == intent)
    assert row["verdict"] == verdict
    shown = format_explanation(data)
    assert all(w in shown for w in words), shown
    assert shown.splitlines()[-1].startswith(f"decision: {data['decision']}")


def test_cli_explain_text_and_json(capsys):
    """The CLI prints the explanation, or JSON with --json, without any config."""
    assert main(["explain", "leqi通道在数电配置里没出来"]) == 0
    out = capsys.readouterr().out
    assert "decision: answer leqi-channel-missing" in out and "leqi(leqi)" in out
    assert main(["explain", "--json", "在马"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["decision"], data["intent"]) == ("answer", "greeting")


def test_eval_explains_each_miss(tmp_path, capsys):
    """`eval` lists each miss with the same explanation line."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "乐企是什么意思", "intent": "leqi-ids-swapped"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    assert main(["eval", str(rows)]) == 0
    out = capsys.readouterr().out
    assert "leqi-ids-swapped: need not found: closest" in out
