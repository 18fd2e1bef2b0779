"""Prometheus metrics from the shared store's cheap counts (bot.store.gauges), so every worker
reports the same figures and a scrape costs the same at a million rows as at ten."""
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
        counts = self.store.reports.metric_counts()
        tickets = GaugeMetricFamily("bot_tickets", "Tickets by status", labels=["status"])
        for status, count in sorted(counts["tickets"].items()):
            tickets.add_metric([status], count)
        yield tickets
        outbox = GaugeMetricFamily("bot_outbox", "Outbox rows by target and status (sent: all targets)",
                                   labels=["target", "status"])
        for key, count in sorted(counts["outbox"].items()):
            outbox.add_metric(key.split(":", 1), count)
        yield outbox
        hits = GaugeMetricFamily("bot_intent_hits", "Answered questions per intent", labels=["intent"])
        for intent, count in sorted(counts["hits"].items()):
            hits.add_metric([intent], count)
        yield hits
        yield GaugeMetricFamily("bot_unanswered", "Questions nothing answered", value=counts["unanswered"])


def render_metrics(store) -> tuple[bytes, str]:
    """The exposition body and its content type."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    return generate_latest(registry), CONTENT_TYPE_LATEST
