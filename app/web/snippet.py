"""The browser side: ``GET /lever.js`` (the snippet) and ``GET /demo`` (a page that uses it).

``/lever.js`` serves ``static/lever.js`` without its whole-line ``//`` comments, blank lines
and indentation (safe for this file: it has no template literals or multi-line strings, which
a test checks), gzip-compressed when the client accepts it, with a strong ETag (a hash of the
bytes served) and a five-minute public cache lifetime; ``If-None-Match`` answers 304.

``/demo`` is a landing page personalised by the ``homepage-hero`` experiment that
``flask seed-demo`` creates. The server renders the control's text, so the page reads well
without JavaScript, when the experiment does not exist, or when the service is slow.
"""
from __future__ import annotations

import gzip
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, render_template, request

from ..service.demo import DEMO_EXPERIMENT
from ..storage import StorageBusy
from .db import get_storage

bp = Blueprint("snippet", __name__)

SOURCE = Path(__file__).resolve().parent / "static" / "lever.js"
CACHE_CONTROL = "public, max-age=300"


@dataclass(frozen=True)
class Asset:
    mtime_ns: int
    body: bytes
    gzipped: bytes
    etag: str


_asset: Asset | None = None


def compact(source: str) -> str:
    """Drop whole-line ``//`` comments, blank lines and indentation; keep line breaks (ASI)."""
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//")) + "\n"


def snippet_asset() -> Asset:
    """The served bytes, rebuilt when the file changes (cheap: one stat per request)."""
    global _asset
    mtime_ns = SOURCE.stat().st_mtime_ns
    if _asset is None or _asset.mtime_ns != mtime_ns:
        body = compact(SOURCE.read_text(encoding="utf-8")).encode()
        _asset = Asset(mtime_ns=mtime_ns, body=body, gzipped=gzip.compress(body, compresslevel=9, mtime=0),
                       etag=hashlib.sha256(body).hexdigest()[:20])
    return _asset


@bp.get("/lever.js")
def script() -> Response:
    asset = snippet_asset()
    compressed = request.accept_encodings["gzip"] > 0
    response = Response(asset.gzipped if compressed else asset.body, mimetype="text/javascript")
    response.set_etag(asset.etag + ("-gz" if compressed else ""))  # one ETag per representation
    if compressed:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Not needed for a plain <script src>, but lets pages use integrity= with crossorigin="anonymous".
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response.make_conditional(request)


def _demo_copy() -> tuple[bool, dict[str, str]]:
    """(whether the demo experiment exists, the control's text) — the defaults if it does not."""
    key = DEMO_EXPERIMENT["key"]
    copy = dict(next(v["payload"] for v in DEMO_EXPERIMENT["variants"] if v["key"] == DEMO_EXPERIMENT["control"]))
    try:
        experiment = get_storage().get_experiment(key)
    except StorageBusy:  # the snippet will still try; the page must render either way
        return True, copy
    if experiment is None:
        return False, copy
    control = next((v for v in experiment.variants if v.key == experiment.control), None)
    if control is not None:
        copy.update({k: str(v) for k, v in control.payload.items() if k in copy and isinstance(v, (str, int, float))})
    return True, copy


@bp.get("/demo")
def demo() -> Response:
    exists, copy = _demo_copy()
    nonce = secrets.token_urlsafe(16)
    html = render_template("demo.html", experiment=DEMO_EXPERIMENT["key"], exists=exists, copy=copy, nonce=nonce)
    response = Response(html, mimetype="text/html")
    # Everything is served from here: the policy would block any external resource.
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    return response
