"""The webhook benchmark's servers, each its own process group, all under the bot's gunicorn options.

`python bench/servers.py KIND PORT CONFIG [WEROBOT_LIB]` serves one of:
- bare: a Flask app whose POST /wechat answers "success" without reading the body;
- werobot: a WeRoBot 1.13.1 keyword app in safe mode with SQLite sessions, as people write one;
- trivial: a one-process asyncio responder (no gunicorn) — only to show what wrk can drive.
The bot itself is `python -m bot serve`. bare and werobot subclass `BotServer` and change only
what it loads, so worker class, threads, workers and the access log are the bot's by construction.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402

from bot.config import load_config  # noqa: E402
from bot.kb import load_kb  # noqa: E402
from bot.serve import BotServer  # noqa: E402

TRIVIAL_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nsuccess"
TRIVIAL_HEALTH = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'


def bare_app() -> Flask:
    """The baseline: POST /wechat answers "success" without looking at the body; GET /healthz."""
    app = Flask(__name__)

    @app.post("/wechat")
    def wechat():
        """WeChat's 'no reply' answer."""
        return "success"

    @app.get("/healthz")
    def healthz():
        """Liveness for the harness."""
        return {"status": "ok"}

    return app


def keyword_answers() -> list[tuple[str, str]]:
    """(keyword, reply) pairs a WeRoBot author would write, with our FAQ texts as the replies."""
    kb = load_kb(ROOT / "answers")
    channel, swapped = kb.render("leqi-channel-missing"), kb.render("leqi-ids-swapped", tax_id="")
    return [("通道", channel), ("数电配置", channel), ("填反", swapped), ("单位ID", swapped),
            ("缓存", swapped), ("人工", "已为您转接人工客服，请稍候。"), ("客服", "已为您转接人工客服，请稍候。"),
            ("你好", "您好！请描述您遇到的乐企联用问题。"), ("谢谢", "不客气！"), ("帮助", "请直接描述您的问题。")]


def werobot_app(config, folder: Path):
    """A WeRoBot keyword robot in safe mode, SQLite sessions in `folder`, /healthz beside it."""
    import werobot
    from werobot.session.sqlitestorage import SQLiteStorage

    wechat = config.wechat
    robot = werobot.WeRoBot(token=wechat.token, encoding_aes_key=wechat.encoding_aes_key,
                            app_id=wechat.app_id, session_storage=SQLiteStorage(str(folder / "werobot.db")))
    answers = keyword_answers()

    @robot.text
    def keyword_reply(message, session):
        """First keyword found wins; a session counts the customer's messages."""
        session["count"] = session.get("count", 0) + 1
        for word, reply in answers:
            if word in message.content:
                return reply
        return "抱歉，没有找到相关答案，回复“人工”联系客服。"

    inner = robot.wsgi

    def app(environ, start_response):
        """/healthz for the harness, everything else to WeRoBot."""
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b"{}"]
        return inner(environ, start_response)
    return app


class BenchServer(BotServer):
    """BotServer's gunicorn options, unchanged, serving another app."""

    def __init__(self, config, port: int, make_app):
        """The bot's options for `config` on 127.0.0.1:`port`; `make_app()` builds the app per worker."""
        self.make_app = make_app
        super().__init__(config, "127.0.0.1", port, config.server.workers)

    def load(self):
        """The other app instead of the bot."""
        return self.make_app()


async def trivial_server(port: int) -> None:
    """Answer every request on a keep-alive connection with a fixed response, as fast as asyncio can."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: read a request (headers + Content-Length body), answer, repeat."""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                writer.write(TRIVIAL_HEALTH if head.startswith(b"GET /healthz") else TRIVIAL_RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


def main(kind: str, port: int, config_path: str, lib: str = "") -> None:
    """Serve `kind` until stopped."""
    if kind == "trivial":
        asyncio.run(trivial_server(port))
        return
    config = load_config(config_path)
    if kind == "bare":
        BenchServer(config, port, bare_app).run()
    elif kind == "werobot":
        sys.path.insert(0, lib)
        BenchServer(config, port, lambda: werobot_app(config, Path(config_path).parent)).run()
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])
