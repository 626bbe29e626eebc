"""Overview: active members, visits, churn rate and new joins against the previous period."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import fmt, ui

f = ui.filters()
ui.header("Overview", f)

kpis = ui.query("overview", f)
now, before = kpis["current"], kpis["previous"]
cards = st.columns(4)
churn_delta = fmt.delta_points(now["churn_rate"], before["churn_rate"])
churn_moved = churn_delta is not None and churn_delta.lstrip("+-") != "0.0 pp"
cards[0].metric(
    "Active members",
    fmt.count(now["active_members"]),
    fmt.delta_count(now["active_members"], before["active_members"]),
    help="Members with at least one check-in at the chosen gyms in the period.",
    border=True,
)
cards[1].metric(
    "Visits",
    fmt.count(now["visits"]),
    fmt.delta_count(now["visits"], before["visits"]),
    help="Check-ins at the chosen gyms (mart_location_daily).",
    border=True,
)
cards[2].metric(
    "Churn rate",
    fmt.pct(now["churn_rate"]),
    churn_delta,
    delta_color="inverse" if churn_moved else "off",
    help=(
        "Members who churned in the period (mart_churn's churn_date: cancellation, or the day "
        "inactivity reached the threshold) over the members who could have: joined by the "
        f"period's end and not churned before it began. This period: "
        f"{fmt.count(now['churned'])} of {fmt.count(now['members_who_could_churn'])}."
    ),
    border=True,
)
cards[3].metric(
    "New joins",
    fmt.count(now["new_joins"]),
    fmt.delta_count(now["new_joins"], before["new_joins"]),
    help="Members whose home gym is one of the chosen gyms and who joined in the period.",
    border=True,
)

daily = ui.query("daily_visits", f)
# The previous period is drawn on the current one's dates so the two lines overlay.
daily["date"] = pd.Timestamp(f.start) + pd.to_timedelta(daily["day"] - 1, unit="D")
chart = (
    alt.Chart(daily, title="Visits per day")
    .mark_line(point=f.days <= 31)
    .encode(
        x=alt.X("date:T", title=None),
        y=alt.Y("visits:Q", title="Visits"),
        color=alt.Color(
            "period:N",
            title="Period",
            scale=alt.Scale(domain=["current", "previous"], range=["#1f77b4", "#a0a0a0"]),
        ),
        strokeDash=alt.StrokeDash("period:N", legend=None),
        tooltip=[
            alt.Tooltip("activity_date:T", title="Day"),
            alt.Tooltip("period:N", title="Period"),
            alt.Tooltip("visits:Q", title="Visits", format=","),
            alt.Tooltip("new_members:Q", title="New joins", format=","),
        ],
    )
)
st.altair_chart(chart, width="stretch")
