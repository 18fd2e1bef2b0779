"""`python -m bot ops-user add|list|remove|logout`: console accounts.

`add NAME` asks for the password twice and prints the `[[ops.accounts]]` lines to paste into the
config; with `--store` it writes the account into the store instead (no restart needed).
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
import unicodedata

from bot.desk.console_auth import MAX_NAME_CHARS, hash_password

MIN_PASSWORD_CHARS = 10


class OpsUserError(ValueError):
    """A bad name or password, said plainly."""


def check_name(name: str) -> str:
    """The account name, trimmed; OpsUserError when empty, too long or with control characters."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or any(unicodedata.category(c)[0] == "C" for c in name):
        raise OpsUserError(f"account name must be 1–{MAX_NAME_CHARS} printable characters")
    return name


def read_password(from_stdin: bool) -> str:
    """The new password: one stdin line with --password-stdin, else typed twice (not echoed)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise OpsUserError("the two passwords differ")
    if len(password) < MIN_PASSWORD_CHARS:
        raise OpsUserError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
    return password


def account_lines(name: str, password_hash: str) -> str:
    """The TOML to paste into the config."""
    return (f"[[ops.accounts]]\nname = {json.dumps(name, ensure_ascii=False)}\n"
            f"password_hash = {json.dumps(password_hash)}")


def run_ops_user(args, parts_of) -> int:
    """Run one ops-user action; `parts_of()` opens the configured store when one is needed."""
    if args.action == "add":
        name = check_name(args.name)
        hashed = hash_password(read_password(args.password_stdin))
        if not args.store:
            print(account_lines(name, hashed))
            return 0
        parts_of().store.console.operators.put(name, hashed, time.time())
        print(f"account {name} saved in the store")
        return 0
    parts = parts_of()
    if args.action == "list":
        ops = parts.config.ops
        names = [(a.name, "config") for a in (ops.accounts if ops else ())]
        if ops and ops.console_password:
            names.append((ops.console_user, "config console_user"))
        names += [(o.name, "store") for o in parts.store.console.operators.list()]
        print("\n".join(f"{name}\t{where}" for name, where in names) or "no accounts")
        return 0
    if args.action == "remove":
        removed = parts.store.console.operators.remove(args.name)
        print(f"account {args.name} removed" if removed else f"no stored account {args.name}")
        return 0 if removed else 1
    ended = parts.store.console.sessions.close_all(args.name)
    print(f"{ended} session(s) of {args.name} ended")
    return 0


def add_parser(sub, common) -> None:
    """The `ops-user` subcommand and its actions."""
    parser = sub.add_parser("ops-user", parents=[common], help="console accounts: add / list / remove / logout")
    actions = parser.add_subparsers(dest="action", required=True)
    inner = argparse.ArgumentParser(add_help=False)  # SUPPRESS: don't clobber an outer --config
    inner.add_argument("--config", default=argparse.SUPPRESS, help="TOML config file")
    add = actions.add_parser("add", parents=[inner], help="create an account (prints the config lines, or --store)")
    add.add_argument("name")
    add.add_argument("--store", action="store_true", help="save in the store instead of printing TOML")
    add.add_argument("--password-stdin", action="store_true", help="read the password from one stdin line")
    actions.add_parser("list", parents=[inner], help="accounts from the config and the store")
    for name, text in (("remove", "delete a stored account (and its sessions)"),
                       ("logout", "end every console session of an account")):
        actions.add_parser(name, parents=[inner], help=text).add_argument("name")
