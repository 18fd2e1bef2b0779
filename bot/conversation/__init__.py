"""The conversation: a pure dialogue step over explicit stages (step.py), the command seam
(recognise.py), and the flows an FAQ's front matter describes (flows.py, human.py)."""
from bot.conversation.step import Conversation, step
from bot.conversation.turn import Limits

__all__ = ["Conversation", "Limits", "step"]
