"""Prometheus metrics computed from the shared store, so every worker reports the same figures."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class StoreCollector:
    """Reads tickets, outbox, hits and unanswered counts from the store at scrape time."""

    def __init__(self, store):
        """Read from this store at each scrape."""
        self.store = store

    def collect(self):
        """Yield the metric families."""
        report = self.store.reports.report()
        tickets = GaugeMetricFamily("bot_tickets", "Tickets by status", labels=["status"])
        for status, count in sorted(report.get("tickets", {}).items()):
            tickets.add_metric([status], count)
        yield tickets
        outbox = GaugeMetricFamily("bot_outbox", "Outbox rows by target and status", labels=["target", "status"])
        for key, count in sorted(report.get("outbox", {}).items()):
            outbox.add_metric(key.split(":", 1), count)
        yield outbox
        hits = GaugeMetricFamily("bot_intent_hits", "Answered questions per intent", labels=["intent"])
        for intent, count in sorted(report.get("hits", {}).items()):
            hits.add_metric([intent], count)
        yield hits
        unanswered = sum(row["count"] for row in report.get("unanswered", []))
        yield GaugeMetricFamily("bot_unanswered", "Questions nothing answered", value=unanswered)


def render_metrics(store) -> tuple[bytes, str]:
    """The exposition body and its content type."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    return generate_latest(registry), CONTENT_TYPE_LATEST
