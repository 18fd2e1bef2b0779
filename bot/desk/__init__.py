"""The ops desk: tickets, their conversations, images and what ops do to them."""
from bot.desk.desk import Outcome, TicketDesk

__all__ = ["Outcome", "TicketDesk"]
