"""Reviewer accounts: Argon2id password hashes, lockout after repeated failures, sessions.

Why it is built this way:
- Argon2id (argon2-cffi's ``PasswordHasher``) is memory-hard, so a stolen database does not give
  up passwords to a GPU farm; the parameters live in the hash, and a login with an older,
  weaker hash rehashes it with the current ones.
- Every failed login gives the same message, and an unknown name is checked against a dummy
  hash, so neither the message nor (roughly) the time tells whether a name exists.
- After ``MAX_FAILURES`` failures an account is locked for ``LOCKOUT``: online guessing stops,
  and the owner is back after a coffee rather than after an admin.
- A ``Session`` holds only who logged in and until when; ``current_reviewer`` re-reads the
  reviewer row on every request, so disabling or locking an account logs it out at once.
  The review app keeps the session server-side (``st.session_state``) and takes the reviewer id
  for every rating from it, never from anything the browser sends. A session ends after
  ``idle_timeout`` without activity, and in any case ``MAX_SESSION`` after the login.
- Single sign-on (Streamlit's OpenID Connect login) only proves an email address; ``sso_login``
  maps a verified email to an existing, enabled account. The identity provider never creates
  accounts or roles: an admin links the email first (``tuneloop reviewers add --email``).

Time is injectable (``clock``) so tests can step past a lockout without sleeping.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tuneloop.errors import AuthError

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.store import Store

ROLES: tuple[str, ...] = ("expert", "admin")
MIN_PASSWORD_LENGTH = 8
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
DEFAULT_IDLE_TIMEOUT = timedelta(hours=8)
MAX_SESSION = timedelta(hours=24)
NO_PASSWORD = "!no-password: single sign-on only"  # never verifies: not an Argon2 hash
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
EMAIL_PATTERN = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,63}")

# One message for every failed login: it must not tell an unknown name from a wrong password.
LOGIN_FAILED = (f"Login failed: wrong name or password, or the account is locked "
                f"({MAX_FAILURES} failed attempts lock it for "
                f"{int(LOCKOUT.total_seconds() // 60)} minutes).")

Clock = Callable[[], datetime]

# RFC 9106 "low memory" profile: Argon2id, 64 MiB, 3 passes, 4 lanes (~0.1 s on one core).
HASHER = PasswordHasher()
_dummy_hashes: dict[tuple, str] = {}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def public(row: dict[str, Any]) -> dict[str, Any]:
    """The reviewer row without its password hash: what callers outside this module may see."""
    return {key: value for key, value in row.items() if key != "password_hash"}


def is_locked(row: dict[str, Any], now: datetime) -> bool:
    """Whether the row's lock (an ISO time set by ``Store.record_login_failure``) is still on."""
    if not row.get("locked_until"):
        return False
    until = datetime.fromisoformat(row["locked_until"])
    if until.tzinfo is None:
        until = until.replace(tzinfo=timezone.utc)
    return until > now


# ---- accounts ------------------------------------------------------------------------------


def check_name(name: str) -> None:
    """Refuse a name outside ``[A-Za-z0-9._-]{1,64}`` (the CLI checks before asking a password)."""
    if not NAME_PATTERN.fullmatch(name):
        raise AuthError("reviewer name must be 1-64 characters of letters, digits, '.', '_' "
                        "or '-'")


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")


def check_role(role: str) -> None:
    if role not in ROLES:
        raise AuthError(f'role must be one of {", ".join(ROLES)}, not "{role}"')


def check_email(email: str) -> str:
    """A plausible email address, lower-cased (identity providers vary the case)."""
    email = email.strip().lower()
    if not EMAIL_PATTERN.fullmatch(email):
        raise AuthError(f'"{email[:80]}" is not an email address')
    return email


def create_reviewer(store: Store, name: str, password: str | None, role: str = "expert", *,
                    email: str | None = None, hasher: PasswordHasher | None = None) -> int:
    """Add a reviewer account and return its id.

    Names are restricted to ``[A-Za-z0-9._-]{1,64}`` so they are safe to show anywhere (tables,
    logs, the app: no markup, no control characters) and cannot imitate another name with
    look-alike Unicode letters. ``password=None`` makes a single-sign-on-only account (it needs
    an ``email``): no password ever logs it in.
    """
    check_name(name)
    if password is None and email is None:
        raise AuthError("an account without a password needs an email for single sign-on")
    if password is not None:
        check_password(password)
    check_role(role)
    if email is not None:
        email = check_email(email)
    if store.reviewer(name) is not None:
        raise AuthError(f'reviewer "{name}" already exists')
    if email is not None and reviewer_by_email(store, email) is not None:
        raise AuthError(f"another reviewer already has the email {email}")
    password_hash = (hasher or HASHER).hash(password) if password is not None else NO_PASSWORD
    try:
        reviewer_id = store.add_reviewer(name, password_hash, role)
    except sqlite3.IntegrityError:  # another process added the same name meanwhile
        raise AuthError(f'reviewer "{name}" already exists') from None
    if email is not None:
        store.update_reviewer(reviewer_id, email=email)
    return reviewer_id


def _account(store: Store, name: str) -> dict[str, Any]:
    row = store.reviewer(name) if NAME_PATTERN.fullmatch(name or "") else None
    if row is None:
        raise AuthError(f'no reviewer "{name}"')
    return row


def set_password(store: Store, name: str, password: str, *,
                 hasher: PasswordHasher | None = None) -> None:
    """Give an account a new password; also lifts a lockout (the owner is back at once)."""
    check_password(password)
    row = _account(store, name)
    store.update_reviewer(row["id"], password_hash=(hasher or HASHER).hash(password),
                          failed_logins=0, locked_until=None)


def set_role(store: Store, name: str, role: str) -> None:
    """Make an account an expert or an admin; an open session sees the change at its next
    click (``current_reviewer`` re-reads the role)."""
    check_role(role)
    store.update_reviewer(_account(store, name)["id"], role=role)


def set_email(store: Store, name: str, email: str | None) -> None:
    """Link an account to the email its single sign-on identity proves (``None`` unlinks)."""
    row = _account(store, name)
    if email is not None:
        email = check_email(email)
        other = reviewer_by_email(store, email)
        if other is not None and other["id"] != row["id"]:
            raise AuthError(f"another reviewer already has the email {email}")
    try:
        store.update_reviewer(row["id"], email=email)
    except sqlite3.IntegrityError:
        raise AuthError(f"another reviewer already has the email {email}") from None


def reviewer_by_email(store: Store, email: str) -> dict[str, Any] | None:
    return store.one("SELECT * FROM reviewers WHERE lower(email) = ?", [email.strip().lower()])


def authenticate(store: Store, name: str, password: str, *, clock: Clock = utc_now,
                 hasher: PasswordHasher | None = None) -> dict[str, Any]:
    """Check a name and password; return the reviewer row (without the hash).

    Raises ``AuthError(LOGIN_FAILED)`` for every kind of failure: unknown name, wrong password,
    locked or disabled account. The password is always verified against some hash first, so the
    time taken does not tell these cases apart. A wrong password counts towards the lockout;
    attempts made while the account is locked do not (they would only extend the lock).
    """
    hasher = hasher or HASHER
    row = store.reviewer(name) if NAME_PATTERN.fullmatch(name or "") else None
    if row is None:
        _verify(hasher, _dummy_hash(hasher), password)
        raise AuthError(LOGIN_FAILED)
    sign_on_only = row["password_hash"] == NO_PASSWORD
    correct = _verify(hasher, _dummy_hash(hasher) if sign_on_only else row["password_hash"],
                      password) and not sign_on_only
    if row["disabled"] or is_locked(row, clock()) or sign_on_only:
        raise AuthError(LOGIN_FAILED)  # guesses at a sign-on-only account cannot lock it
    if not correct:
        store.record_login_failure(row["id"], MAX_FAILURES, LOCKOUT)
        raise AuthError(LOGIN_FAILED)
    changes: dict[str, Any] = {}
    if row["failed_logins"] or row["locked_until"]:
        changes.update(failed_logins=0, locked_until=None)
    if hasher.check_needs_rehash(row["password_hash"]):
        changes["password_hash"] = hasher.hash(password)
    if changes:
        store.update_reviewer(row["id"], **changes)
        row = {**row, **changes}
    return public(row)


def _verify(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash with the hasher's parameters, so verifying against it costs what a real one does."""
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len,
           hasher.salt_len, hasher.type)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = hasher.hash("not a password: used for names that do not exist")
    return _dummy_hashes[key]


# ---- sessions ------------------------------------------------------------------------------


@dataclass
class Session:
    """Who is logged in, and until when. Lives server-side; holds no secret.

    ``expires_at`` moves forward by ``idle_timeout`` on every request (``current_reviewer``),
    so an abandoned browser tab stops working after ``idle_timeout`` of inactivity.
    """

    reviewer_id: int
    name: str
    role: str
    expires_at: datetime
    idle_timeout: timedelta = DEFAULT_IDLE_TIMEOUT
    ends_at: datetime | None = None  # the absolute end, whatever the activity
    single_sign_on: bool = False


def login(store: Store, name: str, password: str, *,
          idle_timeout: timedelta = DEFAULT_IDLE_TIMEOUT, clock: Clock = utc_now,
          hasher: PasswordHasher | None = None) -> Session:
    """Authenticate and open a session (raises ``AuthError`` as ``authenticate`` does)."""
    reviewer = authenticate(store, name, password, clock=clock, hasher=hasher)
    return _open_session(reviewer, idle_timeout, clock())


def sso_login(store: Store, email: str | None, *, email_verified: bool | None = None,
              idle_timeout: timedelta = DEFAULT_IDLE_TIMEOUT, clock: Clock = utc_now) -> Session:
    """Open a session for the account linked to an identity provider's email.

    Refused (``AuthError``) when the provider says the email is unverified, when no account has
    the email, or when that account is disabled or locked: the provider proves who someone is,
    the account decides whether they may review.
    """
    if not email or email_verified is False:
        raise AuthError("Single sign-on gave no verified email address.")
    row = reviewer_by_email(store, email)
    if row is None:
        raise AuthError("No reviewer account is linked to this identity; ask an admin to add "
                        "one with your email.")
    if row["disabled"] or is_locked(row, clock()):
        raise AuthError("Your account is disabled or locked.")
    session = _open_session(public(row), idle_timeout, clock())
    session.single_sign_on = True
    return session


def _open_session(reviewer: dict[str, Any], idle_timeout: timedelta, now: datetime) -> Session:
    return Session(reviewer_id=reviewer["id"], name=reviewer["name"], role=reviewer["role"],
                   expires_at=now + idle_timeout, idle_timeout=idle_timeout,
                   ends_at=now + MAX_SESSION)


def current_reviewer(store: Store, session: Session | None, *,
                     clock: Clock = utc_now) -> dict[str, Any]:
    """The session's reviewer, re-read from the database; call it on every request.

    Raises ``AuthError`` when there is no session, it has been idle too long, or the account has
    since been removed, disabled or locked; the caller then drops the session. Otherwise extends
    the idle expiry and refreshes the session's role (an admin may have changed it).
    """
    if session is None:
        raise AuthError("Not logged in.")
    now = clock()
    if now >= session.expires_at or (session.ends_at is not None and now >= session.ends_at):
        raise AuthError("Your session has expired: log in again.")
    row = store.reviewer_by_id(session.reviewer_id)
    if row is None or row["disabled"] or is_locked(row, now):
        raise AuthError("Your account is disabled or locked: you have been logged out.")
    session.name, session.role = row["name"], row["role"]
    session.expires_at = now + session.idle_timeout
    return public(row)
