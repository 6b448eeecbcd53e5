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
  The review app keeps the session server-side (``st.session_state``, and a ``review_sessions``
  row that an HttpOnly cookie finds again after a reload) and takes the reviewer id for every
  rating from it, never from anything the browser sends. A session ends after
  ``idle_timeout`` without activity, and in any case ``MAX_SESSION`` after the login.
- Single sign-on (Streamlit's OpenID Connect login) only proves an email address; ``sso_login``
  maps a verified email to an existing, enabled account. The identity provider never creates
  accounts or roles: an admin links the email first (``tuneloop reviewers add --email``).

Time is injectable (``clock``) so tests can step past a lockout without sleeping.
"""

from __future__ import annotations

import hashlib
import re
import secrets
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
    """Whether the row's lock (an ISO time set by ``Store.finish_login_attempt``) is still on."""
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

    Deciding and counting are one atomic step: an attempt takes a slot of the account's
    ``MAX_FAILURES`` (``Store.reserve_login_attempt``, ``BEGIN IMMEDIATE``) *before* the slow
    Argon2 check, and settles it after (``Store.finish_login_attempt``). Reading the lock state
    first and counting after the check let thirty guesses released together all be checked,
    the right password among them; now the guesses beyond the slots are refused unchecked
    against the real hash, across threads and processes alike.
    """
    hasher = hasher or HASHER
    row = store.reviewer(name) if NAME_PATTERN.fullmatch(name or "") else None
    if row is None or row["password_hash"] == NO_PASSWORD:
        # unknown, or single-sign-on only: guesses at it can neither succeed nor lock it
        _verify(hasher, _dummy_hash(hasher), password)
        raise AuthError(LOGIN_FAILED)
    if not store.reserve_login_attempt(row["id"], MAX_FAILURES, clock()):
        _verify(hasher, _dummy_hash(hasher), password)  # disabled, locked, or no slot left
        raise AuthError(LOGIN_FAILED)
    correct = _verify(hasher, row["password_hash"], password)
    if not store.finish_login_attempt(row["id"], correct=correct, max_failures=MAX_FAILURES,
                                      lockout=LOCKOUT, now=clock()):
        raise AuthError(LOGIN_FAILED)
    if hasher.check_needs_rehash(row["password_hash"]):
        store.update_reviewer(row["id"], password_hash=hasher.hash(password))
    return public({**row, "failed_logins": 0, "locked_until": None})


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
    session_id: int | None = None  # its row in ``review_sessions`` (None: this process only)


def login(store: Store, name: str, password: str, *,
          idle_timeout: timedelta = DEFAULT_IDLE_TIMEOUT, clock: Clock = utc_now,
          hasher: PasswordHasher | None = None) -> Session:
    """Authenticate and open a session (raises ``AuthError`` as ``authenticate`` does)."""
    reviewer = authenticate(store, name, password, clock=clock, hasher=hasher)
    return _open_session(reviewer, idle_timeout, clock(), store=store)


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
    return _open_session(public(row), idle_timeout, clock(), store=store, single_sign_on=True)


def _open_session(reviewer: dict[str, Any], idle_timeout: timedelta, now: datetime, *,
                  store: Store | None = None, single_sign_on: bool = False) -> Session:
    """A new session; with ``store``, also recorded in ``review_sessions`` so that a cookie can
    find it again (reload, new tab) and a logout ends it in every tab."""
    session = Session(reviewer_id=reviewer["id"], name=reviewer["name"], role=reviewer["role"],
                      expires_at=now + idle_timeout, idle_timeout=idle_timeout,
                      ends_at=now + MAX_SESSION, single_sign_on=single_sign_on)
    if store is not None:
        session.session_id = store.add_review_session(
            reviewer["id"], created_at=now, expires_at=session.expires_at,
            ends_at=session.ends_at, single_sign_on=single_sign_on)
    return session


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
    if session.session_id is not None:  # the stored session: shared by every tab holding it
        stored = store.review_session(session_id=session.session_id)
        if stored is None or stored["ended_at"]:
            raise AuthError("You have logged out (in this or another tab): log in again.")
        session.expires_at = max(session.expires_at, _time(stored["expires_at"]))
    if now >= session.expires_at or (session.ends_at is not None and now >= session.ends_at):
        raise AuthError("Your session has expired: log in again.")
    row = store.reviewer_by_id(session.reviewer_id)
    if row is None or row["disabled"] or is_locked(row, now):
        raise AuthError("Your account is disabled or locked: you have been logged out.")
    session.name, session.role = row["name"], row["role"]
    moved = now + session.idle_timeout
    if session.session_id is not None and moved - session.expires_at > TOUCH_EVERY:
        store.touch_review_session(session.session_id, moved)  # one write a minute at most
    session.expires_at = moved
    return public(row)


# ---- sessions that survive a reload --------------------------------------------------------
#
# Streamlit keeps ``st.session_state`` per browser connection: a reload or a new tab starts
# empty. So a login is also a row of ``review_sessions``, found again from an HttpOnly cookie
# that holds a random token (only its SHA-256 is stored). The Python script cannot set a cookie
# (it talks to the browser over a websocket, after the HTTP response), so the cookie is set by a
# small HTTP route next to the app (``tuneloop.review_app.serve``): the script hands the browser
# a one-time grant (random, SHA-256 stored, valid ``GRANT_TTL``, usable once), the browser posts
# it to the route, and the route answers with ``Set-Cookie``. The token itself never reaches
# page script. See docs/review_app.md.

COOKIE_NAME = "tuneloop_session"
GRANT_TTL = timedelta(seconds=60)
TOUCH_EVERY = timedelta(minutes=1)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def issue_grant(store: Store, session: Session, *, clock: Clock = utc_now) -> str:
    """A one-time code the browser trades for the session cookie (``redeem_grant``)."""
    if session.session_id is None:
        raise AuthError("this session is not stored: it cannot be resumed from a cookie")
    grant = secrets.token_urlsafe(32)
    store.set_session_grant(session.session_id, _digest(grant), clock() + GRANT_TTL)
    return grant


def redeem_grant(store: Store, grant: str, *, clock: Clock = utc_now
                 ) -> tuple[str, int] | None:
    """Trade a live grant for a fresh cookie token and its max-age in seconds (the session's
    absolute end); ``None`` for an unknown, used or expired grant."""
    if not isinstance(grant, str) or not grant or len(grant) > 100:
        return None
    token = secrets.token_urlsafe(32)
    now = clock()
    row = store.redeem_session_grant(_digest(grant), _digest(token), now=now)
    if row is None:
        return None
    return token, max(0, int((_time(row["ends_at"]) - now).total_seconds()))


def resume_session(store: Store, token: str | None, *,
                   idle_timeout: timedelta = DEFAULT_IDLE_TIMEOUT,
                   clock: Clock = utc_now) -> Session | None:
    """The live session a cookie's token belongs to (a reload, a new tab), or ``None``."""
    if not isinstance(token, str) or not token or len(token) > 100:
        return None
    row = store.review_session(token_hash=_digest(token))
    now = clock()
    if row is None or row["ended_at"] or _time(row["expires_at"]) <= now \
            or _time(row["ends_at"]) <= now:
        return None
    reviewer = store.reviewer_by_id(row["reviewer_id"])
    if reviewer is None or reviewer["disabled"] or is_locked(reviewer, now):
        return None
    return Session(reviewer_id=reviewer["id"], name=reviewer["name"], role=reviewer["role"],
                   expires_at=_time(row["expires_at"]), idle_timeout=idle_timeout,
                   ends_at=_time(row["ends_at"]), single_sign_on=bool(row["single_sign_on"]),
                   session_id=row["id"])


def logout(store: Store, session: Session | None, *, clock: Clock = utc_now,
           reason: str = "logged out") -> None:
    """End the session in every tab that holds it, and give up the items it had claimed."""
    if session is None:
        return
    if session.session_id is not None:
        store.end_review_sessions(now=clock(), reason=reason, session_id=session.session_id)
    else:
        store.release_leases(session.reviewer_id)


def end_sessions_of(store: Store, reviewer_id: int, reason: str, *,
                    clock: Clock = utc_now) -> int:
    """End every live session of an account (an admin disabled it or reset its password)."""
    return store.end_review_sessions(now=clock(), reason=reason, reviewer_id=reviewer_id)
