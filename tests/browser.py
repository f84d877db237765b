"""Shared real-browser helpers: Debian's Chromium driven by Playwright, loopback only.

Use in a test module::

    from .browser import chromium, browser_page, SiteServer  # noqa: F401  (pytest fixtures)

    def test_something(browser_page):
        watch = browser_page()                # a fresh context (empty storage) and page
        watch.page.goto(url)
        ...
        watch.assert_clean()                  # no console errors or warnings, no uncaught exceptions

* ``chromium`` (session): one browser for the whole run. When Chromium or Playwright is
  missing the tests FAIL with a message saying what to install: they never skip.
* ``browser_page`` (function): a factory; each call opens a new, isolated browser context
  (keyword arguments go to ``Browser.new_context``: ``locale``, ``timezone_id``, ...),
  records console messages, uncaught page errors and requests, and at teardown saves a
  screenshot of every page to ``test-artifacts/<test name>[-n].png`` and closes it.
* ``SiteServer``: a tiny threaded HTTP server on another loopback port, to serve test pages
  from a second origin (or to play a slow or failing service).

The browser never needs the network: Playwright is pointed at /usr/bin/chromium (override
with ``CHROMIUM_PATH``), never at a downloaded build.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: what Chromium itself logs for a failed or refused request (not a script's doing)
NETWORK_NOISE = re.compile(r"^Failed to load resource: ")


def launch(playwright):
    """Launch Debian's Chromium; ``pytest.fail`` (not skip) with a remedy when it cannot."""
    if not Path(CHROMIUM_PATH).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM_PATH}: apt-get install -y --no-install-recommends chromium "
                    "(or set CHROMIUM_PATH)", pytrace=False)
    try:
        return playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, timeout=30_000)
    except Exception as error:  # noqa: BLE001 - any launch failure is reported the same way
        pytest.fail(f"Chromium at {CHROMIUM_PATH} did not start under Playwright: {error}", pytrace=False)


_shared: dict[str, object] = {}


@pytest.fixture(scope="session")
def chromium():
    """One browser per test run, even when several modules import this fixture (Playwright's
    sync API allows a single instance per thread)."""
    if "browser" in _shared:
        yield _shared["browser"]
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[test]' (the Python package only; "
                    "the browser is Debian's chromium)", pytrace=False)
    playwright = sync_playwright().start()
    try:
        _shared["browser"] = launch(playwright)
        yield _shared["browser"]
        _shared.pop("browser").close()
    finally:
        _shared.pop("browser", None)
        playwright.stop()


@dataclass
class Watch:
    """A page with what it logged, threw and requested."""

    page: object
    console: list = field(default_factory=list)       # (type, text)
    page_errors: list = field(default_factory=list)   # str
    requests: list = field(default_factory=list)      # playwright Request objects, in order

    def errors(self, allow_network: bool = False) -> list[str]:
        """Console errors and warnings and uncaught exceptions; ``allow_network`` drops
        Chromium's own "Failed to load resource" lines (expected when a test cuts the service)."""
        found = [f"console.{kind}: {text}" for kind, text in self.console if kind in ("error", "warning", "assert")
                 and not (allow_network and NETWORK_NOISE.match(text))]
        return found + [f"uncaught: {error}" for error in self.page_errors]

    def assert_clean(self, allow_network: bool = False) -> None:
        problems = self.errors(allow_network)
        assert not problems, "the page logged or threw:\n" + "\n".join(problems)

    def requests_to(self, prefix: str) -> list:
        return [r for r in self.requests if r.url.startswith(prefix)]


def _artifact_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")[:120] or "page"


@pytest.fixture
def browser_page(chromium, request) -> Iterator[Callable[..., Watch]]:
    opened: list[tuple[object, Watch]] = []

    def open_page(**context_options) -> Watch:
        context = chromium.new_context(**context_options)
        context.set_default_timeout(5_000)
        page = context.new_page()
        watch = Watch(page)
        page.on("console", lambda message: watch.console.append((message.type, message.text)))
        page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
        page.on("request", lambda req: watch.requests.append(req))
        opened.append((context, watch))
        return watch

    yield open_page

    ARTIFACTS.mkdir(exist_ok=True)
    name = _artifact_name(request.node.nodeid)
    for index, (context, watch) in enumerate(opened):
        try:
            if not watch.page.is_closed():
                suffix = f"-{index + 1}" if len(opened) > 1 else ""
                watch.page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"), timeout=5_000)
        except Exception:  # noqa: BLE001 - a screenshot is a courtesy, never a failure
            pass
        context.close()


Route = Callable[[BaseHTTPRequestHandler], None]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address) -> None:  # e.g. the browser hung up on a slow answer
        pass


class SiteServer:
    """A threaded HTTP server on 127.0.0.1 with routes set by the test.

    ``server.page("/p.html", html)`` serves a page; ``server.route("/x", fn)`` runs
    ``fn(handler)`` for any method on a path starting with ``/x``. Unknown paths are 404.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[tuple[str, str]] = []  # (method, path)
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _dispatch(self) -> None:
                site.hits.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                for prefix, route in sorted(site.routes.items(), key=lambda item: -len(item[0])):
                    if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                        return route(self)
                self.respond(404, "text/plain", b"not found")

            do_GET = do_POST = do_OPTIONS = do_HEAD = _dispatch

            def respond(self, status: int, content_type: str, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, *args) -> None:  # quiet
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="site-server", daemon=True)

    def page(self, path: str, html: str) -> str:
        body = html.encode()
        self.routes[path] = lambda handler: handler.respond(200, "text/html; charset=utf-8", body)
        return self.base + path

    def route(self, prefix: str, route: Route) -> str:
        self.routes[prefix] = route
        return self.base + prefix

    def __enter__(self) -> "SiteServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
