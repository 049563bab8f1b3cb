"""The labeling app's sign-in and API over real HTTP (uvicorn on a free port); the desk is not
started, so no Kafka: its queue is filled by hand."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.cookiejar import CookieJar

import pytest

from stream_al.cli import main
from stream_al.labeling.desk import LabelingDesk
from stream_al.labeling.web import COOKIE, LabelingApp, WebServer
from stream_al.schemas import Query
from stream_al.settings import Settings, SettingsError, load_settings

TOKEN = "team-secret"


@pytest.fixture
def server() -> Iterator[WebServer]:
    desk = LabelingDesk(Settings())
    query = Query(
        id="s-1",
        features={"x": 1.0},
        predicted_label="a",
        probabilities={"a": 0.6, "b": 0.4},
        uncertainty=0.8,
        strategy="adaptive",
        reason="uncertain",
        threshold=0.5,
        created_at=datetime.now(UTC),
        metadata={"note": "</script><script>alert(1)</script>"},
    )
    desk.queue.add(query, partition=0, offset=0, now=query.created_at.timestamp())
    app = LabelingApp(desk, token=TOKEN, classes=("a", "b"), undo_seconds=30, refresh_seconds=2)
    web = WebServer(app, "127.0.0.1", 0)
    web.start()
    try:
        yield web
    finally:
        web.stop()


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))


def status_of(
    client: urllib.request.OpenerDirector,
    url: str | urllib.request.Request,
    data: bytes | None = None,
) -> int:
    try:
        with client.open(url, data=data, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_signing_in_needs_the_token_and_the_api_a_signed_session(server: WebServer) -> None:
    client = opener()
    with client.open(server.url, timeout=10) as response:
        assert 'name="token"' in response.read().decode()
    wrong = urllib.parse.urlencode({"name": "ann", "token": "guess"}).encode()
    assert status_of(client, server.url + "login", wrong) == 403
    assert status_of(client, server.url + "api/items") == 401
    right = urllib.parse.urlencode({"name": "ann", "token": TOKEN}).encode()
    assert status_of(client, server.url + "login", right) == 200  # redirected to the screen
    with client.open(server.url + "api/items", timeout=10) as response:
        body = json.loads(response.read())
    assert [item["id"] for item in body["items"]] == ["s-1"]
    assert body["status"]["annotator"] == "ann" and body["status"]["queue_items"] == 0
    # The metadata is data for the page's script, never markup of the page.
    with client.open(server.url, timeout=10) as response:
        assert "<script>alert(1)" not in response.read().decode()
    # learner.classes is set: a class outside it is refused before it reaches the topic.
    outside = urllib.request.Request(
        server.url + "api/answer",
        data=json.dumps({"id": "s-1", "label": "c"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status_of(client, outside) == 400


def test_a_forged_session_cookie_is_refused(server: WebServer) -> None:
    forged = urllib.request.Request(
        server.url + "api/items", headers={"Cookie": f"{COOKIE}=YW5u.0000"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 401


def test_a_token_is_required_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAM_AL_LABELING__HOST", "0.0.0.0")
    with pytest.raises(SettingsError, match=r"labeling\.token is required"):
        load_settings()
    assert main(["label"]) == 2
    assert "stream-al: invalid setting labeling" in capsys.readouterr().err
    monkeypatch.setenv("STREAM_AL_LABELING__TOKEN", TOKEN)
    assert load_settings().labeling.host == "0.0.0.0"
