"""Rating history (admins): every version of every rating of one output, superseded ones too,
found by output id or by searching the inputs.

Ratings are append-only: an expert who changes their mind adds a rating that supersedes the
earlier one. This page shows the whole chain, so an admin can see who changed what and when,
and which version is current (the one feedback policies use).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tuneloop.review_app import context, queries


def page() -> None:
    with context.database() as store:
        viewer = context.viewer(store)
        context.require_admin(viewer)
        st.title("Rating history")
        recent = store.query(
            "SELECT r.output_id, MAX(r.created_at) AS last FROM ratings r "
            "WHERE r.supersedes_id IS NOT NULL GROUP BY r.output_id ORDER BY last DESC LIMIT 10")
        if recent:
            st.text("Recently edited outputs: " + ", ".join(str(row["output_id"])
                                                            for row in recent))
        search = st.text_input("Find rated outputs by their input text",
                               key="history-search").strip()
        found = store.rated_outputs_matching(search) if search else []
        if search and not found:
            st.text("No rated output has that in its input.")
        picked = None
        if found:
            picked = st.selectbox(
                f"Matching outputs ({len(found)}{'+' if len(found) >= 50 else ''})",
                [row["id"] for row in found], key="history-found",
                format_func=lambda i: next(f"{r['id']} · cycle {r['cycle_id']} · "
                                           f"{r['input'][:80]}" for r in found if r["id"] == i))
        output_id = st.number_input("Output id", min_value=1, step=1, value=None,
                                    key="history-output", placeholder="an output id")
        output_id = output_id if output_id is not None else picked
        if output_id is None:
            return
        output = store.output(int(output_id))
        if output is None:
            st.error("There is no output with that id.")
            return
        st.text(f"Output {output['id']} · cycle {output['cycle_id']}")
        st.subheader("Input")
        st.text(output["input"])
        st.subheader("Model answer")
        st.text(output["output"])
        versions = queries.history(store, viewer, int(output_id))
        if not versions:
            st.text("Nobody has rated this output.")
            return
        table = pd.DataFrame(versions)
        table["current"] = table["current"].astype(bool)
        st.dataframe(table, hide_index=True, key="history-table")


if __name__ == "__main__":  # run as a page by the app's navigation
    page()
