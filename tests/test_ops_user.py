"""`python -m bot ops-user`: an operator creates console accounts without editing code."""
from __future__ import annotations

import io

import pytest

from bot.cli import main
from bot.config import load_config
from bot.store.sql import Db, sql_store

PASSWORD = "a long enough password"


@pytest.fixture
def config_file(tmp_path):
    """A config with the console on and a SQLite store."""
    path = tmp_path / "bot.toml"
    path.write_text(f'[wechat]\ntoken = "t"\n[ops]\n[storage]\nurl = "sqlite:///{tmp_path}/bot.db"\n',
                    encoding="utf-8")
    return path


def ops_user(monkeypatch, capsys, *args: str, stdin: str = PASSWORD + "\n") -> tuple[int, str, str]:
    """`python -m bot ops-user ARGS` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["ops-user", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_add_prints_lines_that_the_config_accepts(monkeypatch, capsys, config_file):
    code, out, _ = ops_user(monkeypatch, capsys, "add", "王 小明", "--password-stdin")
    assert code == 0 and out.startswith("[[ops.accounts]]") and PASSWORD not in out
    config_file.write_text(config_file.read_text(encoding="utf-8") + out, encoding="utf-8")
    (account,) = load_config(config_file, env={}).ops.accounts
    assert account.name == "王 小明" and account.password_hash.startswith("scrypt:")


def test_add_store_list_logout_remove(monkeypatch, capsys, config_file, tmp_path):
    config = ("--config", str(config_file))
    assert ops_user(monkeypatch, capsys, "add", "li", "--store", "--password-stdin", *config)[0] == 0
    store = sql_store(Db(f"sqlite:///{tmp_path}/bot.db"))
    store.console.sessions.open("h", "li", "c", 1.0)
    assert "li\tstore" in ops_user(monkeypatch, capsys, "list", *config)[1]
    assert "1 session(s)" in ops_user(monkeypatch, capsys, "logout", "li", *config)[1]
    assert ops_user(monkeypatch, capsys, "remove", "li", *config)[0] == 0 and store.console.operators.get("li") is None
    assert ops_user(monkeypatch, capsys, "remove", "li", *config)[0] == 1
    store.close()


@pytest.mark.parametrize("name, password, message", [
    ("li", "short", "at least 10"),
    ("", PASSWORD, "1–64 printable"),
    ("a\x07b", PASSWORD, "1–64 printable"),
])
def test_bad_names_and_passwords_are_refused(monkeypatch, capsys, name, password, message):
    code, _, err = ops_user(monkeypatch, capsys, "add", name, "--password-stdin", stdin=password + "\n")
    assert code == 2 and message in err
