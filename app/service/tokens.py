"""Assignment tokens: HMAC-signed, bound to the assignment, experiment, variant and visitor.

A token is what the browser hands back with a conversion:

    base64url("<assignment id>:<experiment>:<variant>:<visitor fingerprint>") "." base64url(HMAC-SHA256)

The MAC covers a version prefix and the payload, keyed by ``LEVER_SECRET_KEY``, and is
checked in constant time. Verification then checks that the stored assignment still
matches the experiment, variant and visitor fingerprint, so a token can be neither
altered nor moved to another assignment. (The standard-library ``hmac`` is used
directly because the assign endpoint signs a token on every request: it costs a few
microseconds where a general-purpose serializer costs tens.)
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from ..domain.errors import LeverError

_VERSION = b"lever.assignment.v1:"
#: visitor tokens: another purpose prefix, so neither kind of token can pass for the other
_VISITOR_VERSION = b"lever.visitor.v1:"


class InvalidToken(LeverError):
    status = 400
    code = "invalid_assignment_token"


class InvalidVisitorToken(LeverError):
    """POST /events from a page without a valid token for this visitor (missing, forged, another's)."""

    status = 403
    code = "invalid_visitor_token"


@dataclass(frozen=True)
class TokenClaims:
    assignment_id: int
    experiment: str
    variant: str
    visitor_fingerprint: str


def visitor_fingerprint(visitor: str) -> str:
    return hashlib.sha256(visitor.encode("utf-8")).hexdigest()[:16]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"lever-token-key:" + secret_key.encode("utf-8")).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _VERSION + payload, hashlib.sha256).digest()

    def sign(self, assignment_id: int, experiment: str, variant: str, visitor: str) -> str:
        payload = f"{assignment_id}:{experiment}:{variant}:{visitor_fingerprint(visitor)}".encode("ascii")
        return f"{_b64encode(payload)}.{_b64encode(self._mac(payload))}"

    def verify(self, token: object) -> TokenClaims:
        if not isinstance(token, str) or not 0 < len(token) <= 1000 or token.count(".") != 1:
            raise InvalidToken("assignment must be the token string returned by assign")
        encoded_payload, encoded_mac = token.split(".")
        try:
            payload, mac = _b64decode(encoded_payload), _b64decode(encoded_mac)
        except (binascii.Error, ValueError):
            raise InvalidToken("assignment token is malformed") from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidToken("assignment token signature is invalid")
        parts = payload.decode("ascii", "replace").split(":")
        if len(parts) != 4 or not parts[0].isdigit():
            raise InvalidToken("assignment token is malformed")
        return TokenClaims(int(parts[0]), parts[1], parts[2], parts[3])

    # -- visitor tokens: who may write events into a visitor's history --------------------
    def sign_visitor(self, visitor: str) -> str:
        """The ``visitor_token`` of the assign response: base64url(HMAC(prefix + visitor id as sent)),
        the same for every assignment of the visitor (no state, no expiry: it proves only who)."""
        return _b64encode(hmac.new(self._key, _VISITOR_VERSION + visitor.encode("utf-8"), hashlib.sha256).digest())

    def verify_visitor(self, token: object, visitor: str) -> None:
        if not isinstance(token, str) or not token:
            raise InvalidVisitorToken("visitor_token is required: send the one assign returned for this visitor",
                                      code="visitor_token_required")
        if not hmac.compare_digest(token.encode("utf-8", "replace"), self.sign_visitor(visitor).encode("ascii")):
            raise InvalidVisitorToken("visitor_token is not valid for this visitor")
