"""Who may do what: the one role table (README "Teams" shows the same table).

Roles, least privilege first. ``ingest`` is for API keys of backends that send
conversions and events server-side; people get ``viewer``, ``editor`` or ``admin``.
Every admin route and page declares one permission (``app.web.auth.require``); a role
may call it when the permission is in the role's set. ``tests/test_teams_roles.py``
walks the URL map and fails on a route that declares none.
"""
from __future__ import annotations

from dataclasses import dataclass

#: read reports, statistics, the policy view and aggregate exports (stats JSON)
REPORTS_READ = "reports.read"
#: the raw event log of an experiment (one row per assignment)
EVENTS_EXPORT = "events.export"
#: server-side rewards and events addressed by visitor id (not by a signed token)
EVENTS_INGEST = "events.ingest"
#: create and change experiments: pause, resume, stop, declare a winner, guardrail actions
EXPERIMENTS_WRITE = "experiments.write"
#: create and change metrics of the catalogue
METRICS_WRITE = "metrics.write"
#: one visitor's data: export (data-subject access) and erasure
VISITORS_MANAGE = "visitors.manage"
#: accounts and invitations
ACCOUNTS_MANAGE = "accounts.manage"
#: API keys: create, list, revoke
KEYS_MANAGE = "keys.manage"
#: the whole audit log (each experiment's own history is on its report page, reports.read)
AUDIT_READ = "audit.read"
#: settings and integrations (webhooks, …)
SETTINGS_MANAGE = "settings.manage"
#: what only admins may do and nothing more specific names (``admin_required``)
ADMIN = "admin"

_VIEWER = frozenset({REPORTS_READ})
_EDITOR = _VIEWER | {EVENTS_EXPORT, EVENTS_INGEST, EXPERIMENTS_WRITE, METRICS_WRITE}
_ADMIN = _EDITOR | {VISITORS_MANAGE, ACCOUNTS_MANAGE, KEYS_MANAGE, AUDIT_READ, SETTINGS_MANAGE, ADMIN}

#: role -> the permissions it holds (least privilege first)
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "ingest": frozenset({EVENTS_INGEST}),
    "viewer": _VIEWER,
    "editor": _EDITOR,
    "admin": _ADMIN,
}

PERMISSIONS: frozenset[str] = frozenset().union(*ROLE_PERMISSIONS.values())
#: roles an API key may have; accounts (people) never get ``ingest``
KEY_ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)
ACCOUNT_ROLES: tuple[str, ...] = ("viewer", "editor", "admin")
#: the role of LEVER_ADMIN_TOKEN, the bootstrap owner key
OWNER_ROLE = "admin"


def allows(role: str | None, permission: str) -> bool:
    """Whether ``role`` holds ``permission`` (an unknown role holds nothing)."""
    return permission in ROLE_PERMISSIONS.get(role or "", frozenset())


def roles_with(permission: str) -> tuple[str, ...]:
    """The roles holding ``permission``, least privilege first (for error messages and docs)."""
    return tuple(role for role, held in ROLE_PERMISSIONS.items() if permission in held)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin token (the bootstrap owner), an API key or a person's account."""

    #: how the audit log names them: "admin-token", "key:<name>" or the account's email
    actor: str
    role: str
    #: "token", "key" or "account"
    kind: str
    account_id: int | None = None
    key_id: int | None = None

    def may(self, permission: str) -> bool:
        return allows(self.role, permission)


OWNER = Principal(actor="admin-token", role=OWNER_ROLE, kind="token")
