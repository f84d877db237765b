"""Accounts, invitations and API keys, written once for both backends (``AccountStore`` mixin).

Every method that changes something takes ``audit`` and writes it in the same
transaction (``app.storage.audit.write_audit``). Secrets arrive hashed; nothing here
sees a password, an invitation token or an API key in the clear.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..domain.accounts import Account, ApiKey, Invitation
from ..domain.audit import AuditEntry
from .base import StorageError
from .sql import SqlStorage, Tx, maybe_audit


class DuplicateEmail(StorageError):
    """An account with this email exists already."""


class InvitationUnavailable(StorageError):
    """The invitation was used already or has expired."""


_ACCOUNT = "id, email, role, password_hash, active, session_generation, created_at, updated_at, last_login_at"
_INVITATION = "id, email, role, created_by, created_at, expires_at, accepted_at"
_KEY = "id, name, role, prefix, created_by, created_at, last_used_at, revoked_at"


def _account(row: Sequence[Any]) -> Account:
    return Account(id=int(row[0]), email=row[1], role=row[2], password_hash=row[3], active=bool(row[4]),
                   session_generation=int(row[5]), created_at=float(row[6]), updated_at=float(row[7]),
                   last_login_at=row[8])


def _invitation(row: Sequence[Any]) -> Invitation:
    return Invitation(id=int(row[0]), email=row[1], role=row[2], created_by=row[3], created_at=float(row[4]),
                      expires_at=float(row[5]), accepted_at=row[6])


def _key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(id=int(row[0]), name=row[1], role=row[2], prefix=row[3], created_by=row[4],
                  created_at=float(row[5]), last_used_at=row[6], revoked_at=row[7])


def _insert_account(tx: Tx, email: str, role: str, password_hash: str, now: float) -> Account:
    inserted = tx.execute(
        "INSERT INTO accounts (email, role, password_hash, active, session_generation, created_at, updated_at) "
        "VALUES (?, ?, ?, 1, 0, ?, ?) ON CONFLICT (email) DO NOTHING", (email, role, password_hash, now, now),
    ).rowcount
    if inserted == 0:
        raise DuplicateEmail(email)
    return _account(tx.execute(f"SELECT {_ACCOUNT} FROM accounts WHERE email = ?", (email,)).fetchone())


class AccountStore(SqlStorage):
    """Mixin of both SQL backends (``_read`` and ``_transact`` are theirs)."""

    # -- accounts ------------------------------------------------------------------------
    def create_account(self, email: str, role: str, password_hash: str, now: float,
                       audit: AuditEntry | None = None) -> Account:
        def body(tx: Tx) -> Account:
            account = _insert_account(tx, email, role, password_hash, now)
            maybe_audit(tx, audit)
            return account

        return self._transact(body)

    def get_account(self, account_id: int) -> Account | None:
        rows = self._read(f"SELECT {_ACCOUNT} FROM accounts WHERE id = ?", (account_id,))
        return _account(rows[0]) if rows else None

    def account_by_email(self, email: str) -> Account | None:
        rows = self._read(f"SELECT {_ACCOUNT} FROM accounts WHERE email = ?", (email,))
        return _account(rows[0]) if rows else None

    def list_accounts(self) -> list[Account]:
        return [_account(row) for row in self._read(f"SELECT {_ACCOUNT} FROM accounts ORDER BY id")]

    def update_account(self, account_id: int, now: float, *, role: str | None = None, active: bool | None = None,
                       password_hash: str | None = None, end_sessions: bool = False,
                       audit: AuditEntry | None = None) -> Account | None:
        """Change what is given; ``end_sessions`` raises the session generation (every session ends)."""
        def body(tx: Tx) -> Account | None:
            changed = tx.execute(
                "UPDATE accounts SET role = COALESCE(?, role), active = COALESCE(?, active), "
                "password_hash = COALESCE(?, password_hash), session_generation = session_generation + ?, "
                "updated_at = ? WHERE id = ?",
                (role, None if active is None else int(active), password_hash, int(end_sessions), now, account_id),
            ).rowcount
            if changed == 0:
                return None
            maybe_audit(tx, audit)
            return _account(tx.execute(f"SELECT {_ACCOUNT} FROM accounts WHERE id = ?", (account_id,)).fetchone())

        return self._transact(body)

    def record_login(self, account_id: int, now: float) -> None:
        self._transact(lambda tx: tx.execute("UPDATE accounts SET last_login_at = ? WHERE id = ?",
                                             (now, account_id)), idempotent=True)

    # -- invitations ----------------------------------------------------------------------
    def create_invitation(self, token_hash: str, email: str, role: str, created_by: str, now: float,
                          expires_at: float, audit: AuditEntry | None = None) -> Invitation:
        def body(tx: Tx) -> Invitation:
            invitation_id = tx.insert(
                "INSERT INTO invitations (token_hash, email, role, created_by, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (token_hash, email, role, created_by, now, expires_at),
            )
            maybe_audit(tx, audit)
            return Invitation(id=invitation_id, email=email, role=role, created_by=created_by, created_at=now,
                              expires_at=expires_at)

        return self._transact(body)

    def invitation_by_token_hash(self, token_hash: str) -> Invitation | None:
        rows = self._read(f"SELECT {_INVITATION} FROM invitations WHERE token_hash = ?", (token_hash,))
        return _invitation(rows[0]) if rows else None

    def list_invitations(self) -> list[Invitation]:
        return [_invitation(row) for row in
                self._read(f"SELECT {_INVITATION} FROM invitations ORDER BY id DESC LIMIT 100")]

    def accept_invitation(self, invitation_id: int, password_hash: str, now: float,
                          audit: AuditEntry | None = None) -> Account:
        """Use the invitation once, before it expires: its account is created in the same transaction."""
        def body(tx: Tx) -> Account:
            used = tx.execute("UPDATE invitations SET accepted_at = ? WHERE id = ? AND accepted_at IS NULL "
                              "AND expires_at > ?", (now, invitation_id, now)).rowcount
            if used == 0:
                raise InvitationUnavailable(str(invitation_id))
            email, role = tx.execute("SELECT email, role FROM invitations WHERE id = ?", (invitation_id,)).fetchone()
            account = _insert_account(tx, email, role, password_hash, now)
            maybe_audit(tx, audit)
            return account

        return self._transact(body)

    def revoke_invitation(self, invitation_id: int, now: float, audit: AuditEntry | None = None) -> bool:
        """End a pending invitation now (its link stops working); False when it was used, had expired
        or does not exist. The audit line is written in the same transaction."""
        def body(tx: Tx) -> bool:
            ended = tx.execute("UPDATE invitations SET expires_at = ? WHERE id = ? AND accepted_at IS NULL "
                               "AND expires_at > ?", (now, invitation_id, now)).rowcount
            if ended:
                maybe_audit(tx, audit)
            return bool(ended)

        return self._transact(body)

    def get_invitation(self, invitation_id: int) -> Invitation | None:
        rows = self._read(f"SELECT {_INVITATION} FROM invitations WHERE id = ?", (invitation_id,))
        return _invitation(rows[0]) if rows else None

    # -- API keys ------------------------------------------------------------------------
    def create_api_key(self, name: str, role: str, prefix: str, secret_hash: str, created_by: str, now: float,
                       audit: AuditEntry | None = None) -> ApiKey:
        def body(tx: Tx) -> ApiKey:
            key_id = tx.insert(
                "INSERT INTO api_keys (name, role, prefix, secret_hash, created_by, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (name, role, prefix, secret_hash, created_by, now),
            )
            maybe_audit(tx, audit)
            return ApiKey(id=key_id, name=name, role=role, prefix=prefix, created_by=created_by, created_at=now)

        return self._transact(body)

    def list_api_keys(self) -> list[ApiKey]:
        return [_key(row) for row in self._read(f"SELECT {_KEY} FROM api_keys ORDER BY id")]

    def get_api_key(self, key_id: int) -> ApiKey | None:
        rows = self._read(f"SELECT {_KEY} FROM api_keys WHERE id = ?", (key_id,))
        return _key(rows[0]) if rows else None

    def api_key_by_hash(self, secret_hash: str) -> tuple[ApiKey, str] | None:
        """The key stored under ``secret_hash`` with the stored hash (for a constant-time comparison)."""
        rows = self._read(f"SELECT {_KEY}, secret_hash FROM api_keys WHERE secret_hash = ?",
                          (secret_hash,))
        return (_key(rows[0][:-1]), rows[0][-1]) if rows else None

    def revoke_api_key(self, key_id: int, now: float, audit: AuditEntry | None = None) -> ApiKey | None:
        """Revoke (once: revoking a revoked key changes nothing and logs nothing); None if there is no such key."""
        def body(tx: Tx) -> ApiKey | None:
            if tx.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                          (now, key_id)).rowcount:
                maybe_audit(tx, audit)
            row = tx.execute(f"SELECT {_KEY} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            return _key(row) if row else None

        return self._transact(body)

    def touch_api_key(self, key_id: int, now: float, unless_after: float) -> None:
        """Record a use, unless one after ``unless_after`` is recorded already (another worker's)."""
        self._transact(lambda tx: tx.execute(
            "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
            (now, key_id, unless_after)), idempotent=True)
