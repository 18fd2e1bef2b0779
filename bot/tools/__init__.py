"""Author and ops tools: check, eval, explain, report, chat."""
