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
# One basis for every agreement figure, here and in the CLI (human.* in tuneloop status).
BASIS = ("Basis: the verdict (approve or reject) of single outputs, as human.cohen_kappa, "
         "human.fleiss_kappa and human.krippendorff_alpha in `tuneloop status` and "
         "`tuneloop cycles show`. Which items train is decided on what a policy would learn "
         "(the label, the preferred side): see Held back above.")
COUNTS = ("ratings", "rated_outputs", "reviewers", "agreement_items")


def page() -> None:
    st.set_page_config(layout="wide")
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
                 y_label="ratings saved", height=220)
    st.dataframe(pd.DataFrame(queue), hide_index=True, key="queue-table", width="stretch")
    held_section(store, viewer)


def held_section(store: Any, viewer: dict[str, Any]) -> None:
    """Items kept out of training now and why, and who holds which item at this moment."""
    from datetime import datetime, timezone

    from tuneloop.consensus import held_back

    summary = held_back(store, min_agreement=stats.min_agreement(store, viewer))
    st.subheader("Held back from training")
    st.text(summary.line())
    if summary.reasons:
        rows = [{"output": key[0], "pair with": key[1], "why": why,
                 "back in the queue": key in summary.back_in_queue}
                for key, why in summary.reasons.items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="held-table", width="stretch")
    leases = store.leases(now=datetime.now(timezone.utc))
    st.text(f"Being rated now: {len(leases)} item{'' if len(leases) == 1 else 's'} claimed"
            + (" (" + ", ".join(sorted({row["reviewer"] for row in leases})) + ")"
               if leases else ""))


def experts_section(store: Any, viewer: dict[str, Any]) -> None:
    st.header("Ratings per expert")
    st.dataframe(pd.DataFrame(stats.per_expert(store, viewer)), hide_index=True,
                 key="experts-table", width="stretch")


def agreement_section(store: Any, viewer: dict[str, Any], cycle_id: int, task: str,
                      ratings: list[Any]) -> None:
    st.header(f"Agreement between experts (cycle {cycle_id})")
    figures = stats.agreement(store, viewer, cycle_id, task, ratings)
    verdict = {name: value for name, value in figures["verdict"].items()
               if not (isinstance(value, float) and math.isnan(value))}
    if not verdict:
        st.text("No output of this cycle has been rated by two experts yet.")
        return
    st.caption(BASIS)
    columns = st.columns(4)
    columns[0].metric("Items rated by several", int(verdict.get("agreement_items", 0)))
    columns[1].metric("Krippendorff's alpha", _figure(verdict.get("krippendorff_alpha")))
    columns[2].metric("Fleiss' kappa", _figure(verdict.get("fleiss_kappa")))
    columns[3].metric("Cohen's kappa (two experts)", _figure(verdict.get("cohen_kappa")))
    if figures["pairs"]:
        st.text("Cohen's kappa for every two experts (same basis):")
        st.dataframe(pd.DataFrame(figures["pairs"]), hide_index=True, key="kappa-table",
                     width="stretch")


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def metrics_section(store: Any, viewer: dict[str, Any]) -> None:
    st.header("Metrics across cycles")
    rows = pd.DataFrame(stats.metrics_across_cycles(store, viewer))
    if rows.empty:
        st.text("No metrics recorded yet.")
    for split in SPLITS:
        part = rows[rows["split"] == split] if not rows.empty else rows
        part = part[~part["metric"].isin(COUNTS)] if not part.empty else part
        if part.empty:
            continue
        st.subheader(f"{split.capitalize()} figures")
        st.altair_chart(cycle_chart(part), key=f"chart-{split}")


def cycle_chart(part: pd.DataFrame) -> Any:
    """Figures across cycles: cycles as whole-number steps (an ordinal axis, so one cycle is
    a visible point with the tick "1", not an empty plot with the tick "1.000000"), a line and
    a point per metric."""
    import altair as alt

    data = part.groupby(["cycle", "metric"], as_index=False)["value"].last()
    return alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=60)).encode(
        x=alt.X("cycle:O", title="cycle", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("value:Q", title=None),
        color=alt.Color("metric:N"),
        tooltip=["cycle", "metric", alt.Tooltip("value:Q", format=".4f")]).properties(
        height=260)
    wins = stats.pairwise_wins(store, viewer)
    if wins:
        st.subheader("Pairwise comparisons: newer answer against the previous cycle's")
        st.dataframe(pd.DataFrame(wins), hide_index=True, key="wins-table", width="stretch")


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
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="disagreement-table",
                 width="stretch")


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
