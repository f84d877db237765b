"""People and machines that may call the admin side: accounts, invitations, API keys.

Records that cross into storage. Secrets never appear here: an account holds its
password's argon2 hash, an invitation and an API key the SHA-256 of their secret.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    role: str
    password_hash: str
    active: bool
    #: raised on deactivation and password change: every session of an older generation ends
    session_generation: int
    created_at: float
    updated_at: float
    last_login_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "role": self.role, "active": self.active,
                "created_at": self.created_at, "updated_at": self.updated_at, "last_login_at": self.last_login_at}


@dataclass(frozen=True)
class Invitation:
    id: int
    email: str
    role: str
    created_by: str
    created_at: float
    expires_at: float
    accepted_at: float | None = None

    def pending(self, now: float) -> bool:
        return self.accepted_at is None and now < self.expires_at

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "role": self.role, "created_by": self.created_by,
                "created_at": self.created_at, "expires_at": self.expires_at, "accepted_at": self.accepted_at}


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    role: str
    #: the first characters of the secret, to tell keys apart in lists (never enough to use)
    prefix: str
    created_by: str
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role, "prefix": self.prefix,
                "created_by": self.created_by, "created_at": self.created_at, "last_used_at": self.last_used_at,
                "revoked_at": self.revoked_at}
