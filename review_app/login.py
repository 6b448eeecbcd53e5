"""The login form and logout: the only screen a logged-out visitor sees."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from tuneloop import auth
from tuneloop.errors import AuthError
from tuneloop.store import Store


def render(store: Store, idle_timeout: timedelta) -> None:
    """Show the login form; on success keep the session server-side and rerun."""
    st.title("tuneloop review")
    notice = st.session_state.pop("notice", None)
    if notice:
        st.info(notice)
    with st.form("login"):
        name = st.text_input("Name", max_chars=64, autocomplete="username", key="login-name")
        password = st.text_input("Password", type="password", autocomplete="current-password",
                                 key="login-password")
        submitted = st.form_submit_button("Log in", type="primary", key="login")
    if not submitted:
        return
    try:
        session = auth.login(store, name.strip(), password, idle_timeout=idle_timeout)
    except AuthError as error:
        st.error(str(error))  # one fixed message: it never echoes what was typed
        return
    st.session_state.clear()  # nothing from before the login (another user's queue position)
    st.session_state["session"] = session
    st.rerun()


def logout(notice: str | None = None) -> None:
    """Forget everything this browser session held, then show the login form (with a notice)."""
    st.session_state.clear()
    if notice:
        st.session_state["notice"] = notice
    st.rerun()
