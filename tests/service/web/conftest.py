"""What the browser tests share: Debian's Chromium driven by Playwright against the session's
`deepclust serve` (auth on, the local runner), two tenants' keys, a page that fails its test on any
uncaught error, and helpers that act as a user does (enter a key, drop a file).

Set DEEPCLUST_SCREENSHOTS=docs/screenshots to save a picture of each page on the way.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import numpy as np
import pytest

from deepclust.app.tenancy.auth import create_key
from deepclust.app.core.db import engine_for, new_session

from sklearn.datasets import load_digits

from ..conftest import blobs

CHROMIUM = os.environ.get("DEEPCLUST_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("DEEPCLUST_SCREENSHOTS")
N, D, K = 240, 10, 4
# Generous: CI machines are shared; nothing here measures speed. The README's pictures come from a
# longer run (test_browser.SHOWN_DEC).
WAIT_MS = 900_000 if SCREENSHOTS else 300_000


def tenant_key(served, name: str) -> str:
    """A key of a new tenant ``name`` on the shared server, made in its database (as `keys create`)."""
    engine = engine_for(f"sqlite:///{served.tmp / 'data' / 'deepclust.db'}")
    with new_session(engine) as session:
        key = create_key(session, name)[0]
    engine.dispose()
    return key


@pytest.fixture(scope="session")
def server(served):
    """The shared `deepclust serve` (auth on, local runner) and two tenants' keys: its own and bob's."""
    return served.url, [served.key, tenant_key(served, "bob")]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"No Chromium at {CHROMIUM}: `apt-get install -y chromium` (as .ci/run does), "
                    "or point DEEPCLUST_TEST_CHROMIUM at one.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server[0])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete …?" confirmations
    page.set_default_timeout(60_000)
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def api(server, key: int) -> httpx.Client:
    return httpx.Client(base_url=server[0], headers={"Authorization": f"Bearer {server[1][key]}"}, timeout=60)


def use_key(page, key: str) -> None:
    page.goto("/")
    page.fill("#api-key", key)
    with page.expect_navigation():  # the page reloads to show this key's resources
        page.click("#key-form button[type=submit]")
    page.wait_for_function("document.querySelector('#key-state')?.textContent === 'key set'")


def drop_file(page, selector: str, name: str, content: bytes) -> None:
    """A real drop event carrying the file, as dragging it from the desktop gives."""
    transfer = page.evaluate_handle(
        """([name, data]) => {
             const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
             const transfer = new DataTransfer();
             transfer.items.add(new File([bytes], name));
             return transfer;
           }""", [name, base64.b64encode(content).decode()])
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def matrix() -> tuple[np.ndarray, np.ndarray]:
    return blobs(N, D, K, seed=5)


def digit_images(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """8x8 grey images of handwritten digits, with their labels."""
    digits = load_digits()
    return digits.images[:n].astype(np.float32), digits.target[:n]
