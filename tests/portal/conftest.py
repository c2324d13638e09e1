"""The portal in a real browser: the local stack (moto server) with the API and the portal on
one origin (functions/local/web.py, what `tollgate local up` serves), driven by Debian's
headless Chromium through Playwright. One stack, server and browser per test module; each
test has its own browser context (its own sessionStorage and localStorage).

Chromium is the system's (/usr/bin/chromium, which the Makefile installs); Playwright never
downloads a browser. The closed network refuses Chromium's own background connections, hence
the flags that turn them off.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from functions.local.web import PortalServer
from tests.conftest import FAKE_ENVIRONMENT, local_stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


@dataclass
class Portal:
    web: PortalServer
    browser: Browser
    stack: Any
    keys: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # uncaught script errors in any page

    def call(self, method: str, path: str, key: str | None = None, body: Any = None):
        """(status, headers, JSON or bytes) of an API request over HTTP, as the browser sends
        it: the numbers the portal shows are checked against these."""
        headers = {"Accept": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = self.web.api_url + path
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=30) as answer:
                status, got, raw = answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            status, got, raw = error.code, dict(error.headers), error.read()
        if got.get("Content-Type", "").startswith("application/json"):
            return status, got, json.loads(raw)
        return status, got, raw

    def get(self, path: str, key: str) -> Any:
        status, _, body = self.call("GET", path, key)
        assert status == 200, (path, status, body)
        return body

    def page(self, context) -> Page:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.goto(self.web.portal_url)
        return page

    def sign_in(self, context, key: str) -> Page:
        page = self.page(context)
        page.fill("#api-key", self.keys.get(key, key))
        page.click("#key-submit")
        wait_ready(page, "dashboard")
        return page


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 303 is checked as it is, not followed
        return None


def wait_ready(page: Page, view: str) -> None:
    """Until the view has rendered every answer it asked the API for."""
    page.wait_for_selector(f'#view[data-view="{view}"][data-ready="true"]', state="attached")


@contextmanager
def portal_world(seed: Callable[[Portal], None], **stack_options: Any) -> Iterator[Portal]:
    """The local stack, seeded, the API and portal on a free port, and a headless Chromium."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with (
            local_stack(**stack_options) as stack,
            PortalServer(0, documents_origin=stack.endpoint_url) as web,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            portal = Portal(web, browser, stack)
            seed(portal)
            try:
                yield portal
            finally:
                browser.close()


@pytest.fixture
def context(portal):
    """A fresh browser profile for one test: nothing kept from the previous test."""
    context = portal.browser.new_context(accept_downloads=True)
    yield context
    context.close()
    errors, portal.errors[:] = list(portal.errors), []
    assert errors == [], "the portal's script failed"
