"""Public HTTP endpoints: health, Prometheus metrics and the FAQ web pages."""
from __future__ import annotations

import hmac
import ipaddress
import logging
import time

from flask import Blueprint, Response, abort, render_template, request

from bot.metrics import render_metrics

log = logging.getLogger(__name__)


def web_blueprint(parts) -> Blueprint:
    """Blueprint with /healthz, /metrics and /answers/<id>."""
    bp = Blueprint("web", __name__, template_folder="templates")

    @bp.get("/healthz")
    def healthz():
        """200 when the store answers, 503 otherwise."""
        try:
            parts.store.tokens.get("healthz", time.time())
        except Exception:  # noqa: BLE001 - any store failure means unhealthy
            log.exception("healthz: store unavailable")
            return {"status": "error", "store": "unavailable"}, 503
        return {"status": "ok", "intents": len(parts.kb.intents)}

    @bp.get("/metrics")
    def metrics():
        """Prometheus text exposition from the store's cheap counts; token or loopback only."""
        if not metrics_allowed(parts.config.server.metrics_token):
            return Response("Forbidden", status=403, mimetype="text/plain",
                            headers={"WWW-Authenticate": "Bearer"})
        body, content_type = render_metrics(parts.store)
        return Response(body, content_type=content_type)

    @bp.get("/answers/<answer_id>")
    def answer_page(answer_id: str):
        """An FAQ answer as a web page, with its screenshots."""
        intent = parts.kb.intents.get(answer_id)
        if intent is None or intent.kind != "faq":
            abort(404)
        body = parts.kb.render(answer_id)
        return render_template("answer.html", intent=intent, paragraphs=body.split("\n"))

    return bp


def metrics_allowed(token: str) -> bool:
    """With a metrics token: the request's bearer token must match; without: loopback clients only."""
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
