"""Where every page and fragment run starts: the settings, the database, and who is asking.

Each page, and each rerun of a fragment on its own, opens the database and re-reads the logged-in
reviewer from it (``viewer``). Nothing about the reviewer is cached between runs: disabling an
account, changing its role or letting the session expire takes effect at the next click, on every
page. The reviewer comes only from the server-side session (``st.session_state["session"]``),
never from a widget, a query parameter or anything else the browser sends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import streamlit as st

from tuneloop import auth
from tuneloop.auth import DEFAULT_IDLE_TIMEOUT, current_reviewer
from tuneloop.errors import AuthError
from tuneloop.store import Store


def settings(argv: list[str] | None = None) -> tuple[Path | None, timedelta]:
    """The database path and idle timeout: command line (after ``--``) first, then env."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--db")
    parser.add_argument("--idle-hours", type=float)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    db = args.db or os.environ.get("TUNELOOP_DB")
    hours = args.idle_hours or float(os.environ.get("TUNELOOP_IDLE_HOURS") or 0)
    idle = timedelta(hours=hours) if hours > 0 else DEFAULT_IDLE_TIMEOUT
    return (Path(db) if db else None), idle


def guidelines_path(argv: list[str] | None = None) -> Path | None:
    """The annotation guidelines file: ``--guidelines`` (after ``--``), then
    ``TUNELOOP_GUIDELINES``; ``None`` when neither is set."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--guidelines")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    value = args.guidelines or os.environ.get("TUNELOOP_GUIDELINES")
    return Path(value) if value else None


@contextlib.contextmanager
def database() -> Iterator[Store]:
    """The project database for one run (schema already migrated by the app at start-up)."""
    path, _ = settings()
    if path is None:
        st.error("No database given: start the app with `-- --db PATH` or set TUNELOOP_DB.")
        st.stop()
    with Store(path, migrate=False) as store:
        yield store


def viewer(store: Store) -> dict[str, Any]:
    """The logged-in reviewer, re-read from the database now.

    Without a valid session this never returns: the session is dropped and the whole app reruns,
    which shows the login form with the reason (the session expired, the account was disabled).
    """
    session = st.session_state.get("session")
    if session is None:  # only a page run outside the app (its main script shows the login)
        st.info("You are not logged in: open the review app's main page to log in.")
        st.stop()
    try:
        return current_reviewer(store, session)
    except AuthError as error:
        log_out(notice=str(error))
        raise  # unreachable: log_out reruns the app


def require_admin(reviewer: dict[str, Any]) -> None:
    """Stop the page for anyone but an admin (the navigation hides admin pages too; this is the
    check that counts)."""
    if reviewer.get("role") != "admin":
        st.error("This page is for admins.")
        st.stop()


def log_out(notice: str | None = None) -> None:
    """Forget everything this browser session held, then show the login form (with a notice).

    A single-sign-on session also drops the identity cookie, or the next run would log the same
    identity straight back in.
    """
    session = st.session_state.get("session")
    if session is not None:  # ends it in every tab holding it, and frees its claimed items
        path, _ = settings()
        if path is not None and path.is_file():
            with Store(path, migrate=False) as store:
                auth.logout(store, session, reason=notice or "logged out")
    st.session_state.clear()
    if notice:
        st.session_state["notice"] = notice
    st.session_state["clear-cookie"] = True
    if session is not None and getattr(session, "single_sign_on", False):
        st.logout()
    st.rerun()
