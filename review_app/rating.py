"""The rating screen: one item at a time, keyboard first.

A single item shows the input and the model's answer; the expert approves (A), rejects (X),
skips (S) or flags the input as unclear (U), optionally with a 1-5 score (keys 1-5), a corrected
label (a searchable list) or an edited answer, and a comment. A pair item shows one input with
two answers from two cycles, in shuffled order and without saying which model gave which; the
expert picks the better one (← / →), says both are fine (E) or both bad (X), and may score each.
B goes back to the previous item to change that rating: saving again appends a rating that
supersedes the earlier one, which the history keeps.

The screen is a fragment: saving reruns only the card (no page reload), and every run re-opens
the database and re-reads the reviewer, so a disabled account or an expired session is logged
out at its next key press. Buttons save through ``on_click`` callbacks, which run before the
card is drawn again, so the next item appears in the same rerun; a callback saves only the item
on screen, so a key pressed twice in quick succession cannot re-rate the item before.

Model inputs and outputs are untrusted: they are shown with ``st.text`` (no Markdown, no HTML)
and as plain widget values, never as labels or Markdown.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from tuneloop.auth import current_reviewer
from tuneloop.errors import AuthError
from tuneloop.review_app import context, guidelines, queries
from tuneloop.review_app.queries import Forbidden
from tuneloop.store import Store

SCORES = (1, 2, 3, 4, 5)
# A score button's label names the score; Streamlit adds its key (1-5) as the shortcut hint, so
# a bare number would read "1 1".
SCORE_NAMES = {1: "Poor", 2: "Weak", 3: "Fair", 4: "Good", 5: "Great"}
# (button label, action, keyboard shortcut); "R" and "C" are reserved by Streamlit.
SINGLE_ACTIONS = (("Approve", "approve", "A"), ("Reject", "reject", "X"),
                  ("Skip", "skip", "S"), ("Unclear input", "unclear", "U"))
PAIR_ACTIONS = (("Left is better", "left", "Left"), ("Right is better", "right", "Right"),
                ("Both fine", "both fine", "E"), ("Both bad", "both bad", "X"),
                ("Skip", "skip", "S"), ("Unclear input", "unclear", "U"))
PAIR_VERDICTS = {"left": ("approve", "left"), "right": ("approve", "right"),
                 "both fine": ("approve", None), "both bad": ("reject", None),
                 "skip": ("skip", None), "unclear": ("unclear", None)}


class Invalid(ValueError):
    """The form cannot be saved as it stands; the message says what to change."""


def page() -> None:
    rules = guidelines.current()
    if rules is None:
        card()
    else:  # the guidelines beside the item: a wide page, two columns
        st.set_page_config(layout="wide")
        item_column, rules_column = st.columns([2, 1], gap="large")
        with item_column:
            card()
        with rules_column:
            guidelines.panel(rules)
    keep_alive()


@st.fragment(run_every=queries.lease_time() / 5)
def keep_alive() -> None:
    """While the page is open, renew the claim on the item on screen (so no other expert is
    handed its slot) and notice a session ended elsewhere (a logout in another tab)."""
    with context.database() as store:
        viewer = context.viewer(store)
        current = st.session_state.get("current")
        if current is not None and not queries.my_rating_of(store, viewer, current):
            queries.keep(store, viewer, current)


@st.fragment
def card() -> None:
    with context.database() as store:
        viewer = context.viewer(store)
        state = st.session_state
        state.setdefault("history", [])
        state.setdefault("rated_this_session", 0)
        flash()
        shown = current_item(store, viewer)
        if shown is None:
            st.info("The review queue is empty: there is nothing left for you to rate. "
                    "Thank you!")
            st.text(f"Rated in this session: {state['rated_this_session']}")
            back_button()
            return
        show_progress(store, viewer, shown)
        mine = queries.my_rating(store, viewer, shown)
        if shown["pair_output_id"] is None:
            single_item(store, viewer, shown, mine)
        else:
            pair_item(store, viewer, shown, mine)
        back_button()


def current_item(store: Store, viewer: dict[str, Any]) -> dict[str, Any] | None:
    """The item on screen stays until it is saved (a rerun, or another expert closing it
    meanwhile, never swaps it under the form); then the next one for this reviewer."""
    state = st.session_state
    if state.get("current") is not None:
        try:
            shown = queries.item(store, viewer, state["current"])
        except Forbidden:
            shown = None
        if shown is not None:
            mine = queries.my_rating(store, viewer, shown)
            if (mine and mine["verdict"] != "skip") or queries.keep(store, viewer,
                                                                     shown["queue_id"]):
                return shown  # theirs to change, or still claimed by them
            st.warning("The item you had open was rated by other experts while your claim on "
                       "it had run out; here is the next one.")
        state["current"] = None
    shown = queries.next_item(store, viewer)
    state["current"] = shown["queue_id"] if shown else None
    return shown


def flash() -> None:
    message = st.session_state.pop("flash", None)
    if message:
        kind, text = message
        (st.success if kind == "success" else st.error)(text)


def show_progress(store: Store, viewer: dict[str, Any], shown: dict[str, Any]) -> None:
    figures = queries.progress(store, viewer, shown["cycle_id"])
    if figures["total"]:
        st.progress(figures["done"] / figures["total"],
                    text=f"This cycle's queue: {figures['done']} of {figures['total']} items "
                         f"done")
    st.text(f"Rated in this session: {st.session_state['rated_this_session']} · "
            f"in this cycle: {figures['rated_by_you']}")


# ---- a single output -------------------------------------------------------------------------


def single_item(store: Store, viewer: dict[str, Any], shown: dict[str, Any],
                mine: dict[str, Any] | None) -> None:
    queue_id = shown["queue_id"]
    st.text(f"{item_number(store, viewer, shown)} · cycle {shown['cycle_id']} · {shown['task']}")
    label("Input")
    st.text(shown["input"])
    label("Model answer")
    st.text(shown["output"])
    confidence = shown["confidence"]
    st.text("Confidence: " + (f"{confidence:.1%}" if confidence is not None else "not recorded"))
    top = queries.top_labels(shown, shown["top_k"]) if shown["labels"] is not None else []
    if len(top) > 1:
        st.text(f"Model's top {len(top)}: " + " · ".join(f"{name} {score:.0%}"
                                                         for name, score in top))
    if mine:
        st.info(f"You rated this item before ({mine['verdict']}). Saving again replaces your "
                "rating; the earlier one is kept in the history.")
    others(store, viewer, shown)
    prior = mine or {}
    if shown["labels"] is not None:
        labels = list(shown["labels"])
        default = prior.get("corrected") or shown["output"]
        if default not in labels:
            labels.append(default)
        st.selectbox("Correct label (type to search; pick another label, then Reject, to "
                     "correct the model)", labels, index=labels.index(default),
                     key=f"label-{queue_id}")
    else:
        edited = st.text_area("Correct answer (edit it, then Reject, to correct the model)",
                              value=prior.get("corrected") or shown["output"],
                              key=f"completion-{queue_id}")
        show_diff(shown["output"], edited, "model answer", "your edit")
    # the verdict right under the answer, so it is on screen without scrolling; the optional
    # score and comment below it (keys 1-5 work from anywhere)
    action_buttons(queue_id, SINGLE_ACTIONS)
    score_key = f"score-value-{queue_id}"
    if score_key not in st.session_state:
        st.session_state[score_key] = prior.get("score")
    score_buttons(queue_id, score_key)
    st.text_input("Comment (optional)", value=prior.get("comment") or "", max_chars=2000,
                  key=f"comment-{queue_id}")


def label(name: str) -> None:
    """A small bold heading above a block of model text (our own fixed words only)."""
    st.markdown(f"**{name}**")


def score_buttons(queue_id: int, score_key: str) -> None:
    chosen = st.session_state.get(score_key)
    with st.container(horizontal=True, key=f"scores-{queue_id}"):
        st.text("Score:")
        for value in SCORES:
            st.button(SCORE_NAMES[value], key=f"score-{queue_id}-{value}", shortcut=str(value),
                      type="primary" if chosen == value else "secondary",
                      on_click=toggle_score, args=(score_key, value))


def toggle_score(score_key: str, value: int) -> None:
    state = st.session_state
    state[score_key] = None if state.get(score_key) == value else value


def others(store: Store, viewer: dict[str, Any], shown: dict[str, Any]) -> None:
    """Other experts' ratings, where the project does not review blind."""
    if shown["blind"] and not queries.is_admin(viewer):
        return
    rows = queries.others_ratings(store, viewer, shown)
    if not rows:
        return
    with st.expander(f"Other reviewers' ratings ({len(rows)})"):
        for row in rows:
            parts = [f"{row['reviewer']}: {row['verdict']}"]
            if row["corrected"]:
                parts.append(f"correction: {row['corrected']}")
            if row["score"]:
                parts.append(f"score {row['score']}")
            if row["comment"]:
                parts.append(f"comment: {row['comment']}")
            st.text(" · ".join(parts))


# ---- a pair of outputs -----------------------------------------------------------------------


def pair_item(store: Store, viewer: dict[str, Any], shown: dict[str, Any],
              mine: dict[str, Any] | None) -> None:
    queue_id = shown["queue_id"]
    st.text(f"{item_number(store, viewer, shown)} · which answer is better? They come from "
            "the model, in random order.")
    label("Input")
    st.text(shown["input"])
    prior = mine or {}
    prior_scores = {prior.get("output_id"): prior.get("score"),
                    prior.get("pair_output_id"): prior.get("pair_score")} if mine else {}
    if mine:
        st.info(f"You compared these before ({describe_pair(prior, shown)}). Saving again "
                "replaces your rating; the earlier one is kept in the history.")
    for column, side in zip(st.columns(2), ("left", "right")):
        with column:
            st.subheader(f"{side.capitalize()} answer")
            st.text(shown[side]["output"])
            st.segmented_control(f"{side.capitalize()} answer's score (optional)", SCORES,
                                 default=prior_scores.get(shown[side]["output_id"]),
                                 key=f"{side}-score-{queue_id}")
    if shown["left"]["output"] != shown["right"]["output"]:
        show_diff(shown["left"]["output"], shown["right"]["output"], "left", "right")
    st.text_input("Comment (optional)", value=prior.get("comment") or "", max_chars=2000,
                  key=f"comment-{queue_id}")
    action_buttons(queue_id, PAIR_ACTIONS)


def item_number(store: Store, viewer: dict[str, Any], shown: dict[str, Any]) -> str:
    """"Item 3 of 30": the place in this cycle's queue, matching the progress bar above."""
    place, total = queries.position(store, viewer, shown["queue_id"])
    return f"Item {place} of {total}"


def show_diff(before: str, after: str | None, old_name: str, new_name: str) -> None:
    """A unified diff of two answers, line by line, as plain text (``st.code``: never
    Markdown or HTML), so an expert sees exactly what an edit or the other answer changes."""
    import difflib

    if after is None or after.replace("\r\n", "\n") == before.replace("\r\n", "\n"):
        return
    lines = difflib.unified_diff(before.replace("\r\n", "\n").splitlines(),
                                 after.replace("\r\n", "\n").splitlines(),
                                 fromfile=old_name, tofile=new_name, lineterm="", n=2)
    with st.expander(f"What changes from the {old_name} to the {new_name}", expanded=True):
        st.code("\n".join(lines), language="diff")


def describe_pair(rating: dict[str, Any], shown: dict[str, Any]) -> str:
    preferred = rating.get("preferred_output_id")
    for side in ("left", "right"):
        if preferred is not None and preferred == shown[side]["output_id"]:
            return f"{side} is better"
    return {"approve": "both fine", "reject": "both bad"}.get(rating.get("verdict"),
                                                             rating.get("verdict") or "")


# ---- saving ----------------------------------------------------------------------------------


def action_buttons(queue_id: int, actions: tuple[tuple[str, str, str], ...]) -> None:
    with st.container(horizontal=True, key=f"actions-{queue_id}"):
        for label, action, key in actions:
            st.button(label, key=f"{action.replace(' ', '-')}-{queue_id}", shortcut=key,
                      type="primary" if action in ("approve", "left", "right") else "secondary",
                      on_click=submit, args=(queue_id, action))


def submit(queue_id: int, action: str) -> None:
    """Save the form as the logged-in reviewer, then move on (a button's callback: it runs
    before the card is drawn again)."""
    state = st.session_state
    if queue_id != state.get("current"):
        # A key pressed while the card was being redrawn reaches the previous item's button:
        # saving it would silently change a rating the expert has already moved on from.
        state["flash"] = ("error", "That key press reached the previous item; nothing was "
                                   "saved. Press it again.")
        return
    path, _ = context.settings()
    with Store(path, migrate=False) as store:  # type: ignore[arg-type]
        try:
            viewer = current_reviewer(store, state.get("session"))  # re-check just before writing
        except AuthError:
            return  # nothing is written; the card's next run logs the session out, saying why
        try:
            shown = queries.item(store, viewer, queue_id)
            fields = read_form(shown, action)
            queries.save_rating(store, viewer, queue_id, **fields)
        except queries.Full as error:  # filled meanwhile: say so, and show the next item
            state["flash"] = ("error", str(error))
            state["current"] = None
            return
        except (Invalid, Forbidden) as error:
            state["flash"] = ("error", str(error))
            return
    state["history"] = [*state.get("history", []), queue_id][-50:]
    state["current"] = None
    state["rated_this_session"] = state.get("rated_this_session", 0) + 1
    state.pop(f"score-value-{queue_id}", None)
    state["flash"] = ("success", f"Saved: {action}.")


def read_form(shown: dict[str, Any], action: str) -> dict[str, Any]:
    """The rating the form describes, or ``Invalid`` saying what does not add up."""
    state = st.session_state
    queue_id = shown["queue_id"]
    comment = state.get(f"comment-{queue_id}") or None
    if shown["pair_output_id"] is not None:
        verdict, preferred = PAIR_VERDICTS[action]
        left, right = state.get(f"left-score-{queue_id}"), state.get(f"right-score-{queue_id}")
        if preferred is not None and left is not None and right is not None and left != right \
                and (left > right) != (preferred == "left"):
            raise Invalid(f"Your scores prefer the other answer: change a score, or press "
                          f"{'Right' if preferred == 'left' else 'Left'} is better.")
        return {"verdict": verdict, "preferred": preferred, "left_score": left,
                "right_score": right, "comment": comment}
    if shown["labels"] is not None:
        answer = state.get(f"label-{queue_id}")
    else:
        answer = state.get(f"completion-{queue_id}")
    corrected = answer if changed(answer, shown["output"]) else None
    if action == "approve" and corrected is not None:
        raise Invalid("You changed the answer: press Reject to save it as the correction, or "
                      "put it back to approve the model's answer.")
    return {"verdict": action, "score": state.get(f"score-value-{queue_id}"),
            "corrected": corrected if action == "reject" else None, "comment": comment}


def changed(answer: str | None, output: str) -> bool:
    """Whether the expert changed the model's answer (browsers send text areas with \\r\\n)."""
    if answer is None or not answer.strip():
        return False
    return answer.replace("\r\n", "\n") != output.replace("\r\n", "\n")


def back_button() -> None:
    if st.session_state.get("history"):
        st.button("Back to my previous item", key="back", shortcut="B", on_click=go_back)


def go_back() -> None:
    state = st.session_state
    if state.get("history"):
        state["current"] = state["history"].pop()


if __name__ == "__main__":  # run as a page by the app's navigation
    page()
