"""The review app: experts log in and rate model outputs; admins also see how the review goes.

Start it with ``tuneloop review`` or ``streamlit run serve.py -- --db PATH`` (or set
``TUNELOOP_DB``); ``streamlit run app.py`` also works, without the session cookie (a reload then
logs out). ``--idle-hours`` (or ``TUNELOOP_IDLE_HOURS``) sets the idle session timeout.

Who is logged in lives in ``st.session_state`` (server-side, per browser connection) and in a
``review_sessions`` row that an HttpOnly cookie finds again after a reload or in a new tab (see
``serve.py``: ``tuneloop review`` serves this script through it). A
logged-out visitor sees the login form and nothing else; a logged-in one gets the pages of their
role (experts: Rate; admins: also Dashboard, History and Reviewers). The navigation only decides
what is offered: every page checks the role again itself, and re-reads the account on every run,
so a disabled or locked account is logged out at once.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from tuneloop.auth import current_reviewer
from tuneloop.errors import AuthError
from tuneloop.review_app import login
from tuneloop.review_app.context import log_out, settings  # noqa: F401  (settings: public API)
from tuneloop.store import Store

HERE = Path(__file__).resolve().parent
EXPERT_PAGES = (("rating.py", "Rate", "rate"),)
ADMIN_PAGES = (("records.py", "Records", "records"),
               ("dashboard.py", "Dashboard", "dashboard"),
               ("history.py", "Rating history", "history"),
               ("accounts.py", "Reviewers", "reviewers"))


@st.cache_resource(show_spinner=False)
def migrate_once(path: str) -> bool:
    """Bring the schema up to date once per server process, not on every rerun: migrating takes
    the write lock, which a page view should not compete for with a running cycle."""
    Store(path).close()
    return True


def main() -> None:
    st.set_page_config(page_title="tuneloop review")
    db_path, idle_timeout = settings()
    if db_path is None:
        st.error("No database given: start the app with `-- --db PATH` or set TUNELOOP_DB.")
        st.stop()
    if not db_path.is_file():
        st.error("The project database does not exist yet (run a cycle first):")
        st.text(str(db_path))
        st.stop()
    migrate_once(str(db_path.resolve()))
    with Store(db_path, migrate=False) as store:
        session = st.session_state.get("session") or login.resume(store, idle_timeout)
        if session is None and login.sign_on(store, idle_timeout):
            return  # unreachable: a new session reruns the app
        if session is None:
            login.render(store, idle_timeout)
            return
        try:
            reviewer = current_reviewer(store, session)
        except AuthError as error:
            log_out(notice=str(error))
            return
    with st.sidebar:
        st.text(f"Logged in as {reviewer['name']} ({reviewer['role']})")
        login.logout_button()
        login.send_cookie_grant()
    offered = EXPERT_PAGES + (ADMIN_PAGES if reviewer["role"] == "admin" else ())
    pages = [st.Page(HERE / file, title=title, url_path=url, default=url == "rate")
             for file, title, url in offered]
    st.navigation(pages).run()


if __name__ == "__main__":  # streamlit runs the script as __main__; importing it runs nothing
    main()
