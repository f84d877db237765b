"""Accounts, invitations and API keys: the team's credentials, and who a credential is.

Passwords are hashed with argon2id (``argon2-cffi``; memory-hard, so a stolen table costs an
attacker memory as well as time per guess; parameters in ``ARGON2_PARAMETERS``). Invitation tokens and API
keys are 32 random bytes: guessing is hopeless, so a fast SHA-256 is the right hash for them
(a slow hash protects low-entropy secrets; here it would only slow every API call) and it
makes the lookup an indexed equality. The stored and computed digests are still compared
with ``hmac.compare_digest``.

``ApiKeyResolver`` (one per worker) turns a bearer key into a ``Principal``: it keeps what it
read for at most ``KEY_CACHE_TTL_S`` (so a revoked key is refused by every worker of every
instance within that time; the revoking worker forgets it at once) and records a key's use
at most once a minute (no write per request).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import threading
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..domain.accounts import Account, ApiKey, Invitation
from ..domain.audit import AuditEntry
from ..domain.errors import Conflict, LeverError, NotFound, ValidationError
from ..storage import AccountStore, DuplicateEmail, InvitationUnavailable
from .permissions import ACCOUNT_ROLES, KEY_ROLES, Principal

KEY_PREFIX = "lever_sk_"
#: characters of a key shown in lists: the fixed prefix and 6 of the secret (36 bits: tells keys apart)
DISPLAY_CHARS = len(KEY_PREFIX) + 6
KEY_CACHE_TTL_S = 1.0
KEY_TOUCH_INTERVAL_S = 60.0
#: unknown keys are cached too (a flood of guesses costs no query each); the cache is cleared past this size
KEY_CACHE_SIZE = 4096
INVITE_HOURS = 72
PASSWORD_CHARS = (12, 256)  # the upper bound keeps one hash's work bounded
EMAIL_CHARS = 254
KEY_NAME_CHARS = 100
#: ids beyond this are no row's (both databases store 64-bit ids; a URL may carry any integer)
MAX_ID = 2 ** 62

#: argon2id at the OWASP Password Storage Cheat Sheet's first recommendation (19 MiB, 2 passes, 1 lane):
#: memory-hard, and affordable on a small instance where several workers may hash at once.
#: Raising these later is safe: a login with an older hash upgrades it (``check_needs_rehash``).
ARGON2_PARAMETERS = {"memory_cost": 19456, "time_cost": 2, "parallelism": 1}
_hasher = PasswordHasher(**ARGON2_PARAMETERS)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified when an email has no account, so a miss takes as long as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))


class Gone(LeverError):
    status = 410
    code = "invitation_unavailable"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# -- validation ----------------------------------------------------------------------------

def normalise_email(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("email must be a string", code="invalid_email")
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > EMAIL_CHARS or any(c.isspace() for c in email):
        raise ValidationError("email must look like name@example.com", code="invalid_email")
    return email


def check_password(value: Any) -> str:
    low, high = PASSWORD_CHARS
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise ValidationError(f"the password must have {low} to {high} characters", code="invalid_password")
    return value


def check_role(value: Any, roles: tuple[str, ...]) -> str:
    if value not in roles:
        raise ValidationError(f"role must be one of {', '.join(roles)}", code="invalid_role")
    return value


def key_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > KEY_NAME_CHARS:
        raise ValidationError(f"name must be a string of 1 to {KEY_NAME_CHARS} characters", code="invalid_name")
    return value.strip()


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


# -- accounts ------------------------------------------------------------------------------

def account_principal(account: Account) -> Principal:
    return Principal(actor=account.email, role=account.role, kind="account", account_id=account.id)


def create_account(storage: AccountStore, email: Any, role: Any, password: Any, actor: str,
                   now: float) -> Account:
    email, role = normalise_email(email), check_role(role, ACCOUNT_ROLES)
    entry = AuditEntry(actor=actor, action="account.created", target=email, after={"role": role, "active": True},
                       at=now)
    try:
        return storage.create_account(email, role, hash_password(password), now, audit=entry)
    except DuplicateEmail:
        raise Conflict(f"an account for {email} exists already", code="duplicate_email") from None


def verify_password(storage: AccountStore, email: str, password: str, now: float) -> Account | None:
    """The active account whose password this is, else None (the same work either way)."""
    try:
        email = normalise_email(email)
    except ValidationError:
        email = ""
    account = storage.account_by_email(email) if email else None
    too_long = len(password) > PASSWORD_CHARS[1]  # never a stored password: fail, after the same work
    try:
        _hasher.verify(account.password_hash if account and not too_long else _dummy_hash(),
                       password[:PASSWORD_CHARS[1]])
    except (VerificationError, InvalidHashError):
        return None
    if account is None or too_long or not account.active:
        return None
    if _hasher.check_needs_rehash(account.password_hash):  # parameters were raised since: upgrade silently
        storage.update_account(account.id, now, password_hash=_hasher.hash(password))
    storage.record_login(account.id, now)
    return account


def account_or_404(storage: AccountStore, account_id: int) -> Account:
    account = storage.get_account(account_id) if 0 <= account_id <= MAX_ID else None
    if account is None:
        raise NotFound(f"no account {account_id}", code="account_not_found")
    return account


def change_role(storage: AccountStore, account_id: int, role: Any, actor: str, now: float) -> Account:
    account = account_or_404(storage, account_id)
    role = check_role(role, ACCOUNT_ROLES)
    entry = AuditEntry(actor=actor, action="account.role_changed", target=account.email,
                       before={"role": account.role}, after={"role": role}, at=now)
    return storage.update_account(account_id, now, role=role, audit=entry) or account


def set_active(storage: AccountStore, account_id: int, active: bool, actor: str, now: float) -> Account:
    """Deactivate (every session of the account ends at once) or reactivate."""
    account = account_or_404(storage, account_id)
    entry = AuditEntry(actor=actor, action="account.reactivated" if active else "account.deactivated",
                       target=account.email, before={"active": account.active}, after={"active": active}, at=now)
    return storage.update_account(account_id, now, active=active, end_sessions=not active, audit=entry) or account


def change_password(storage: AccountStore, account_id: int, password: Any, actor: str, now: float) -> Account:
    """A new password ends every session of the account (the caller starts a fresh one)."""
    account = account_or_404(storage, account_id)
    entry = AuditEntry(actor=actor, action="account.password_changed", target=account.email, at=now)
    return storage.update_account(account_id, now, password_hash=hash_password(password), end_sessions=True,
                                  audit=entry) or account


# -- invitations ---------------------------------------------------------------------------

def invite(storage: AccountStore, email: Any, role: Any, actor: str, now: float,
           hours: float = INVITE_HOURS) -> tuple[Invitation, str]:
    """A one-time invitation; returns it with its token (shown once, to put in the link)."""
    email, role = normalise_email(email), check_role(role, ACCOUNT_ROLES)
    if storage.account_by_email(email) is not None:
        raise Conflict(f"an account for {email} exists already", code="duplicate_email")
    token = secrets.token_urlsafe(32)
    expires_at = now + hours * 3600
    entry = AuditEntry(actor=actor, action="account.invited", target=email,
                       after={"role": role, "expires_at": expires_at}, at=now)
    invitation = storage.create_invitation(secret_hash(token), email, role, actor, now, expires_at, audit=entry)
    return invitation, token


def revoke_invitation(storage: AccountStore, invitation_id: int, actor: str, now: float) -> Invitation:
    """Revoke a pending invitation: 404 when there is none, 410 when it was used or had expired."""
    invitation = storage.get_invitation(invitation_id) if 0 <= invitation_id <= MAX_ID else None
    if invitation is None:
        raise NotFound(f"no invitation {invitation_id}", code="invitation_not_found")
    entry = AuditEntry(actor=actor, action="account.invitation_revoked", target=invitation.email,
                       before={"role": invitation.role, "expires_at": invitation.expires_at},
                       after={"expires_at": now}, at=now)
    if not storage.revoke_invitation(invitation_id, now, audit=entry):
        raise Gone(f"the invitation {invitation_id} was used already or has expired", code="invitation_unavailable")
    revoked = storage.get_invitation(invitation_id)
    assert revoked is not None
    return revoked


def pending_invitation(storage: AccountStore, token: str, now: float) -> Invitation:
    invitation = storage.invitation_by_token_hash(secret_hash(token)) if token else None
    if invitation is None or not invitation.pending(now):
        raise Gone("This invitation link was used already, has expired or does not exist. Ask an admin for a new one.")
    return invitation


def accept_invitation(storage: AccountStore, token: str, password: Any, now: float) -> Account:
    invitation = pending_invitation(storage, token, now)
    entry = AuditEntry(actor=invitation.email, action="account.joined", target=invitation.email,
                       after={"role": invitation.role, "invited_by": invitation.created_by}, at=now)
    try:
        return storage.accept_invitation(invitation.id, hash_password(password), now, audit=entry)
    except InvitationUnavailable:
        raise Gone("This invitation link was used already or has expired.") from None
    except DuplicateEmail:
        raise Conflict(f"an account for {invitation.email} exists already", code="duplicate_email") from None


# -- API keys ------------------------------------------------------------------------------

def key_principal(key: ApiKey) -> Principal:
    return Principal(actor=f"key:{key.name}", role=key.role, kind="key", key_id=key.id)


def create_api_key(storage: AccountStore, name: Any, role: Any, actor: str, now: float) -> tuple[ApiKey, str]:
    """A new key; returns it with its secret (``lever_sk_…``), which is never stored nor shown again."""
    name, role = key_name(name), check_role(role, KEY_ROLES)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = secret[:DISPLAY_CHARS]
    entry = AuditEntry(actor=actor, action="api_key.created", target=f"key:{name}",
                       after={"name": name, "role": role, "prefix": prefix}, at=now)
    return storage.create_api_key(name, role, prefix, secret_hash(secret), actor, now, audit=entry), secret


def revoke_api_key(storage: AccountStore, key_id: int, actor: str, now: float) -> ApiKey:
    key = storage.get_api_key(key_id) if 0 <= key_id <= MAX_ID else None
    if key is None:
        raise NotFound(f"no API key {key_id}", code="api_key_not_found")
    entry = AuditEntry(actor=actor, action="api_key.revoked", target=f"key:{key.name}",
                       before={"role": key.role, "revoked_at": None}, after={"revoked_at": now}, at=now)
    revoked = storage.revoke_api_key(key_id, now, audit=entry)
    if revoked is None:
        raise NotFound(f"no API key {key_id}", code="api_key_not_found")
    return revoked


class ApiKeyResolver:
    """Per worker: bearer key → ``Principal`` (None when unknown or revoked), read at most once a TTL."""

    def __init__(self, ttl_s: float = KEY_CACHE_TTL_S, touch_interval_s: float = KEY_TOUCH_INTERVAL_S) -> None:
        self.ttl_s, self.touch_interval_s = ttl_s, touch_interval_s
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._touched: dict[int, float] = {}
        self._lock = threading.Lock()

    def _lookup(self, storage: AccountStore, digest: str) -> ApiKey | None:
        found = storage.api_key_by_hash(digest)
        if found is None:
            return None
        key, stored = found
        return key if hmac.compare_digest(stored.encode(), digest.encode()) and key.active else None

    def principal(self, storage: AccountStore, secret: str, now: float) -> Principal | None:
        if not secret.startswith(KEY_PREFIX) or len(secret) > 128:
            return None
        digest = secret_hash(secret)
        clock = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is None or cached[0] <= clock:
            key = self._lookup(storage, digest)
            with self._lock:
                if len(self._cache) >= KEY_CACHE_SIZE:
                    self._cache.clear()
                self._cache[digest] = (clock + self.ttl_s, key)
        else:
            key = cached[1]
        if key is None:
            return None
        self._touch(storage, key, now)
        return key_principal(key)

    def _touch(self, storage: AccountStore, key: ApiKey, now: float) -> None:
        with self._lock:
            last = max(self._touched.get(key.id, 0.0), key.last_used_at or 0.0)
            if now - last < self.touch_interval_s:
                return
            self._touched[key.id] = now
        storage.touch_api_key(key.id, now, unless_after=now - self.touch_interval_s)

    def forget(self) -> None:
        """Drop everything cached (this worker revoked a key: it is refused here at once)."""
        with self._lock:
            self._cache.clear()
