"""Team pages: accounts and invitations, API keys, a person's own password, invitation links.

Admins invite people with a one-time link (shown once, to send by hand; it expires after
``accounts.INVITE_HOURS``), change roles and deactivate accounts (which ends their sessions
at once), and create and revoke API keys (the secret is shown once). Every change goes
through ``app.service.accounts`` and so into the audit log. The pages share the report's
CSRF check and security headers (strict CSP: no inline scripts or styles).
"""
from __future__ import annotations

import time

from flask import Blueprint, flash, redirect, request, url_for

from ..domain.errors import LeverError
from ..service import accounts, audit
from ..service.permissions import (
    ACCOUNT_ROLES,
    ACCOUNTS_MANAGE,
    AUDIT_READ,
    KEY_ROLES,
    KEYS_MANAGE,
    REPORTS_READ,
)
from . import session_auth
from .auth import current_actor, current_principal, key_resolver, public, require
from .db import get_storage
from .report import check_form_csrf, render_page, security_headers

bp = Blueprint("team", __name__, template_folder="templates")
bp.before_request(check_form_csrf)
bp.after_request(security_headers)

#: audit entries on the team page
RECENT_CHANGES = 30


def invitation_url(token: str) -> str:
    return url_for("team.accept_invitation", token=token, _external=True)


def _team_page(status: int = 200, **context):
    storage = get_storage()
    principal = current_principal()
    return render_page(
        "report/team.html", status,
        accounts=storage.list_accounts(), invitations=storage.list_invitations(), api_keys=storage.list_api_keys(),
        account_roles=ACCOUNT_ROLES, key_roles=KEY_ROLES, now=time.time(),
        changes=audit.history(storage, limit=RECENT_CHANGES) if principal and principal.may(AUDIT_READ) else [],
        action_labels=audit.ACTIONS, **context,
    )


@bp.get("/team")
@require(ACCOUNTS_MANAGE)
def team():
    return _team_page()


@bp.post("/team/invitations")
@require(ACCOUNTS_MANAGE)
def invite():
    try:
        invitation, token = accounts.invite(get_storage(), request.form.get("email"), request.form.get("role"),
                                            current_actor(), time.time())
    except LeverError as error:
        return _team_page(error.status, error=error.message)
    return _team_page(invited=invitation, invite_link=invitation_url(token))


@bp.post("/team/invitations/<int:invitation_id>/revoke")
@require(ACCOUNTS_MANAGE)
def revoke_invitation(invitation_id: int):
    invitation = accounts.revoke_invitation(get_storage(), invitation_id, current_actor(), time.time())
    flash(f"Revoked the invitation of {invitation.email}: its link no longer works.", "success")
    return redirect(url_for("team.team"), code=303)


@bp.post("/team/accounts/<int:account_id>/role")
@require(ACCOUNTS_MANAGE)
def change_role(account_id: int):
    account = accounts.change_role(get_storage(), account_id, request.form.get("role"), current_actor(), time.time())
    flash(f"{account.email} is now {account.role}.", "success")
    return redirect(url_for("team.team"), code=303)


@bp.post("/team/accounts/<int:account_id>/active")
@require(ACCOUNTS_MANAGE)
def set_active(account_id: int):
    active = request.form.get("active") == "1"
    account = accounts.set_active(get_storage(), account_id, active, current_actor(), time.time())
    flash(f"{account.email} is {'active again' if active else 'deactivated: logged out everywhere'}.", "success")
    return redirect(url_for("team.team"), code=303)


@bp.post("/team/api-keys")
@require(KEYS_MANAGE)
def create_key():
    try:
        key, secret = accounts.create_api_key(get_storage(), request.form.get("name"), request.form.get("role"),
                                              current_actor(), time.time())
    except LeverError as error:
        return _team_page(error.status, error=error.message)
    return _team_page(new_key=key, new_secret=secret)


@bp.post("/team/api-keys/<int:key_id>/revoke")
@require(KEYS_MANAGE)
def revoke_key(key_id: int):
    key = accounts.revoke_api_key(get_storage(), key_id, current_actor(), time.time())
    key_resolver().forget()
    flash(f"Revoked the key {key.name}: every server refuses it within a second.", "success")
    return redirect(url_for("team.team"), code=303)



# -- a person's own account ------------------------------------------------------------------


@bp.route("/account", methods=["GET", "POST"])
@require(REPORTS_READ)
def account():
    """Change one's own password (every other session of the account ends; this one goes on)."""
    principal = current_principal()
    error = None
    if request.method == "POST" and principal is not None and principal.account_id is not None:
        storage = get_storage()
        current = accounts.account_or_404(storage, principal.account_id)
        now = time.time()
        if accounts.verify_password(storage, current.email, request.form.get("current_password", ""), now) is None:
            error = "The current password is not right."
        else:
            try:
                updated = accounts.change_password(storage, current.id, request.form.get("new_password"),
                                                   current_actor(), now)
            except LeverError as failure:
                error = failure.message
            else:
                session_auth.log_in_account(updated)
                flash("Password changed: every other session of this account has ended.", "success")
                return redirect(url_for("team.account"), code=303)
    return render_page("report/account.html", 400 if error else 200, error=error)


# -- invitation links (public: the token is the credential) -------------------------------------


@bp.route("/invite/<token>", methods=["GET", "POST"])
@public
def accept_invitation(token: str):
    storage = get_storage()
    now = time.time()
    invitation = accounts.pending_invitation(storage, token, now)  # 410 page when used or expired
    error = None
    if request.method == "POST":
        if request.form.get("password") != request.form.get("password_again"):
            error = "The two passwords differ."
        else:
            try:
                created = accounts.accept_invitation(storage, token, request.form.get("password"), now)
            except LeverError as failure:
                error = failure.message
            else:
                session_auth.log_in_account(created)
                flash(f"Welcome, {created.email}: you are {created.role}.", "success")
                return redirect(url_for("report.index"), code=303)
    return render_page("report/invite.html", 400 if error else 200, invitation=invitation, error=error,
                       min_password=accounts.PASSWORD_CHARS[0])
