"""Assignment tokens: HMAC-signed, bound to the assignment, experiment, variant and visitor.

A token is what the browser hands back with a conversion. It carries the assignment id
and a fingerprint of the experiment, variant and visitor, signed with
``LEVER_SECRET_KEY`` (itsdangerous, HMAC-SHA256 over the compact payload). Verification
checks the signature first, then that the stored assignment still matches the
fingerprint, so a token cannot be moved to another assignment or altered.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from .errors import LeverError

_SALT = "lever.assignment.v1"


class InvalidToken(LeverError):
    status = 400
    code = "invalid_assignment_token"


@dataclass(frozen=True)
class TokenClaims:
    assignment_id: int
    experiment: str
    variant: str
    visitor_fingerprint: str


def visitor_fingerprint(visitor: str) -> str:
    return hashlib.sha256(visitor.encode("utf-8")).hexdigest()[:16]


class TokenSigner:
    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeSerializer(secret_key, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})

    def sign(self, assignment_id: int, experiment: str, variant: str, visitor: str) -> str:
        return self._serializer.dumps([assignment_id, experiment, variant, visitor_fingerprint(visitor)])

    def verify(self, token: object) -> TokenClaims:
        if not isinstance(token, str) or not 0 < len(token) <= 1000:
            raise InvalidToken("assignment must be the token string returned by assign")
        try:
            payload = self._serializer.loads(token)
        except BadSignature:
            raise InvalidToken("assignment token signature is invalid") from None
        if not (isinstance(payload, list) and len(payload) == 4 and isinstance(payload[0], int)):
            raise InvalidToken("assignment token is malformed")
        return TokenClaims(*payload)
