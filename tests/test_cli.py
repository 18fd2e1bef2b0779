"""The CLI as a user runs it: `python -m bot …` in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT

TAX_ID = "91110108551385082Q"


def run(*args: str, stdin: str = "", env: dict | None = None, cwd=ROOT) -> subprocess.CompletedProcess:
    """Run `python -m bot ARGS` and capture its output."""
    full_env = {k: v for k, v in os.environ.items() if k != "BOT_CONFIG"} | (env or {})
    full_env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=120)


@pytest.fixture
def config_file(tmp_path):
    """A minimal config with a SQLite store in tmp_path."""
    path = tmp_path / "bot.toml"
    path.write_text(f'[wechat]\ntoken = "t"\n[storage]\nurl = "sqlite:///{tmp_path}/bot.db"\n', encoding="utf-8")
    return path


def test_match_prints_one_json_object_per_line():
    result = run("match", "--json", stdin="数电配置看不到乐企联用通道\n今天天气怎么样\n")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and len(rows) == 2
    assert rows[0]["intent"] == "leqi-channel-missing" and rows[0]["candidates"]
    assert rows[1]["intent"] is None and "score" in rows[1]


def test_check_passes_on_the_shipped_answers():
    result = run("check")
    assert result.returncode == 0 and "OK" in result.stdout


def test_check_fails_with_file_and_line(tmp_path):
    folder = tmp_path / "answers"
    folder.mkdir()
    (folder / "x.md").write_text("---\nid: x\n---\nbody\n", encoding="utf-8")
    result = run("check", "--answers", str(folder))
    assert result.returncode == 1 and "x.md:1:" in result.stdout


def test_eval_reports_figures(tmp_path):
    data = tmp_path / "e.jsonl"
    data.write_text('{"text": "乐企通道不显示", "intent": "leqi-channel-missing"}\n'
                    '{"text": "红字发票怎么开", "intent": null}\n', encoding="utf-8")
    result = run("eval", str(data), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)


def test_eval_names_a_bad_line(tmp_path):
    data = tmp_path / "e.jsonl"
    data.write_text('{"text": "乐企", "intent": null}\nnot json\n', encoding="utf-8")
    result = run("eval", str(data))
    assert result.returncode == 2 and "e.jsonl:2" in result.stderr


def test_commands_that_need_a_store_ask_for_a_config():
    result = run("tickets", "list")
    assert result.returncode == 2 and "--config" in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path):
    result = run("tickets", "list", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "config file not found" in result.stderr


def test_chat_walks_through_the_tax_id_exchange_and_ops_done():
    script = f"数电配置里没有乐企联用通道\n我们税号是 {TAX_ID}，麻烦了\n/done\n/quit\n"
    result = run("chat", stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "税号" in out and "T000001" in out and "更新配置" in out.split("/done")[-1]


def test_tickets_list_show_resolve_and_report(config_file, kb):
    chat = run("chat", "--config", str(config_file), stdin=f"数电配置里没有乐企通道\n{TAX_ID}\n开票软件闪退\n")
    assert "T000001" in chat.stdout, chat.stdout + chat.stderr
    listed = run("tickets", "list", "--json", "--config", str(config_file))
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["status"], r["tax_id"], r["intent"]) for r in rows] == [
        (1, "open", TAX_ID, "leqi-channel-missing")]
    assert rows[0]["user"]
    assert TAX_ID in run("tickets", "list", "--config", str(config_file)).stdout  # ops act on it
    held = kb.render("desk-status", action="resolve", outcome="held", ticket="T000001")
    assert run("tickets", "resolve", "1", "--config", str(config_file)).stdout.strip() == held  # cli: no push
    again = kb.render("desk-status", action="resolve", outcome="already-resolved", ticket="T000001")
    assert run("tickets", "resolve", "1", "--config", str(config_file)).stdout.strip() == again
    shown = json.loads(run("tickets", "show", "1", "--json", "--config", str(config_file)).stdout)
    assert shown["status"] == "resolved"
    assert run("tickets", "show", "99", "--config", str(config_file)).returncode == 1
    report = json.loads(run("report", "--json", "--config", str(config_file)).stdout)
    assert any(row["text"] == "开票软件闪退" for row in report["unanswered"])


def test_an_unreadable_answers_folder_is_a_clear_error(tmp_path):
    config = tmp_path / "bot.toml"
    config.write_text('[wechat]\ntoken = "t"\n[answers]\ndir = "missing"\n', encoding="utf-8")
    result = run("match", "--config", str(config), stdin="乐企\n")
    assert result.returncode == 2 and "answers folder not found" in result.stderr


def test_tickets_reply_records_who_sent_it_and_says_where_it_stands(config_file, kb):
    """`tickets reply ID TEXT`: the reply is on the ticket with its author; unknown ids fail."""
    run("chat", "--config", str(config_file), stdin="转人工\n就是开票的时候提示异常\n")
    replied = run("tickets", "reply", "1", "您好，", "已经处理了", "--config", str(config_file))
    held = kb.render("desk-status", action="reply", outcome="held", ticket="T000001")  # cli: no push
    assert replied.returncode == 0 and replied.stdout.strip() == held
    shown = run("tickets", "show", "1", "--config", str(config_file)).stdout
    assert "您好， 已经处理了" in shown and "cli:" in shown and kb.render(
        "desk-status", action="delivery", outcome="held", ticket="") in shown
    missing = run("tickets", "reply", "99", "在吗", "--config", str(config_file))
    assert missing.returncode == 1 and "T" not in missing.stdout


@pytest.mark.parametrize("local, env, expected", [
    (True, False, "local"), (False, True, "env"), (True, True, "local"), (False, False, None),
], ids=["local-file", "bot-config", "local-first", "none"])
def test_without_config_the_cli_finds_config_toml_then_bot_config(tmp_path, local, env, expected):
    """`tickets list` with no --config reads ./config.toml, else BOT_CONFIG, else asks for one."""
    folders = {name: tmp_path / name for name in ("local", "env")}
    for name, folder in folders.items():
        folder.mkdir()
        db = folder / "bot.db"
        (folder / "config.toml").write_text(f'[wechat]\ntoken = "t"\n[storage]\nurl = "sqlite:///{db}"\n')
    if not local:
        (folders["local"] / "config.toml").unlink()
    result = run("init-db", cwd=folders["local"],
                 env={"BOT_CONFIG": str(folders["env"] / "config.toml")} if env else None)
    if expected is None:
        assert result.returncode == 2 and "config.toml" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert {name for name, folder in folders.items() if (folder / "bot.db").exists()} == {expected}


def test_files_the_bot_creates_are_private(tmp_path):
    """The SQLite database, its WAL and lock file are 0600 (tax IDs and transcripts inside)."""
    path = tmp_path / "bot.toml"
    path.write_text(f'[wechat]\ntoken = "t"\n[storage]\nurl = "sqlite:///{tmp_path}/data/bot.db"\n')
    assert run("init-db", "--config", str(path)).returncode == 0
    created = [p for p in (tmp_path / "data").iterdir()]
    assert created and {p.name: oct(p.stat().st_mode & 0o777) for p in created} == {
        p.name: "0o600" for p in created}


def test_an_existing_world_readable_database_is_tightened(tmp_path):
    """A database file left 0644 by an older version becomes 0600 when the store opens it."""
    from bot.store.sql import Db

    db = tmp_path / "bot.db"
    db.touch(mode=0o644)
    db.chmod(0o644)
    Db(f"sqlite:///{db}").close()
    assert db.stat().st_mode & 0o777 == 0o600
