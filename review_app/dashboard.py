"""The admin dashboard: is the review keeping up, do the experts agree, is the model improving?

Shows, for the cycle picked at the top: the review queue and its throughput, ratings per expert,
agreement between experts (Cohen's kappa per pair of experts, Krippendorff's alpha, Fleiss'
kappa where every item has the same number of raters), metrics and human metrics across cycles as
charts, pairwise win rates, the cycle's confusion matrix, the items with the most disagreement,
and a download of every rating as JSON Lines. Tables are ``st.dataframe`` (cells are text, never
Markdown or HTML), so model text in them stays inert.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from tuneloop.review_app import context, stats

SPLITS = ("validation", "test", "human")


def page() -> None:
    with context.database() as store:
        viewer = context.viewer(store)
        context.require_admin(viewer)
        st.title("Dashboard")
        cycles = stats.cycles(store, viewer)
        if not cycles:
            st.info("No cycles yet: run one with `tuneloop run`.")
            return
        by_id = {row["id"]: row for row in cycles}
        cycle_id = st.selectbox("Cycle", list(by_id), key="dashboard-cycle",
                                format_func=lambda c: f"Cycle {c} ({by_id[c]['status']}, "
                                                      f"{by_id[c]['task']})")
        task = by_id[cycle_id]["task"]
        ratings = stats.cycle_ratings(store, viewer, cycle_id)  # read once for three sections
        queue_section(store, viewer)
        experts_section(store, viewer)
        agreement_section(store, viewer, cycle_id, task, ratings)
        metrics_section(store, viewer)
        if task == "classification":
            confusion_section(store, viewer, cycle_id, ratings)
        disagreement_section(store, viewer, cycle_id, task, ratings)
        export_section()


def queue_section(store: Any, viewer: dict[str, Any]) -> None:
    st.header("Review queue")
    queue = stats.queue_by_cycle(store, viewer)
    days = stats.throughput(store, viewer, days=14)
    columns = st.columns(4)
    columns[0].metric("Open items", sum(row["open"] or 0 for row in queue))
    columns[1].metric("Done items", sum(row["done"] or 0 for row in queue))
    columns[2].metric("Ratings today", days[-1]["ratings"])
    columns[3].metric("Ratings, last 7 days", sum(day["ratings"] for day in days[-7:]))
    st.bar_chart(pd.DataFrame(days).set_index("day"), y="ratings", x_label="day",
                 y_label="ratings saved")
    st.dataframe(pd.DataFrame(queue), hide_index=True, key="queue-table")


def experts_section(store: Any, viewer: dict[str, Any]) -> None:
    st.header("Ratings per expert")
    st.dataframe(pd.DataFrame(stats.per_expert(store, viewer)), hide_index=True,
                 key="experts-table")


def agreement_section(store: Any, viewer: dict[str, Any], cycle_id: int, task: str,
                      ratings: list[Any]) -> None:
    st.header(f"Agreement between experts (cycle {cycle_id})")
    figures = stats.agreement(store, viewer, cycle_id, task, ratings)
    verdict = {name: value for name, value in figures["verdict"].items()
               if not (isinstance(value, float) and math.isnan(value))}
    judged = figures["judgement"]
    if not verdict and not judged["items"]:
        st.text("No output of this cycle has been rated by two experts yet.")
        return
    columns = st.columns(4)
    columns[0].metric("Items rated by several", judged["items"])
    columns[1].metric("Krippendorff's alpha (judgement)", _figure(judged["krippendorff_alpha"]))
    columns[2].metric("Krippendorff's alpha (verdict)", _figure(verdict.get("krippendorff_alpha")))
    columns[3].metric("Fleiss' kappa (verdict)", _figure(verdict.get("fleiss_kappa")))
    if figures["pairs"]:
        st.text("Cohen's kappa for every two experts (on the judgement a policy would learn):")
        st.dataframe(pd.DataFrame(figures["pairs"]), hide_index=True, key="kappa-table")


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def metrics_section(store: Any, viewer: dict[str, Any]) -> None:
    st.header("Metrics across cycles")
    rows = pd.DataFrame(stats.metrics_across_cycles(store, viewer))
    if rows.empty:
        st.text("No metrics recorded yet.")
    for split in SPLITS:
        part = rows[rows["split"] == split] if not rows.empty else rows
        if part.empty:
            continue
        wide = part.pivot_table(index="cycle", columns="metric", values="value", aggfunc="last")
        if split == "human":
            wide = wide.drop(columns=[c for c in wide.columns if c in (
                "ratings", "rated_outputs", "reviewers", "agreement_items")])
        st.subheader(f"{split.capitalize()} figures")
        st.line_chart(wide, x_label="cycle")
    wins = stats.pairwise_wins(store, viewer)
    if wins:
        st.subheader("Pairwise comparisons: newer answer against the previous cycle's")
        st.dataframe(pd.DataFrame(wins), hide_index=True, key="wins-table")


def confusion_section(store: Any, viewer: dict[str, Any], cycle_id: int,
                      ratings: list[Any]) -> None:
    st.header(f"Confusion matrix (cycle {cycle_id})")
    truth = st.radio("True labels from", ["experts", "reference"], horizontal=True,
                     key="confusion-truth",
                     format_func=lambda t: {"experts": "the experts' ratings",
                                            "reference": "the data's labels"}[t])
    labels, matrix = stats.confusion_matrix(store, viewer, cycle_id, truth, ratings)
    if not matrix:
        st.text("Nothing to count yet.")
        return
    st.text("Rows: the true label; columns: the model's label.")
    st.dataframe(pd.DataFrame(matrix).set_index("true label")[labels], key="confusion-table")


def disagreement_section(store: Any, viewer: dict[str, Any], cycle_id: int, task: str,
                         ratings: list[Any]) -> None:
    st.header(f"Most disagreement (cycle {cycle_id})")
    rows = stats.most_disagreement(store, viewer, cycle_id, task, ratings=ratings)
    if not rows:
        st.text("No two experts disagree on an item of this cycle.")
        return
    st.text("Open an item's full rating history on the Rating history page.")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="disagreement-table")


def export_section() -> None:
    st.header("Export")
    session = st.session_state.get("session")
    st.download_button("Download every rating (JSON Lines)", data=lambda: export(session),
                       file_name="ratings.jsonl", mime="application/jsonl", key="export",
                       on_click="ignore")


def export(session: Any) -> str:
    """The export, made when the button is pressed, for an admin session that is still valid."""
    import io

    from tuneloop.auth import current_reviewer
    from tuneloop.feedback_io import export_rows, write_jsonl
    from tuneloop.review_app.queries import require_admin
    from tuneloop.store import Store

    path, _ = context.settings()
    with Store(path, migrate=False) as store:  # type: ignore[arg-type]
        require_admin(current_reviewer(store, session), "the export")
        buffer = io.StringIO()
        write_jsonl(export_rows(store, all_versions=True), buffer)
    return buffer.getvalue()


if __name__ == "__main__":  # run as a page by the app's navigation
    page()
