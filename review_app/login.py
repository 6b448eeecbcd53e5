"""The login screen, the only one a logged-out visitor sees: a password form and, where the app
was started with an identity provider, single sign-on buttons."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import streamlit as st

from tuneloop import auth
from tuneloop.errors import AuthError
from tuneloop.review_app.context import log_out
from tuneloop.store import Store


def render(store: Store, idle_timeout: timedelta) -> None:
    """Show the login form; on success keep the session server-side and rerun."""
    st.title("tuneloop review")
    notice = st.session_state.pop("notice", None)
    if notice:
        st.info(notice)
    if st.session_state.pop("clear-cookie", False):
        _post("/_tuneloop/logout", "")
    with st.form("login"):
        name = st.text_input("Name", max_chars=64, autocomplete="username", key="login-name")
        password = st.text_input("Password", type="password", autocomplete="current-password",
                                 key="login-password")
        submitted = st.form_submit_button("Log in", type="primary", key="login")
    providers = sso_providers()
    if providers is not None:
        for provider in providers or [None]:
            label = "Log in with single sign-on" + (f" ({provider})" if provider else "")
            if st.button(label, key=f"sso-{provider or 'default'}"):
                if provider:
                    st.login(provider)
                else:
                    st.login()
    if not submitted:
        return
    try:
        session = auth.login(store, name.strip(), password, idle_timeout=idle_timeout)
    except AuthError as error:
        st.error(str(error))  # one fixed message: it never echoes what was typed
        return
    start(session, store)


def start(session: auth.Session, store: Store | None = None) -> None:
    """Begin a fresh browser session for this reviewer: nothing from before the login (another
    user's queue position, a notice) survives. With ``store``, a new login also gets a one-time
    grant that the page trades for the session cookie (``send_cookie_grant``)."""
    grant = auth.issue_grant(store, session) if store is not None \
        and session.session_id is not None else None
    st.session_state.clear()
    st.session_state["session"] = session
    if grant is not None:
        st.session_state["cookie-grant"] = grant
    st.rerun()


def resume(store: Store, idle_timeout: timedelta) -> auth.Session | None:
    """Pick up the session the browser's cookie names (a reload, a new tab), in this run (no
    rerun, so the page in the address bar is the one shown). An ended or expired session's
    cookie is simply not honoured."""
    try:
        token = st.context.cookies.get(auth.COOKIE_NAME)
    except Exception:  # no browser request behind this run (AppTest)
        return None
    session = auth.resume_session(store, token, idle_timeout=idle_timeout)
    if session is not None:
        st.session_state["session"] = session
    return session


def send_cookie_grant() -> None:
    """Once after a login: have the browser trade the one-time grant for the HttpOnly session
    cookie (``POST /_tuneloop/session``, see ``serve.py``). The script holds no secret the page
    could not already use: the grant is single-use, expires in a minute, and only yields a
    cookie page script cannot read."""
    grant = st.session_state.pop("cookie-grant", None)
    if grant:
        _post("/_tuneloop/session", grant)


def _post(path: str, body: str) -> None:
    """POST ``body`` to one of ``serve.py``'s routes from the page (our own fixed script; the
    body is URL-safe base64 or empty, JSON-quoted)."""
    import json

    st.html(f"<script>fetch({json.dumps(path)}, {{method: 'POST', credentials: 'same-origin', "
            f"headers: {{'X-Tuneloop': '1'}}, body: {json.dumps(body)}}});</script>",
            unsafe_allow_javascript=True, width="content")


def sso_providers() -> list[str] | None:
    """The identity providers configured in the secrets' ``[auth]`` section (``[]``: the one
    given directly under ``[auth]``), or ``None`` when single sign-on is not configured."""
    try:
        section: Any = st.secrets["auth"] if "auth" in st.secrets else None
    except Exception:  # no secrets file at all
        return None
    if section is None:
        return None
    return sorted(key for key, value in dict(section).items() if hasattr(value, "keys"))


def sign_on(store: Store, idle_timeout: timedelta) -> bool:
    """Turn a single-sign-on identity (``st.user``) into a session for its linked account.

    Returns whether a session was opened. An identity with no account, or a disabled one, sees
    why and a button to leave the identity provider's login (or it would be stuck here).
    """
    if sso_providers() is None or not st.user.get("is_logged_in"):
        return False
    try:
        session = auth.sso_login(store, st.user.get("email"),
                                 email_verified=st.user.get("email_verified"),
                                 idle_timeout=idle_timeout)
    except AuthError as error:
        st.title("tuneloop review")
        st.error(str(error))
        if st.button("Log out of single sign-on", key="sso-logout"):
            st.logout()
        st.stop()
    start(session, store)
    return True


def logout_button() -> None:
    if st.button("Log out", key="logout"):
        log_out(notice="You have logged out.")
