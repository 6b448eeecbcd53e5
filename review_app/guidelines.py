"""The annotation guidelines beside every item: a Markdown file the admin points the app at
(``review.guidelines`` in the config, or ``tuneloop review --guidelines FILE``).

The file is trusted admin content, so it is rendered as Markdown (never as raw HTML:
``st.markdown`` leaves HTML escaped). It is re-read on every run, so an edit reaches experts at
their next click; each browser session remembers the version it has shown, and a changed file
shows a "guidelines changed" notice until the expert confirms they have read it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from tuneloop.review_app.context import guidelines_path

MAX_BYTES = 200_000


@dataclass
class Guidelines:
    path: Path
    text: str
    version: str  # SHA-256 of the file, to notice a change


def current() -> Guidelines | None:
    """The guidelines as the file reads now, or ``None`` when none are configured."""
    path = guidelines_path()
    if path is None:
        return None
    try:
        data = path.read_bytes()[:MAX_BYTES]
    except OSError as error:
        return Guidelines(path, f"The guidelines file cannot be read: {error.strerror}.", "")
    return Guidelines(path, data.decode("utf-8", "replace"), hashlib.sha256(data).hexdigest())


def panel(rules: Guidelines) -> None:
    """The guidelines, with a notice when they changed since this session last showed them."""
    state = st.session_state
    seen = state.setdefault("guidelines-seen", rules.version)
    st.subheader("Guidelines")
    if seen != rules.version:
        st.warning("The guidelines changed since you last read them.")
        st.button("I have read the new guidelines", key="guidelines-read",
                  on_click=lambda: state.__setitem__("guidelines-seen", rules.version))
    with st.container(height=560, key="guidelines-text"):
        st.markdown(rules.text)
