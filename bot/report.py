"""Plain-text views for the CLI: store report, ticket list and one ticket."""
from __future__ import annotations

from bot.model import Ticket
from bot.tickets import format_time


def _unanswered_line(row: dict) -> str:
    """One unanswered question with its count and last time."""
    return f"  {row['count']:>4} · {format_time(row['last_at'])} · {row['text']}"


def format_store_report(report: dict, limit: int = 20) -> str:
    """Unanswered questions (most frequent first), hits per intent, tickets by status."""
    unanswered = report.get("unanswered", [])
    lines = ["未答问题，最常见（次数 · 最近时间 · 问题）:"]
    frequent = sorted(unanswered, key=lambda r: (-r["count"], -r["last_at"]))[:limit]
    lines += [_unanswered_line(r) for r in frequent] or ["  （无）"]
    lines.append("未答问题，最新:")
    lines += [_unanswered_line(r) for r in sorted(unanswered, key=lambda r: -r["last_at"])[:limit]] or ["  （无）"]
    lines.append("各问题命中次数:")
    hits = sorted(report.get("hits", {}).items(), key=lambda kv: -kv[1])
    lines += [f"  {count:>4}  {intent}" for intent, count in hits] or ["  （无）"]
    tickets = report.get("tickets", {})
    lines.append("工单: " + (", ".join(f"{k} {v}" for k, v in sorted(tickets.items())) or "（无）"))
    return "\n".join(lines)


def format_ticket_list(tickets: list[Ticket]) -> str:
    """One line per ticket (ops need the whole tax ID to act on it, and its check-digit flag)."""
    if not tickets:
        return "no tickets"
    return "\n".join(
        f"{t.id:>6}  {t.number}  {t.status:<8}  {t.intent[:20]:<20}  {t.tax_id or '-':<20}  "
        f"{' '.join(t.flags) or '-':<6}  {format_time(t.created_at)}  {t.words[:40]}"
        for t in tickets)


WHO = {"customer": "客户", "ops": "运营", "bot": "机器人", "note": "备注"}


def format_ticket(ticket: Ticket, events: list[dict], messages: list = ()) -> str:
    """A ticket with its conversation (who wrote what, and whether it reached the customer) and history."""
    lines = [f"{ticket.number} ({ticket.status})", f"kind:    {ticket.kind} / {ticket.intent}",
             f"tax id:  {ticket.tax_id or '-'} {' '.join(ticket.flags)}", f"user:    {ticket.user}",
             f"words:   {ticket.words}", f"created: {format_time(ticket.created_at)}"]
    lines += [f"attach:  {a}" for a in ticket.attachments]
    for message, delivery in messages:
        status = f"  [{delivery}]" if delivery else ""
        author = f" {message.author}" if message.author and message.who != "customer" else ""
        lines.append(f"  {format_time(message.at)}  {WHO.get(message.who, message.who)}{author}: "
                     f"{message.text}{status}")
    lines += [f"  {format_time(e['at'])}  {e['kind']}  {e.get('detail', '')}" for e in events]
    return "\n".join(lines)
