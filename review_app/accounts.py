"""Reviewers (admins): who may log in, with which role, and their single-sign-on email.

An admin can add an account, disable or enable one, change its role, set a new password (which
also lifts a lockout) and link an email for single sign-on. Disabling an account or setting its
password ends its open sessions (every tab). The first admin is made on the command line
(``tuneloop reviewers add``), which stays. An admin cannot disable or demote themselves here, so
the app is never left without an admin by a slip of the mouse.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd
import streamlit as st

from tuneloop import auth
from tuneloop.errors import AuthError
from tuneloop.review_app import context
from tuneloop.review_app.queries import require_admin
from tuneloop.store import Store


def page() -> None:
    with context.database() as store:
        viewer = context.viewer(store)
        context.require_admin(viewer)
        st.title("Reviewers")
        message = st.session_state.pop("accounts-message", None)
        if message:
            st.success(message)
        rows = accounts(store, viewer)
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="accounts-table")
        add_account(store, viewer)
        names = [row["name"] for row in rows]
        if not names:
            return
        name = st.selectbox("Reviewer", names, key="accounts-name")
        row = next(row for row in rows if row["name"] == name)
        change_account(store, viewer, row)


def accounts(store: Store, viewer: dict[str, Any]) -> list[dict[str, Any]]:
    require_admin(viewer, "reviewer accounts")
    now = datetime.now(timezone.utc)
    emails = {row["id"]: row["email"] for row in store.query("SELECT id, email FROM reviewers")}
    return [{"id": row["id"], "name": row["name"], "role": row["role"],
             "ratings": row["ratings"],
             "email": emails.get(row["id"]) or "",
             "locked": "yes" if auth.is_locked(row, now) else "no",
             "disabled": "yes" if row["disabled"] else "no"} for row in store.reviewers()]


def add_account(store: Store, viewer: dict[str, Any]) -> None:
    """A new reviewer: name, role, password (twice) and an optional single-sign-on email."""
    with st.expander("Add a reviewer"):
        with st.form("accounts-add", clear_on_submit=True):
            columns = st.columns(2)
            name = columns[0].text_input("Name", max_chars=64, key="accounts-new-name")
            role = columns[1].selectbox("Role", auth.ROLES, key="accounts-new-role")
            password = columns[0].text_input("Password", type="password",
                                             key="accounts-new-password-1")
            again = columns[1].text_input("Password again", type="password",
                                          key="accounts-new-password-2")
            email = st.text_input("Single sign-on email (optional)", key="accounts-new-email")
            if st.form_submit_button("Add reviewer", key="accounts-add-button"):
                if password != again:
                    st.error("The two passwords differ.")
                    return
                run(lambda: auth.create_reviewer(store, name.strip(), password, role,
                                                 email=email.strip() or None),
                    f"Added {name.strip()} ({role}).", store, viewer)


def change_account(store: Store, viewer: dict[str, Any], row: dict[str, Any]) -> None:
    name = row["name"]
    yourself = name == viewer["name"]
    columns = st.columns(2)
    with columns[0]:
        if row["disabled"] == "yes":
            if st.button("Enable", key="accounts-enable"):
                apply(store, viewer, name, "enabled", disabled=0, failed_logins=0,
                      locked_until=None)
        elif st.button("Disable", key="accounts-disable", disabled=yourself,
                       help="you cannot disable yourself" if yourself else None):
            apply(store, viewer, name, "disabled (its sessions ended)", disabled=1)
    with columns[1]:
        other_role = "expert" if row["role"] == "admin" else "admin"
        if st.button(f"Make {other_role}", key="accounts-role", disabled=yourself,
                     help="you cannot change your own role" if yourself else None):
            apply(store, viewer, name, f"made {other_role}", role=other_role)
    with st.form("accounts-password", clear_on_submit=True):
        password = st.text_input("New password", type="password", key="accounts-password-1")
        again = st.text_input("New password again", type="password", key="accounts-password-2")
        if st.form_submit_button("Set password", key="accounts-set-password"):
            if password != again:
                st.error("The two passwords differ.")
            else:
                run(lambda: (auth.set_password(store, name, password),
                             auth.end_sessions_of(store, row["id"], "password reset")),
                    f"New password set for {name}; their open sessions ended.", store, viewer)
    with st.form("accounts-email"):
        email = st.text_input("Single sign-on email (empty: none)", value=row["email"],
                              key="accounts-email-value")
        if st.form_submit_button("Save email", key="accounts-save-email"):
            run(lambda: auth.set_email(store, name, email.strip() or None),
                f"Saved the email of {name}.", store, viewer)


def apply(store: Store, viewer: dict[str, Any], name: str, done: str, **fields: Any) -> None:
    """Change an account's fields, after checking again that the viewer is an admin."""
    require_admin(viewer, "reviewer accounts")
    target = store.reviewer(name)
    if target is None:
        st.error(f'No reviewer "{name}".')
        return
    store.update_reviewer(target["id"], **fields)
    if fields.get("disabled"):
        auth.end_sessions_of(store, target["id"], "account disabled")
    st.session_state["accounts-message"] = f"{name}: {done}."
    st.rerun()


def run(change: Any, done: str, store: Store, viewer: dict[str, Any]) -> None:
    require_admin(viewer, "reviewer accounts")
    try:
        change()
    except AuthError as error:
        st.error(str(error))
        return
    st.session_state["accounts-message"] = done
    st.rerun()


if __name__ == "__main__":  # run as a page by the app's navigation
    page()
