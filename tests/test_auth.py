"""Reviewer accounts: Argon2id hashes, uniform login failures, lockout, disabling, rehash,
sessions, and the ``tuneloop reviewers`` commands."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from tuneloop import auth
from tuneloop.auth import (LOGIN_FAILED, Session, authenticate, create_reviewer,
                           current_reviewer, login)
from tuneloop.errors import AuthError
from tuneloop.store import Store

PASSWORD = "correct horse"


class Clock:
    """A settable clock, so a 15-minute lockout passes without sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch):
    """Cheap Argon2id parameters keep the suite fast; the real ones are checked on their own."""
    monkeypatch.setattr(auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "auth.db") as store:
        yield store


@pytest.fixture
def ann(store) -> int:
    return create_reviewer(store, "ann", PASSWORD)


def test_default_hasher_is_memory_hard_argon2id():
    from argon2 import Type

    hasher = auth.PasswordHasher()  # what auth.HASHER is outside this test module
    assert hasher.type is Type.ID and hasher.memory_cost >= 64 * 1024 and hasher.time_cost >= 3


def test_password_is_stored_as_argon2id_never_in_clear(store, ann):
    row = store.reviewer_by_id(ann)
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in row["password_hash"]
    assert row["role"] == "expert"
    assert "password_hash" not in authenticate(store, "ann", PASSWORD)


@pytest.mark.parametrize("name, password, role, message", [
    ("", PASSWORD, "expert", "1-64 characters"),
    ("a" * 65, PASSWORD, "expert", "1-64 characters"),
    ("ann smith", PASSWORD, "expert", "1-64 characters"),
    ("<b>ann</b>", PASSWORD, "expert", "1-64 characters"),
    ("ann", "short", "expert", "at least 8"),
    ("ann", PASSWORD, "owner", "role must be one of expert, admin"),
])
def test_account_rules(store, name, password, role, message):
    with pytest.raises(AuthError, match=message):
        create_reviewer(store, name, password, role)
    assert store.reviewers() == []


def test_duplicate_name_is_a_one_line_auth_error(store, ann):
    with pytest.raises(AuthError) as caught:
        create_reviewer(store, "ann", "another password", "admin")
    assert str(caught.value) == 'reviewer "ann" already exists'


def test_wrong_password_and_unknown_name_fail_alike(store, ann):
    with pytest.raises(AuthError) as wrong:
        authenticate(store, "ann", "wrong password")
    with pytest.raises(AuthError) as unknown:
        authenticate(store, "nobody", PASSWORD)
    with pytest.raises(AuthError) as invalid:
        authenticate(store, "no such name!", PASSWORD)
    assert str(wrong.value) == str(unknown.value) == str(invalid.value) == LOGIN_FAILED
    assert store.reviewer_by_id(ann)["failed_logins"] == 1


def test_unknown_name_is_verified_against_a_dummy_hash(store, monkeypatch):
    verified = []
    real = PasswordHasher.verify
    monkeypatch.setattr(PasswordHasher, "verify",
                        lambda self, hash, password: verified.append(hash) or real(
                            self, hash, password))
    with pytest.raises(AuthError):
        authenticate(store, "nobody", PASSWORD)
    assert len(verified) == 1 and verified[0].startswith("$argon2id$")


def test_lockout_after_five_failures_until_the_lock_passes(store, ann):
    clock = Clock()
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(AuthError):
            authenticate(store, "ann", "wrong password", clock=clock)
    locked_until = store.reviewer_by_id(ann)["locked_until"]
    assert locked_until is not None
    # Locked: even the right password fails, with the same message; guesses made during the
    # lock neither count nor extend it.
    clock.advance(minutes=14)
    for password in (PASSWORD, "wrong password"):
        with pytest.raises(AuthError) as caught:
            authenticate(store, "ann", password, clock=clock)
        assert str(caught.value) == LOGIN_FAILED
    row = store.reviewer_by_id(ann)
    assert row["locked_until"] == locked_until and row["failed_logins"] == 0
    clock.advance(minutes=2)
    assert authenticate(store, "ann", PASSWORD, clock=clock)["name"] == "ann"
    row = store.reviewer_by_id(ann)
    assert row["failed_logins"] == 0 and row["locked_until"] is None


def test_success_resets_the_failure_count(store, ann):
    for _ in range(auth.MAX_FAILURES - 1):
        with pytest.raises(AuthError):
            authenticate(store, "ann", "wrong password")
    authenticate(store, "ann", PASSWORD)
    assert store.reviewer_by_id(ann)["failed_logins"] == 0
    # Four more failures do not lock: the count started again.
    for _ in range(auth.MAX_FAILURES - 1):
        with pytest.raises(AuthError):
            authenticate(store, "ann", "wrong password")
    assert authenticate(store, "ann", PASSWORD)["id"] == ann


def test_disabled_account_cannot_log_in(store, ann):
    store.update_reviewer(ann, disabled=1)
    with pytest.raises(AuthError) as caught:
        authenticate(store, "ann", PASSWORD)
    assert str(caught.value) == LOGIN_FAILED


def test_weak_hash_is_rehashed_on_login(store):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    reviewer_id = create_reviewer(store, "bea", PASSWORD, hasher=weak)
    old_hash = store.reviewer_by_id(reviewer_id)["password_hash"]
    assert "m=8,t=1,p=1" in old_hash
    strong = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    authenticate(store, "bea", PASSWORD, hasher=strong)
    new_hash = store.reviewer_by_id(reviewer_id)["password_hash"]
    assert new_hash.startswith("$argon2id$") and "m=2048,t=2,p=1" in new_hash
    assert not strong.check_needs_rehash(new_hash)
    assert authenticate(store, "bea", PASSWORD, hasher=strong)["id"] == reviewer_id
    with pytest.raises(AuthError):
        authenticate(store, "bea", "wrong password", hasher=strong)


def test_session_rereads_the_account_on_every_request(store, ann):
    clock = Clock()
    session = login(store, "ann", PASSWORD, idle_timeout=timedelta(minutes=30), clock=clock)
    assert isinstance(session, Session) and session.reviewer_id == ann
    assert current_reviewer(store, session, clock=clock)["id"] == ann
    store.update_reviewer(ann, role="admin")
    assert current_reviewer(store, session, clock=clock)["role"] == "admin"
    assert session.role == "admin"
    store.update_reviewer(ann, disabled=1)
    with pytest.raises(AuthError, match="disabled or locked"):
        current_reviewer(store, session, clock=clock)
    store.update_reviewer(ann, disabled=0,
                          locked_until=(clock.now + timedelta(minutes=5)).isoformat())
    with pytest.raises(AuthError, match="disabled or locked"):
        current_reviewer(store, session, clock=clock)
    with pytest.raises(AuthError, match="Not logged in"):
        current_reviewer(store, None)


def test_session_expires_after_the_idle_timeout_and_activity_extends_it(store, ann):
    clock = Clock()
    session = login(store, "ann", PASSWORD, idle_timeout=timedelta(minutes=30), clock=clock)
    clock.advance(minutes=25)
    current_reviewer(store, session, clock=clock)  # activity: another 30 minutes from now
    clock.advance(minutes=25)
    current_reviewer(store, session, clock=clock)
    clock.advance(minutes=31)
    with pytest.raises(AuthError, match="expired"):
        current_reviewer(store, session, clock=clock)


def test_default_idle_timeout_is_eight_hours(store, ann):
    assert login(store, "ann", PASSWORD).idle_timeout == timedelta(hours=8)


# ---- tuneloop reviewers ----------------------------------------------------------------------


def run_cli(*args: str, input: str | None = None):
    from tuneloop.cli import cli

    return CliRunner().invoke(cli, list(args), input=input)


def test_reviewers_add_and_list(tmp_path):
    db = str(tmp_path / "project.db")
    added = run_cli("reviewers", "add", "ann", "--db", db, "--password-stdin",
                    input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    admin = run_cli("reviewers", "add", "bob", "--role", "admin", "--db", db,
                    input="hidden pass\nhidden pass\n")  # prompted twice
    assert admin.exit_code == 0, admin.output
    assert "hidden pass" not in admin.output
    with Store(db) as store:
        assert authenticate(store, "ann", PASSWORD)["role"] == "expert"
        assert authenticate(store, "bob", "hidden pass")["role"] == "admin"
        store.update_reviewer(store.reviewer("bob")["id"], disabled=1)
    listed = run_cli("reviewers", "list", "--db", db)
    assert listed.exit_code == 0, listed.output
    cells = [[cell.strip() for cell in line.strip().strip("│").split("│")]
             for line in listed.output.splitlines() if line.startswith("│")]
    # name, role, ratings, locked, disabled
    assert cells == [["ann", "expert", "0", "no", "no"], ["bob", "admin", "0", "no", "yes"]]


def test_reviewers_add_errors_are_one_line_exit_2(tmp_path):
    db = str(tmp_path / "project.db")
    assert run_cli("reviewers", "add", "ann", "--db", db, "--password-stdin",
                   input=PASSWORD + "\n").exit_code == 0
    duplicate = run_cli("reviewers", "add", "ann", "--db", db, "--password-stdin",
                        input=PASSWORD + "\n")
    assert duplicate.exit_code == 2
    assert duplicate.output.strip() == 'Error: reviewer "ann" already exists'
    short = run_cli("reviewers", "add", "cy", "--db", db, "--password-stdin", input="short\n")
    assert short.exit_code == 2 and "at least 8 characters" in short.output
    mismatch = run_cli("reviewers", "add", "di", "--db", db, input="first pass\nother pass\n"
                       "first pass\nother pass\nfirst pass\nother pass\n")
    assert mismatch.exit_code != 0
    missing = run_cli("reviewers", "list", "--config", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "nope.yaml: file not found" in missing.output
    with Store(db) as store:
        assert [row["name"] for row in store.reviewers()] == ["ann"]


def test_reviewers_disable_and_enable(tmp_path):
    db = str(tmp_path / "project.db")
    run_cli("reviewers", "add", "ann", "--db", db, "--password-stdin", input=PASSWORD + "\n")
    assert run_cli("reviewers", "disable", "ann", "--db", db).exit_code == 0
    with Store(db) as store:
        with pytest.raises(AuthError):
            authenticate(store, "ann", PASSWORD)
        store.update_reviewer(store.reviewer("ann")["id"], locked_until=(
            datetime.now(timezone.utc) + timedelta(minutes=10)).isoformat())
    assert run_cli("reviewers", "enable", "ann", "--db", db).exit_code == 0
    with Store(db) as store:
        assert authenticate(store, "ann", PASSWORD)["name"] == "ann"
    unknown = run_cli("reviewers", "disable", "zed", "--db", db)
    assert unknown.exit_code == 2 and 'no reviewer "zed"' in unknown.output


# ---- passwords, roles, single sign-on ---------------------------------------------------------


def test_set_password_replaces_the_hash_and_lifts_a_lockout(store, ann):
    clock = Clock()
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(AuthError):
            authenticate(store, "ann", "wrong password", clock=clock)
    auth.set_password(store, "ann", "a brand new one")
    assert authenticate(store, "ann", "a brand new one", clock=clock)["id"] == ann
    with pytest.raises(AuthError):
        authenticate(store, "ann", PASSWORD, clock=clock)
    with pytest.raises(AuthError, match="at least 8"):
        auth.set_password(store, "ann", "short")
    with pytest.raises(AuthError, match='no reviewer "zed"'):
        auth.set_password(store, "zed", "long enough")


def test_set_role_and_email(store, ann):
    auth.set_role(store, "ann", "admin")
    assert store.reviewer("ann")["role"] == "admin"
    with pytest.raises(AuthError, match="role must be one of"):
        auth.set_role(store, "ann", "owner")
    auth.set_email(store, "ann", " Ann@Example.COM ")
    assert store.reviewer("ann")["email"] == "ann@example.com"
    create_reviewer(store, "bob", PASSWORD)
    with pytest.raises(AuthError, match="another reviewer already has"):
        auth.set_email(store, "bob", "ANN@example.com")
    with pytest.raises(AuthError, match="not an email address"):
        auth.set_email(store, "bob", "bob at example")
    auth.set_email(store, "ann", None)
    assert store.reviewer("ann")["email"] is None


def test_single_sign_on_maps_a_verified_email_to_an_enabled_account(store):
    clock = Clock()
    reviewer = create_reviewer(store, "sso", None, "admin", email="sso@example.com")
    session = auth.sso_login(store, "SSO@example.com", email_verified=True, clock=clock)
    assert (session.reviewer_id, session.role, session.single_sign_on) == (reviewer, "admin",
                                                                          True)
    assert session.ends_at == clock.now + auth.MAX_SESSION
    for email, verified, message in (("sso@example.com", False, "no verified email"),
                                     (None, None, "no verified email"),
                                     ("eve@example.com", True, "No reviewer account")):
        with pytest.raises(AuthError, match=message):
            auth.sso_login(store, email, email_verified=verified, clock=clock)
    store.update_reviewer(reviewer, disabled=1)
    with pytest.raises(AuthError, match="disabled or locked"):
        auth.sso_login(store, "sso@example.com", clock=clock)


def test_a_sign_on_only_account_never_logs_in_with_a_password_nor_locks(store):
    create_reviewer(store, "sso", None, email="sso@example.com")
    assert store.reviewer("sso")["password_hash"] == auth.NO_PASSWORD
    for guess in ("", auth.NO_PASSWORD, "anything at all") * 3:
        with pytest.raises(AuthError) as caught:
            authenticate(store, "sso", guess)
        assert str(caught.value) == LOGIN_FAILED
    row = store.reviewer("sso")
    assert row["failed_logins"] == 0 and row["locked_until"] is None
    with pytest.raises(AuthError, match="needs an email"):
        create_reviewer(store, "nopass", None)


def test_a_session_ends_after_its_maximum_age_however_active(store, ann):
    clock = Clock()
    session = login(store, "ann", PASSWORD, idle_timeout=timedelta(hours=8), clock=clock)
    for _ in range(6):  # active every 3.5 hours: never idle for long
        clock.advance(hours=3.5)
        current_reviewer(store, session, clock=clock)
    clock.advance(hours=3.5)  # 24.5 hours after the login
    with pytest.raises(AuthError, match="expired"):
        current_reviewer(store, session, clock=clock)


def test_reviewers_reset_password_set_role_and_set_email(tmp_path):
    db = str(tmp_path / "project.db")
    run_cli("reviewers", "add", "ann", "--db", db, "--password-stdin", input=PASSWORD + "\n")
    reset = run_cli("reviewers", "reset-password", "ann", "--db", db,
                    input="another password\nanother password\n")
    assert reset.exit_code == 0 and "another password" not in reset.output
    role = run_cli("reviewers", "set-role", "ann", "admin", "--db", db)
    assert role.exit_code == 0 and role.output.strip() == "ann is now an admin."
    email = run_cli("reviewers", "set-email", "ann", "ann@example.com", "--db", db)
    assert email.exit_code == 0 and "single sign-on as ann@example.com" in email.output
    sso = run_cli("reviewers", "add", "sso", "--db", db, "--email", "sso@example.com",
                  "--no-password", "--role", "expert")
    assert sso.exit_code == 0, sso.output
    with Store(db) as store:
        assert authenticate(store, "ann", "another password")["role"] == "admin"
        assert store.reviewer("ann")["email"] == "ann@example.com"
        assert store.reviewer("sso")["password_hash"] == auth.NO_PASSWORD
    for args, message in ((("reset-password", "zed", "--password-stdin"), 'no reviewer "zed"'),
                          (("set-role", "zed", "admin"), 'no reviewer "zed"'),
                          (("set-email", "ann", "not-an-email"), "not an email address"),
                          (("add", "x", "--no-password"), "--no-password needs --email")):
        result = run_cli("reviewers", *args, "--db", db, input="long enough\n")
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    bad_role = run_cli("reviewers", "set-role", "ann", "owner", "--db", db)
    assert bad_role.exit_code != 0 and "owner" in bad_role.output
