"""The review app: experts log in and rate model outputs, one item per screen.

Start it with ``tuneloop review`` or ``streamlit run app.py -- --db PATH`` (or set
``TUNELOOP_DB``). ``--idle-hours`` (or ``TUNELOOP_IDLE_HOURS``) sets the idle session timeout.

Who is logged in lives only in ``st.session_state`` (server-side, per browser connection), and
``current_reviewer`` re-reads the account on every run, so a disabled or locked account is
logged out at once. A logged-out visitor sees the login form and nothing else.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path

import streamlit as st

from tuneloop.auth import DEFAULT_IDLE_TIMEOUT, current_reviewer
from tuneloop.errors import AuthError
from tuneloop.review_app import login, rating
from tuneloop.store import Store


def settings(argv: list[str]) -> tuple[Path | None, timedelta]:
    """The database path and idle timeout: command line (after ``--``) first, then env."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--db")
    parser.add_argument("--idle-hours", type=float)
    args, _ = parser.parse_known_args(argv)
    db = args.db or os.environ.get("TUNELOOP_DB")
    hours = args.idle_hours or float(os.environ.get("TUNELOOP_IDLE_HOURS") or 0)
    idle = timedelta(hours=hours) if hours > 0 else DEFAULT_IDLE_TIMEOUT
    return (Path(db) if db else None), idle


@st.cache_resource(show_spinner=False)
def migrate_once(path: str) -> bool:
    """Bring the schema up to date once per server process, not on every rerun: migrating takes
    the write lock, which a page view should not compete for with a running cycle."""
    Store(path).close()
    return True


def main() -> None:
    st.set_page_config(page_title="tuneloop review")
    db_path, idle_timeout = settings(sys.argv[1:])
    if db_path is None:
        st.error("No database given: start the app with `-- --db PATH` or set TUNELOOP_DB.")
        st.stop()
    if not db_path.is_file():
        st.error("The project database does not exist yet (run a cycle first):")
        st.text(str(db_path))
        st.stop()
    migrate_once(str(db_path.resolve()))
    with Store(db_path, migrate=False) as store:
        session = st.session_state.get("session")
        if session is None:
            login.render(store, idle_timeout)
            return
        try:
            reviewer = current_reviewer(store, session)
        except AuthError as error:
            login.logout(notice=str(error))
            return
        with st.sidebar:
            st.text(f"Logged in as {reviewer['name']} ({reviewer['role']})")
            if st.button("Log out", key="logout"):
                login.logout(notice="You have logged out.")
        rating.render(store, session, reviewer)


if __name__ == "__main__":  # streamlit runs the script as __main__; importing it runs nothing
    main()
