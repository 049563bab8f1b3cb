"""The web labeling app in a real browser, on the real broker and the real service.

Two annotators label at once in two Debian chromium browsers: each item is answered by
exactly k of them, the service learns each item once, the keys work, and a closed tab gives
its items back. Screenshots of the screen go to docs/ (the README shows one).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.labeling.desk import LabelingDesk
from stream_al.labeling.run import running_desk, web_app
from stream_al.labeling.web import WebServer
from stream_al.schemas import Sample, encode
from stream_al.settings import Settings
from tests.browser import chromium, require_chromium
from tests.integration.harness import ServiceThread, read_topic, service_settings, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

DOCS = Path(__file__).resolve().parents[2] / "docs"
CLASSES = ("approve", "review", "reject")


@pytest.fixture(scope="module", autouse=True)
def _chromium_present() -> None:
    require_chromium()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def image_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An http image a sample's metadata can point at (a small chart, served locally)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = tmp_path_factory.mktemp("images")
    figure, axes = plt.subplots(figsize=(3.2, 1.6), dpi=80)
    axes.plot([3, 4, 2, 6, 5, 9, 4], marker="o")
    axes.set_title("amount, last 7 days")
    figure.tight_layout()
    figure.savefig(folder / "history.png")
    plt.close(figure)
    handler = partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/history.png"
    finally:
        server.shutdown()
        server.server_close()


def settings_for(bootstrap: str, k: int, classes: tuple[str, ...] | None) -> Settings:
    learner = LearnerConfig(
        model=ModelConfig(name="logreg"),
        # Every sample is asked: the test needs a known number of items.
        strategy=StrategyConfig(name="random", budget=1.0, exploration=0.0, warmup=0),
        classes=classes,
    )
    settings = service_settings(bootstrap, learner, partitions=2)
    labeling = {
        "annotators_per_item": k,
        "group_id": f"{settings.group_id}-labelers",
        "lease_seconds": 4.0,
        "port": 0,
        "metrics_port": 0,
    }
    return settings.model_copy(update={"labeling": type(settings.labeling)(**labeling)})


def feed(settings: Settings, numbers: Iterable[int], image_url: str) -> list[str]:
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    ids = []
    for i in numbers:
        sample = Sample(
            id=f"order-{i:03d}",
            features={"amount": 20.0 + 7.5 * i, "items": i % 4 + 1, "country": ["NL", "DE"][i % 2]},
            metadata={"note": f"customer wrote: please ship by friday ({i})", "history": image_url},
        )
        producer.send(settings.topics.samples, key=sample.id.encode(), value=encode(sample))
        ids.append(sample.id)
    producer.flush()
    producer.close()
    return ids


@contextmanager
def stack(settings: Settings) -> Iterator[tuple[ServiceThread, LabelingDesk, str]]:
    """The service in a thread and the labeling app on a free port, both on the broker."""
    with ServiceThread(settings) as service:
        wait_until(lambda: service.service.readiness()["partitions_assigned"], 60, "the service")
        with running_desk(settings) as desk:
            server = WebServer(web_app(settings, desk), "127.0.0.1", 0)
            server.start()
            try:
                assert desk.ready.wait(60), "the desk was never assigned the oracle topic"
                yield service, desk, server.url
            finally:
                server.stop()


def sign_in(driver: Any, url: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    driver.find_element(By.NAME, "name").send_keys(name + "\n")
    wait_until(lambda: driver.find_elements(By.ID, "annotator"), 20, f"{name} signed in")


def shown_item(driver: Any) -> str | None:
    """The id of the item on screen, or None while the page waits for one."""
    return driver.execute_script(
        "const card = document.getElementById('item');"
        "return document.getElementById('empty') ? null : (card.dataset.itemId || null);"
    )


def press(driver: Any, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(keys).perform()


def labels_on(settings: Settings) -> list[dict[str, Any]]:
    records = read_topic(settings.kafka.bootstrap_servers, settings.topics.labels, 1.0)
    return [json.loads(record.value) for record in records]


def label_all(
    drivers: dict[str, Any],
    expected_answers: int,
    settings: Settings,
    choose: Callable[..., str],
    on_topic: int | None = None,
) -> None:
    """Round-robin over the annotators: each answers the item on screen with a key, until
    ``expected_answers`` are sent and ``on_topic`` (default: as many) are on the topic."""
    deadline = time.monotonic() + 90
    sent = 0
    while sent < expected_answers:
        assert time.monotonic() < deadline, f"only {sent} of {expected_answers} answers"
        progressed = False
        for name, driver in drivers.items():
            item = shown_item(driver)
            if item is None:
                continue
            press(driver, choose(name, item, sent))
            # The next item shows at once (prefetched), or the page says it waits.
            wait_until(lambda d=driver, i=item: shown_item(d) != i, 5, "the next item")
            sent += 1
            progressed = True
        if not progressed:
            time.sleep(0.2)
    total = expected_answers if on_topic is None else on_topic
    wait_until(lambda: len(labels_on(settings)) >= total, 30, "the answers on the labels topic")


def test_two_annotators_answer_each_item_once_with_the_keys(
    kafka_bootstrap: str, image_url: str
) -> None:
    settings = settings_for(kafka_bootstrap, k=1, classes=CLASSES)
    answered = itertools.count()

    # Keys: 1-3 the classes, 0 "don't know" (every fourth answer).
    def choose(name: str, item: str, sent: int) -> str:
        n = next(answered)
        return "0" if n % 4 == 3 else str(n % 3 + 1)

    with stack(settings) as (service, _, url), chromium() as ann, chromium() as bob:
        ids = feed(settings, range(6), image_url)
        sign_in(ann, url, "ann")
        sign_in(bob, url, "bob")
        label_all({"ann": ann, "bob": bob}, len(ids), settings, choose)
        # Then more items, asked by a model that has learned: its opinion is on screen.
        wait_until(lambda: service.service.learner.labels_learned == 5, 30, "the first labels")
        more = feed(settings, range(6, 12), image_url)
        wait_until(lambda: shown_item(ann) and shown_item(bob), 30, "items on both screens")
        time.sleep(0.5)  # the chart image loads
        ann.save_screenshot(str(DOCS / "labeling-screen.png"))
        label_all({"ann": ann, "bob": bob}, len(more), settings, choose, len(ids) + len(more))
        ids += more
        answers = labels_on(settings)
        timings = ann.execute_script("return window.streamAlTimings")

    by_id = Counter(answer["id"] for answer in answers)
    assert by_id == Counter(ids)  # each item exactly once (k = 1)
    annotators = Counter(answer["annotator"] for answer in answers)
    assert set(annotators) == {"ann", "bob"} and min(annotators.values()) >= 4
    skips = [a for a in answers if a["skipped"]]
    assert len(skips) == 3 and all(a["label"] is None for a in skips)
    assert {a["label"] for a in answers if not a["skipped"]} <= set(CLASSES)
    learned = len(ids) - len(skips)
    wait_until(
        lambda: service.service.learner.labels_learned == learned, 30, "the service learning"
    )
    # Prefetched: the next item is on screen within 100 ms of the key (a DOM swap).
    assert timings and max(timings) < 100, timings
    print(f"answer to next item on screen, ms: {sorted(timings)}")


def test_with_two_annotators_per_item_each_answers_every_item(
    kafka_bootstrap: str, image_url: str
) -> None:
    settings = settings_for(kafka_bootstrap, k=2, classes=CLASSES)
    with stack(settings) as (service, _, url), chromium() as ann, chromium() as bob:
        ids = feed(settings, range(6), image_url)
        sign_in(ann, url, "ann")
        sign_in(bob, url, "bob")
        label_all(
            {"ann": ann, "bob": bob},
            2 * len(ids),
            settings,
            lambda name, item, sent: "1" if name == "ann" else "2",
        )
        answers = labels_on(settings)
        header = ann.find_element("id", "agreement")
        wait_until(lambda: header.text not in ("", "-", "\u2013"), 10, "ann's agreement")
        agreement = header.text

    assert Counter(a["id"] for a in answers) == Counter({i: 2 for i in ids})
    for item in ids:
        assert sorted(a["annotator"] for a in answers if a["id"] == item) == ["ann", "bob"]
    # ann always says approve, bob review: a tie on every item, nobody with the majority.
    assert agreement == "0%"
    # Learned once per item, from its pair of answers.
    wait_until(
        lambda: service.service.learner.labels_learned == len(ids), 30, "the service learning"
    )
    time.sleep(1.0)
    assert service.service.learner.labels_learned == len(ids)


def test_a_closed_tab_returns_its_items_and_undo_sends_a_correction(
    kafka_bootstrap: str, image_url: str
) -> None:
    from selenium.webdriver.common.by import By

    # No classes configured: the first answer names a new class.
    settings = settings_for(kafka_bootstrap, k=1, classes=None)
    with stack(settings) as (_, desk, url), chromium() as ann, chromium() as bob:
        ids = feed(settings, range(4), image_url)
        sign_in(ann, url, "ann")
        wait_until(lambda: shown_item(ann), 30, "an item for ann")
        wait_until(lambda: len(desk.queue.held_by("ann")) == 2, 10, "ann's prefetched item")
        first = shown_item(ann)
        press(ann, "n")
        ann.find_element(By.ID, "newclass").send_keys("fraud\n")
        wait_until(lambda: shown_item(ann) != first, 5, "the next item")
        press(ann, "u")  # undo: the first item comes back, marked as a correction
        wait_until(lambda: shown_item(ann) == first, 5, "the undone item")
        assert "Correcting your answer (it was: fraud)" in ann.page_source
        ann.find_element(By.ID, "newclass").send_keys("legit\n")
        wait_until(lambda: shown_item(ann) != first, 5, "the item after the correction")
        held = {q.id for q in desk.queue.held_by("ann")}
        assert len(held) == 2 and first not in held

        # ann closes her tab (keeping the browser): her two items go back to the queue.
        ann.switch_to.new_window("tab")
        labeling_tab = ann.window_handles[0]
        ann.switch_to.window(labeling_tab)
        ann.close()
        wait_until(lambda: not desk.queue.held_by("ann"), 10, "ann's items released")

        sign_in(bob, url, "bob")
        seen: list[str] = []
        while len(seen) < len(ids) - 1:
            wait_until(lambda: shown_item(bob) not in (None, *seen), 15, "bob's next item")
            seen.append(shown_item(bob))
            # Asked before any label was learned, these offer no class yet: "don't know".
            press(bob, "0")
        wait_until(lambda: len(labels_on(settings)) == len(ids) + 1, 30, "every answer")
        answers = labels_on(settings)

    assert held <= set(seen)  # what ann held, bob answered
    assert Counter(a["id"] for a in answers if not a.get("corrects")) == Counter(ids)
    corrections = [a for a in answers if a.get("corrects")]
    assert [(c["id"], c["label"], c["annotator"]) for c in corrections] == [(first, "legit", "ann")]
