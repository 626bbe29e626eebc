"""Activation: the last HubSpot syncs and retention email sends (and leaderboard publishes),
from the run reports' ``activation`` stage."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import fmt, runs, ui

SINKS = {"hubspot": "HubSpot", "email": "Retention emails", "leaderboard": "Redis leaderboard"}
RUNS_CHARTED = 30

ui.header(
    "Activation",
    note="What each run pushed to HubSpot, SES and Redis: sent, unchanged (already up to date), "
    "failed. From the run reports (the sidebar's filters do not apply).",
)

activity = runs.activation(ui.reports())
if activity.empty:
    st.info("No activation has run yet: `peak run` activates after a passing build.")
    st.stop()

cards = st.columns(len(SINKS))
for card, (sink, label) in zip(cards, SINKS.items(), strict=True):
    mine = activity[activity["sink"] == sink]
    if mine.empty:
        card.metric(label, "never run", border=True)
        continue
    last = mine.iloc[0]
    dry = bool(last["dry_run"])
    card.metric(
        f"{label}: last run {last['started_at']:%d %b %H:%M}" + (" (dry run)" if dry else ""),
        # a dry run sends nothing: it writes what it would send to the outbox
        f"{fmt.count(last['sent'])} " + ("would be sent, none sent" if dry else "sent"),
        f"{fmt.count(last['unchanged'])} unchanged · {fmt.count(last['failed'])} failed",
        delta_color="off" if not last["failed"] else "inverse",
        delta_arrow="off",
        help=f"Status {last['status']}; {fmt.count(last['retried'])} calls retried.",
        border=True,
    )

outcomes = alt.Scale(
    domain=["sent", "unchanged", "failed"], range=["#2ca02c", "#a0a0a0", "#d62728"]
)
charts = st.columns(2)
for column, sink in zip(charts, ("hubspot", "email"), strict=True):
    mine = activity[activity["sink"] == sink].head(RUNS_CHARTED)
    if mine.empty:
        continue
    counts = mine.assign(run=mine["started_at"].dt.strftime("%d %b %H:%M")).melt(
        id_vars=["run_id", "run"],
        value_vars=["sent", "unchanged", "failed"],
        var_name="outcome",
        value_name="count",
    )
    column.altair_chart(
        alt.Chart(counts, title=f"{SINKS[sink]} per run")
        .mark_bar()
        .encode(
            x=alt.X(
                "run:O",
                title=None,
                sort=alt.SortField("run_id"),
                axis=alt.Axis(labelOverlap=False, labelAngle=-45),
            ),
            y=alt.Y("count:Q", title="Records", axis=alt.Axis(format=",d", tickMinStep=1)),
            color=alt.Color("outcome:N", title="Outcome", scale=outcomes),
            tooltip=[
                alt.Tooltip("run_id:N", title="Run"),
                alt.Tooltip("outcome:N", title="Outcome"),
                alt.Tooltip("count:Q", title="Records", format=","),
            ],
        ),
        width="stretch",
    )

st.subheader("Last syncs and sends")
ui.table(
    activity,
    started_at=ui.moment("Run started (UTC)"),
    sink="Sink",
    status="Status",
    dry_run="Dry run",
    records=ui.count("Records"),
    sent=ui.count("Sent"),
    unchanged=ui.count("Unchanged"),
    failed=ui.count("Failed"),
    retried=ui.count("Retried"),
    error="Error",
    run_id="Run",
)
