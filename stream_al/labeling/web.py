"""``stream-al label``: the web labeling app (Starlette, served by uvicorn).

A labeler signs in with a name (and the shared ``labeling.token`` when one is set) and gets
a session cookie; the page (`static/label.js`, no build step) then works through a small
JSON API on the desk: ``GET /api/items`` (what I hold, topped up to two, leases renewed),
``POST /api/answer``, ``POST /api/undo``, ``POST /api/release`` (sent as the tab closes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import socket
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stream_al.labeling.desk import AnswerRefused, LabelingDesk
from stream_al.schemas import Label

STATIC = Path(__file__).parent / "static"
COOKIE = "stream_al_annotator"
MAX_NAME = 64


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        '<link rel="stylesheet" href="/static/label.css"></head>'
        f"<body>{body}</body></html>"
    )


class LabelingApp:
    """The routes, bound to one desk. ``token`` None: anyone who reaches the port signs in."""

    def __init__(
        self,
        desk: LabelingDesk,
        *,
        token: str | None,
        classes: tuple[str, ...] | None,
        undo_seconds: float,
        refresh_seconds: float,
    ) -> None:
        self.desk = desk
        self.token = token
        #: ``learner.classes``: when set, no other class is taken (none can be typed).
        self.classes = classes
        self.page_config = {
            "newClasses": classes is None,
            "undoSeconds": undo_seconds,
            "refreshSeconds": refresh_seconds,
        }
        # Sessions are signed with a key of this process: a restart signs everyone out.
        self._key = secrets.token_bytes(32)
        self.app = Starlette(
            routes=[
                Route("/", self.index),
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/api/items", self.items),
                Route("/api/answer", self.answer, methods=["POST"]),
                Route("/api/undo", self.undo, methods=["POST"]),
                Route("/api/release", self.release, methods=["POST"]),
                Route("/healthz", lambda _: Response("ok\n")),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
            ]
        )

    # -- sessions --------------------------------------------------------------------------

    def _sign(self, name: str) -> str:
        encoded = base64.urlsafe_b64encode(name.encode()).decode()
        mac = hmac.new(self._key, encoded.encode(), hashlib.sha256).hexdigest()
        return f"{encoded}.{mac}"

    def annotator(self, request: Request) -> str | None:
        """The signed-in annotator of this request, or None."""
        encoded, _, mac = request.cookies.get(COOKIE, "").partition(".")
        expected = hmac.new(self._key, encoded.encode(), hashlib.sha256).hexdigest()
        if not encoded or not hmac.compare_digest(mac, expected):
            return None
        return base64.urlsafe_b64decode(encoded.encode()).decode()

    # -- pages -----------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        annotator = self.annotator(request)
        if annotator is None:
            return HTMLResponse(self._login_page())
        stat = '<span class="stat">{} <b id="{}">-</b></span>'.format
        header = (
            '<header><span class="brand">stream_al labeling</span>'
            + stat("queue", "queue")
            + stat("backlog", "backlog")
            + stat("my labels", "mine")
            + stat("skipped", "skips")
            + stat("labels/h", "rate")
            + stat("agreement", "agreement")
            + stat("annotators per item", "k")
            + f'<span class="stat">signed in as <b id="annotator">{html.escape(annotator)}</b>'
            '</span><form method="post" action="/logout"><button>sign out</button></form>'
            "</header>"
        )
        body = (
            header + '<main><div class="card" id="item"></div>'
            '<div class="hint"><kbd>1</kbd>-<kbd>9</kbd> pick a class · <kbd>0</kbd> or '
            "<kbd>S</kbd> don't know · <kbd>U</kbd> undo the last answer"
            + (" · <kbd>N</kbd> type a new class" if self.page_config["newClasses"] else "")
            + ' <button id="undo" disabled><kbd>U</kbd>undo</button></div>'
            '<div class="notice" id="notice"></div></main>'
            # JSON in a script tag: "</" is escaped so no value can close the tag.
            '<script type="application/json" id="config">'
            + json.dumps(self.page_config).replace("</", "<\\/")
            + '</script><script src="/static/label.js"></script>'
        )
        return HTMLResponse(_page("stream_al labeling", body))

    def _login_page(self, error: str = "") -> str:
        token_field = (
            '<input name="token" type="password" placeholder="team token" required>'
            if self.token is not None
            else ""
        )
        message = f'<div class="notice">{html.escape(error)}</div>' if error else ""
        return _page(
            "stream_al labeling: sign in",
            '<form class="login" method="post" action="/login"><h2>Label for stream_al</h2>'
            f'<input name="name" placeholder="your name" maxlength="{MAX_NAME}" required '
            f'autofocus>{token_field}<button type="submit">Start labeling</button>{message}'
            "</form>",
        )

    async def login(self, request: Request) -> Response:
        form = urllib.parse.parse_qs((await request.body()).decode(errors="replace"))
        name = (form.get("name") or [""])[0].strip()
        token = (form.get("token") or [""])[0]
        if self.token is not None and not hmac.compare_digest(token.encode(), self.token.encode()):
            return HTMLResponse(self._login_page("That token is not right."), status_code=403)
        if not name or len(name) > MAX_NAME or not name.isprintable():
            return HTMLResponse(
                self._login_page(f"A name of 1 to {MAX_NAME} printable characters, please."),
                status_code=400,
            )
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, self._sign(name), httponly=True, samesite="strict")
        return response

    async def logout(self, request: Request) -> Response:
        annotator = self.annotator(request)
        if annotator is not None:
            self.desk.release(annotator)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # -- the API ---------------------------------------------------------------------------

    def _reply(self, annotator: str, status_code: int = 200, **extra: Any) -> JSONResponse:
        items = [query.model_dump(mode="json") for query in self.desk.items(annotator)]
        status = self.desk.status(annotator).to_json()
        return JSONResponse({"items": items, "status": status, **extra}, status_code=status_code)

    async def items(self, request: Request) -> Response:
        annotator = self.annotator(request)
        if annotator is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        return self._reply(annotator)

    async def answer(self, request: Request) -> Response:
        annotator = self.annotator(request)
        if annotator is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        try:
            body = await request.json()
            item_id, raw_label = str(body["id"]), body.get("label")
            label = None if raw_label is None else _LABEL.validate_python(raw_label)
            corrects = bool(body.get("corrects", False))
        except (ValueError, KeyError, TypeError) as error:
            return JSONResponse({"error": f"not an answer: {error}"}, status_code=400)
        if label is not None and self.classes is not None and label not in self.classes:
            refusal = f"{label!r} is not one of the classes {', '.join(self.classes)}"
            return JSONResponse({"error": refusal}, status_code=400)
        send = self.desk.correct if corrects else self.desk.answer
        try:
            # In a worker thread: sending can block while the broker is away, and the event
            # loop serves every labeler.
            await run_in_threadpool(send, annotator, item_id, label)
        except AnswerRefused as refused:
            return self._reply(annotator, 409, error=str(refused))
        return self._reply(annotator)

    async def undo(self, request: Request) -> Response:
        annotator = self.annotator(request)
        if annotator is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        last = self.desk.undo(annotator)
        if last is None:
            return JSONResponse({"error": "nothing to undo (the window has passed)"}, 404)
        query, previous = last
        return JSONResponse({"item": query.model_dump(mode="json"), "previous": previous})

    async def release(self, request: Request) -> Response:
        annotator = self.annotator(request)
        if annotator is not None:
            self.desk.release(annotator)
        return Response(status_code=204)


#: A typed class is checked as a label on the wire is (a string of 1 to 256 characters).
_LABEL: TypeAdapter[str] = TypeAdapter(Label)


class WebServer:
    """uvicorn serving the app from a background thread, on a socket bound up front (so
    port 0 takes a free port and `port` tells which)."""

    def __init__(self, app: LabelingApp, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
            # Listening now: a browser that connects before uvicorn runs waits in the backlog.
            self._socket.listen(128)
        except OSError as error:
            self._socket.close()
            raise ValueError(f"cannot serve the labeling app on {host}:{port}: {error}") from error
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(app.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="labeling-web", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _serve(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError("the labeling app's web server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()
