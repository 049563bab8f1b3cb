"""Debian's chromium, driven by Selenium through Debian's chromedriver (never a download).

``make test`` installs both (``deploy/browser/install-chromium``). Without them, browser tests
are skipped, unless ``CI`` is set: CI must not pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,900",
)


def require_chromium() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    reason = "no Debian chromium/chromedriver (deploy/browser/install-chromium installs them)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so this is an error")
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[object]:
    """A headless chromium with a fresh profile, as a Selenium ``WebDriver``."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="stream-al-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
