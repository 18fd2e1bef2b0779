"""Command-line interface: serve, chat, match, check, eval, report, tickets, worker, init-db, ops-user."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from dataclasses import replace
from typing import Callable

from bot.config import Config, ConfigError, StorageConfig, load_config
from bot.kb import KBError
from bot.tools.ops_user import add_parser as add_ops_user_parser

log = logging.getLogger("bot")
MEMORY_URL = "sqlite://"
# Subcommands that run without any config (shipped answers/, in-memory state).
CONFIG_OPTIONAL = {"chat", "match", "check", "eval", "explain"}


PRIVATE_UMASK = 0o077  # every file the bot creates (SQLite db, WAL, spool, lock) is 0600: tax IDs inside
LOCAL_CONFIG = "config.toml"  # looked for in the current directory when --config is not given


def config_path(args: argparse.Namespace) -> str | None:
    """--config, else ./config.toml when it exists, else BOT_CONFIG (None when none is given)."""
    given = getattr(args, "config", None)
    if given:
        return given
    if os.path.isfile(LOCAL_CONFIG):
        return LOCAL_CONFIG
    return os.environ.get("BOT_CONFIG") or None


def _config(args: argparse.Namespace) -> Config:
    """Load the config file (config_path); defaults (memory store) where the command allows none."""
    path = config_path(args)
    if path:
        return load_config(path)
    if args.command in CONFIG_OPTIONAL:
        return replace(load_config(None), storage=StorageConfig(url=MEMORY_URL))
    raise ConfigError(f"'{args.command}' needs a config: pass --config FILE, put a config.toml in "
                      "this directory or set BOT_CONFIG (start from config.example.toml)")


def _parts(args: argparse.Namespace):
    """The bot's parts (KB, store, service) for this command."""
    from bot.app import build_parts

    return build_parts(_config(args))


def cmd_serve(args) -> int:
    """Run the production server."""
    from bot.serve import serve

    return serve(_config(args), args.host, args.port, args.workers, dev=args.dev)


def cmd_chat(args) -> int:
    """Talk to the bot in the terminal."""
    from bot.chat import run_chat

    return run_chat(_parts(args), sys.stdin, sys.stdout)


def cmd_match(args) -> int:
    """One question per stdin line → one JSON object per line."""
    parts = _parts(args)
    for line in sys.stdin:
        text = line.rstrip("\n")
        if not text.strip():
            continue
        match = parts.kb.matcher.match(text)
        row = {"text": text, "intent": match.intent, "decision": match.decision,
               "score": round(match.score, 2),
               "candidates": [{"intent": i, "score": round(s, 2)} for i, s in match.candidates]}
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return 0


def cmd_check(args) -> int:
    """Validate answers/: print file:line problems; exit 1 if any."""
    from bot.check import check_answers

    folder = args.answers or _config(args).answers_dir
    problems = check_answers(folder)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s) in {folder}" if problems else f"OK: {folder}")
    return 1 if problems else 0


def cmd_eval(args) -> int:
    """Per-intent precision/recall, confusions and out-of-scope rejection on a JSONL file."""
    from bot.evaluate import evaluate, format_report, read_eval_rows

    parts = _parts(args)
    result = evaluate(parts.kb, read_eval_rows(args.file))
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else format_report(result))
    return 0


def cmd_explain(args) -> int:
    """Why the matcher decided what it did about one question."""
    from bot.tools.explain import explanation, format_explanation

    data = explanation(_parts(args).kb.matcher, args.question)
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else format_explanation(data))
    return 0


def cmd_report(args) -> int:
    """Unanswered questions, hits per intent, tickets by status, and the insight figures of a range."""
    import time

    from bot.localtime import local_day, zone
    from bot.report import format_store_report
    from bot.tools.insight import collect, format_insight, insight_json, parse_range

    parts = _parts(args)
    tz = zone(parts.config.server.timezone)
    first, last = parse_range(args.since, args.until, local_day(time.time(), tz), args.days)
    smalltalk = frozenset(i.id for i in parts.kb.intents.values() if i.kind == "smalltalk")
    insight = collect(parts.store.console.insight.rows, first, last, tz, smalltalk)
    report = parts.store.reports.report()
    if args.json:
        print(json.dumps(report | {"insight": insight_json(insight)}, ensure_ascii=False, indent=2))
    else:
        print(format_store_report(report) + "\n\n" + format_insight(insight))
    return 0


def cmd_ops_user(args) -> int:
    """Console accounts: add (prints config lines or --store), list, remove, logout."""
    from bot.tools.ops_user import run_ops_user

    return run_ops_user(args, lambda: _parts(args))


def cmd_tickets(args) -> int:
    """tickets list | show ID | resolve ID | reply ID TEXT."""
    from bot.report import format_ticket, format_ticket_list
    from bot.tickets import ticket_row

    parts = _parts(args)
    if args.action == "list":
        tickets = parts.store.tickets.list(status=args.status)
        if args.json:
            for t in tickets:
                print(json.dumps(ticket_row(t), ensure_ascii=False))
        else:
            print(format_ticket_list(tickets))
        return 0
    if args.action in ("resolve", "reply"):
        outcome = (parts.desk.resolve(args.id, actor=cli_actor()) if args.action == "resolve"
                   else parts.desk.reply(args.id, " ".join(args.text), actor=cli_actor()))
        print(outcome.line, file=sys.stdout if outcome.ticket else sys.stderr)
        return 0 if outcome.outcome not in ("unknown", "empty") else 1
    ticket = parts.store.tickets.get(args.id)
    if ticket is None:
        print(f"no ticket {args.id}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(ticket_row(ticket), ensure_ascii=False, indent=2))
    else:
        messages = [(m, parts.desk.delivery_label(m.delivery) if m.delivery else "")
                    for m in parts.store.conversations.ticket_messages(args.id)]
        print(format_ticket(ticket, parts.store.tickets.events(args.id), messages))
    return 0


def cli_actor() -> str:
    """Who acts from the terminal, for ticket history: "cli:<login name>"."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in a bare container
        return "cli"


def cmd_worker(args) -> int:
    """Deliver the outbox until interrupted (alternative to the in-server thread)."""
    from bot.app import outbox_worker

    worker = outbox_worker(_parts(args))
    log.info("outbox worker running; Ctrl-C to stop")
    try:
        worker.run_forever(threading.Event())
    except KeyboardInterrupt:
        pass
    return 0


def cmd_init_db(args) -> int:
    """Create the schema (also done on start)."""
    parts = _parts(args)
    print(f"schema ready: {parts.config.storage.url.split('@')[-1]}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve, "chat": cmd_chat, "match": cmd_match, "check": cmd_check, "eval": cmd_eval,
    "explain": cmd_explain, "report": cmd_report, "tickets": cmd_tickets, "worker": cmd_worker,
    "init-db": cmd_init_db, "ops-user": cmd_ops_user,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog="python -m bot", description="乐企联用 support bot")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config file (or env BOT_CONFIG)")
    serve = sub.add_parser("serve", parents=[common], help="run the server (gunicorn)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--dev", action="store_true",
                       help="trial run: allow the example token, loopback only")
    sub.add_parser("chat", parents=[common], help="talk to the bot in the terminal")
    match = sub.add_parser("match", parents=[common], help="stdin questions → JSON lines")
    match.add_argument("--json", action="store_true", help="JSON lines (the default output)")
    check = sub.add_parser("check", parents=[common], help="validate answers/")
    check.add_argument("--answers", help="answers folder (default: from config, else shipped)")
    evaluate = sub.add_parser("eval", parents=[common], help="evaluate matching on a JSONL file")
    evaluate.add_argument("file")
    evaluate.add_argument("--json", action="store_true")
    explain = sub.add_parser("explain", parents=[common], help="why a question matched what it did")
    explain.add_argument("question")
    explain.add_argument("--json", action="store_true")
    report = sub.add_parser("report", parents=[common], help="unanswered questions, hits, the week's figures")
    report.add_argument("--json", action="store_true")
    report.add_argument("--from", dest="since", metavar="YYYY-MM-DD", help="first day (default: --days ago)")
    report.add_argument("--to", dest="until", metavar="YYYY-MM-DD", help="last day (default: today)")
    report.add_argument("--days", type=int, default=7, help="range length without --from (default 7)")
    tickets = sub.add_parser("tickets", parents=[common], help="list / show / resolve / reply to tickets")
    actions = tickets.add_subparsers(dest="action", required=True)
    inner = argparse.ArgumentParser(add_help=False)  # SUPPRESS: don't clobber an outer --config
    inner.add_argument("--config", default=argparse.SUPPRESS, help="TOML config file")
    listing = actions.add_parser("list", parents=[inner])
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--status", choices=["open", "resolved"])
    for name in ("show", "resolve", "reply"):
        one = actions.add_parser(name, parents=[inner])
        one.add_argument("id", type=int)
        one.add_argument("--json", action="store_true")
        if name == "reply":
            one.add_argument("text", nargs="+", help="what the customer receives")
    sub.add_parser("worker", parents=[common], help="deliver queued messages")
    sub.add_parser("init-db", parents=[common], help="create the database schema")
    add_ops_user_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, turn known errors into clear messages."""
    args = build_parser().parse_args(argv)
    os.umask(PRIVATE_UMASK)
    default_level = "INFO" if args.command in ("serve", "worker") else "WARNING"
    logging.basicConfig(level=os.environ.get("BOT_LOG_LEVEL", default_level),
                        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, KBError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
