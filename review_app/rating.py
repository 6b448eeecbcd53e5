"""The rating screen: one output at a time, a verdict, an optional correction, score and comment.

Model inputs and outputs are untrusted text (they can hold HTML, scripts or Markdown), so they
are shown with ``st.text``, which renders neither, and labels only as selectbox options (plain
text). The reviewer id of every rating comes from the server-side session, re-checked with
``current_reviewer`` just before the write; no widget carries it.

The item on screen stays in ``st.session_state["current"]`` until the reviewer saves it, so a
rerun (or another expert closing the item meanwhile) never swaps the item under the form.
``history`` lists what this session saved, for "Change my last rating": saving again appends a
rating that supersedes the earlier one, which stays in the table.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from tuneloop.auth import Session, current_reviewer
from tuneloop.errors import AuthError
from tuneloop.review_app import login, queries
from tuneloop.store import Store

VERDICTS = {"Approve": "approve", "Reject": "reject", "Skip": "skip", "Unclear": "unclear"}
SCORES = [1, 2, 3, 4, 5]


def render(store: Store, session: Session, reviewer: dict[str, Any]) -> None:
    state = st.session_state
    history: list[int] = state.setdefault("history", [])
    show_progress(store, reviewer["id"])
    saved = state.pop("saved", None)
    if saved:
        st.success(saved)
    if history and st.button("← Change my last rating", key="back"):
        state["current"] = history.pop()
        st.rerun()

    if state.get("current") is None:
        item = store.next_queue_item(reviewer["id"])
        if item is None:
            st.info("The review queue is empty: there is nothing left for you to rate. Thank you!")
            return
        state["current"] = item["id"]
    item = queries.review_item(store, state["current"])
    if item is None:  # cannot happen while outputs are never deleted; do not loop on it
        state["current"] = None
        st.error("That item no longer exists.")
        return
    previous = queries.current_rating(store, reviewer["id"], item["id"])
    show_item(item, previous)
    rate(store, session, item, previous)


def show_progress(store: Store, reviewer_id: int) -> None:
    progress = store.queue_progress(reviewer_id)
    if progress["total"]:
        st.progress(progress["done"] / progress["total"],
                    text=f"{progress['done']} of {progress['total']} queued items done; "
                         f"you have rated {progress['rated_by_you']}")


def show_item(item: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """The item as plain text: never Markdown or HTML, whatever the model wrote."""
    st.text(f"Cycle {item['cycle_id']} · {item['task']} · item {item['id']}")
    st.subheader("Input")
    st.text(item["input"])
    st.subheader("Model output")
    st.text(item["output"])
    confidence = item["confidence"]
    st.text("Confidence: " + (f"{confidence:.1%}" if confidence is not None else "not recorded"))
    if previous:
        st.info(f"You rated this item before ({previous['verdict']}). Saving again replaces "
                "your rating; the earlier one is kept in the history.")


def rate(store: Store, session: Session, item: dict[str, Any],
         previous: dict[str, Any] | None) -> None:
    """The form; any of the four verdict buttons saves it and moves on to the next item."""
    output_id = item["id"]
    prior = previous or {}
    with st.form(f"rate-{output_id}"):
        if item["task"] == "classification":
            labels = queries.label_set(store, item["cycle_id"], item["cycle_config"])
            default = prior.get("corrected") or item["output"]
            if default not in labels:
                labels.append(default)
            answer = st.selectbox("Correct label (change it, then Reject, to correct the model)",
                                  labels, index=labels.index(default), key=f"label-{output_id}")
        else:
            answer = st.text_area("Correct completion (edit it, then Reject, to correct the "
                                  "model)", value=prior.get("corrected") or item["output"],
                                  key=f"completion-{output_id}")
        score = st.selectbox("Score (optional)", SCORES, key=f"score-{output_id}",
                             index=SCORES.index(prior["score"]) if prior.get("score") else None,
                             placeholder="no score")
        comment = st.text_area("Comment (optional)", value=prior.get("comment") or "",
                               max_chars=2000, key=f"comment-{output_id}")
        clicked = None
        for column, (label, verdict) in zip(st.columns(len(VERDICTS)), VERDICTS.items()):
            with column:
                if st.form_submit_button(label, key=f"{verdict}-{output_id}", width="stretch",
                                         type="primary" if verdict == "approve" else "secondary"):
                    clicked = verdict
    if clicked is None:
        return
    corrected = answer if changed(answer, item["output"]) else None
    if clicked == "approve" and corrected is not None:
        st.error("You changed the answer: press Reject to save it as the correction, or put it "
                 "back to approve the model's answer.")
        return
    try:
        reviewer = current_reviewer(store, session)  # re-check just before writing
    except AuthError as error:
        login.logout(notice=str(error))
        return
    store.add_rating(reviewer_id=reviewer["id"], output_id=output_id, verdict=clicked,
                     score=score, corrected=corrected if clicked == "reject" else None,
                     comment=comment.strip() or None)
    st.session_state["history"].append(output_id)
    st.session_state["current"] = None
    st.session_state["saved"] = f"Saved: {clicked}."
    st.rerun()


def changed(answer: str | None, output: str) -> bool:
    """Whether the expert changed the model's answer (browsers send text areas with \\n lines)."""
    if answer is None or not answer.strip():
        return False
    return answer.replace("\r\n", "\n") != output.replace("\r\n", "\n")
