"""Records (admins): every queued item in one searchable, filterable, sortable table.

Search runs over inputs, model answers and corrections; filters narrow by the model's label,
its confidence, the cycle, the queue status, a reviewer and whether the experts agree. Click a
column header to sort. Select rows (the checkboxes at the left) to approve them all at once:
each becomes an approval by the admin, through the same checks as the rating screen (an item
that already has all its ratings is refused and listed). Cells are plain text
(``st.dataframe``), so model text stays inert.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tuneloop.review_app import context, queries

ANY = "(any)"


def page() -> None:
    st.set_page_config(layout="wide")
    with context.database() as store:
        viewer = context.viewer(store)
        context.require_admin(viewer)
        st.title("Records")
        message = st.session_state.pop("records-message", None)
        if message:
            (st.success if message[0] == "success" else st.warning)(message[1])
        filters, agreement = filter_bar(store)
        rows = queries.records(store, viewer, agreement=agreement, **filters)
        st.text(f"{len(rows)} item" + ("" if len(rows) == 1 else "s")
                + (" (the first 1000)" if len(rows) >= 1000 else ""))
        if not rows:
            return
        table = pd.DataFrame(rows)
        # every column fits 1280 px: short ones narrow, the texts share what is left
        chosen = st.dataframe(
            table, hide_index=True, key="records-table", on_select="rerun",
            selection_mode="multi-row", width="stretch",
            column_order=["cycle", "number", "status", "input", "answer", "confidence",
                          "agreement", "ratings"],
            column_config={
                "cycle": st.column_config.NumberColumn("cycle", width=40),
                "number": st.column_config.NumberColumn("item", width=40,
                                                        help="its number in the cycle's queue"),
                "status": st.column_config.TextColumn("status", width=50),
                "confidence": st.column_config.NumberColumn("conf.", format="percent",
                                                            width=55),
                "agreement": st.column_config.TextColumn("experts", width=80,
                                                         help="unrated, one expert, agreed "
                                                              "or disagree"),
                "answer": st.column_config.TextColumn("answer", width=80),
                "input": st.column_config.TextColumn("input", width="medium"),
                "ratings": st.column_config.TextColumn("ratings", width="medium")})
        selected = [int(table.iloc[index]["item"]) for index in chosen.selection.rows]
        if st.button(f"Approve the {len(selected)} selected items as {viewer['name']}",
                     key="records-approve", disabled=not selected, type="primary"):
            saved, refused = queries.bulk_approve(store, viewer, selected)
            text = f"Approved {saved} items."
            if refused:
                text += " Not saved: " + "; ".join(refused[:5])
            st.session_state["records-message"] = ("warning" if refused else "success", text)
            st.rerun()


def filter_bar(store) -> tuple[dict, str | None]:
    """The search box and filters, as ``queries.records`` arguments."""
    cycles = [row["id"] for row in store.cycles()]
    reviewers = [row["name"] for row in store.reviewers()]
    top = st.columns([3, 1, 1, 1])
    text = top[0].text_input("Search inputs, answers and corrections", key="records-text")
    cycle = top[1].selectbox("Cycle", [ANY, *reversed(cycles)], key="records-cycle")
    status = top[2].selectbox("Status", [ANY, "open", "done"], key="records-status")
    reviewer = top[3].selectbox("Reviewer", [ANY, *reviewers], key="records-reviewer")
    second = st.columns([1, 2, 1])
    label = second[0].text_input("Model's label (exact)", key="records-label")
    low, high = second[1].slider("Confidence", 0.0, 1.0, (0.0, 1.0), step=0.05,
                                 key="records-confidence")
    agreement = second[2].selectbox("Experts", [ANY, *queries.AGREEMENT], key="records-agree")
    filters = {"text": text.strip() or None, "label": label.strip() or None,
               "confidence": None if (low, high) == (0.0, 1.0) else (low, high),
               "cycle_id": None if cycle == ANY else int(cycle),
               "status": None if status == ANY else status,
               "reviewer": None if reviewer == ANY else reviewer}
    return filters, None if agreement == ANY else agreement


if __name__ == "__main__":  # run as a page by the app's navigation
    page()
