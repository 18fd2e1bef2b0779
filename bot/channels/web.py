"""Public HTTP endpoints: health, Prometheus metrics, the FAQ web pages and their screenshots."""
from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import time
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, request, send_from_directory

from bot.kb import IMAGE_FILE
from bot.metrics import render_metrics

log = logging.getLogger(__name__)

STEP_LINE = re.compile(r"\s*(\d+)[.、．)]")
IMAGE_MAX_AGE = 86400  # screenshots change rarely; a day of browser cache
HEALTH_TOKEN_SECONDS = 60  # /healthz writes a throwaway token: proof the store takes writes


def answer_blocks(body: str, images: tuple[dict, ...], folder: Path) -> list[dict]:
    """The answer's lines, each with the screenshots that illustrate it: an image goes under its
    numbered `step`, else under the first line; a missing copy keeps its caption (`present`)."""
    lines = [line for line in body.split("\n") if line.strip()] or [""]
    blocks = [{"text": line, "images": []} for line in lines]
    steps = {int(m.group(1)): i for i, line in enumerate(lines) if (m := STEP_LINE.match(line))}
    for image in images:
        shown = dict(image, present=bool(image["file"]) and (folder / image["file"]).is_file())
        at = steps.get(image["step"], len(blocks) - 1) if image["step"] else 0
        blocks[min(at, len(blocks) - 1)]["images"].append(shown)
    return blocks


def web_blueprint(parts) -> Blueprint:
    """Blueprint with /healthz, /metrics, /answers/<id>, /answers/images/<file> and /assets/."""
    bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                   static_url_path="/assets")
    images_dir = Path(parts.config.answers_dir) / "images"

    @bp.get("/healthz")
    def healthz():
        """200 when the store takes a write (a full disk or a stopped database: 503); spool depth."""
        spool = current_app.extensions.get("spool")
        spooled = len(spool.spool.pending()) if spool is not None and spool.spool is not None else 0
        try:
            now = time.time()
            parts.store.tokens.put("healthz", str(int(now)), now + HEALTH_TOKEN_SECONDS)
        except Exception as exc:  # noqa: BLE001 - any store failure means unhealthy
            log.warning("healthz: store cannot write (%s)", type(exc).__name__)
            return {"status": "error", "store": "cannot write", "spooled": spooled}, 503
        return {"status": "ok", "intents": len(parts.kb.intents), "spooled": spooled}

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
        """An FAQ answer as a web page, screenshots next to the steps they illustrate."""
        intent = parts.kb.intents.get(answer_id)
        if intent is None or intent.kind != "faq":
            abort(404)
        blocks = answer_blocks(parts.kb.render(answer_id), intent.images, images_dir)
        return render_template("answer.html", intent=intent, blocks=blocks)

    @bp.get("/answers/images/<name>")
    def answer_image(name: str):
        """A screenshot from the project's own copy in answers/images/ (never a third-party CDN)."""
        if not IMAGE_FILE.fullmatch(name):
            abort(404)
        return send_from_directory(images_dir, name, max_age=IMAGE_MAX_AGE)

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
