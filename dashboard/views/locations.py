"""Locations: visits and members per gym over time (mart_location_daily, dim_users)."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import data, ui

GRAINS = {"Day": None, "Week": "W-SUN", "Month": "M"}

f = ui.filters()
ui.header("Locations", f)

daily = ui.query("location_daily", f)
members = ui.query("home_members", f)
current = daily[daily["period"] == "current"]
if current.empty:
    st.info("No check-ins in this period.")
    st.stop()

grain = st.segmented_control("Per", list(GRAINS), default="Day", key="locations_grain") or "Day"
series = current.copy()
if GRAINS[grain]:
    series["activity_date"] = series["activity_date"].dt.to_period(GRAINS[grain]).dt.start_time
series = series.groupby(["location", "activity_date"], as_index=False).agg(
    visits=("visits", "sum"),
    unique_visitors=("unique_visitors", "mean"),
    new_members=("new_members", "sum"),
)


def line(field: str, title: str, fmt: str) -> alt.Chart:
    return (
        alt.Chart(series, title=title)
        .mark_line(point=len(series["activity_date"].unique()) <= 31)
        .encode(
            x=alt.X("activity_date:T", title=None),
            y=alt.Y(f"{field}:Q", title=None),
            color=alt.Color("location:N", title="Gym"),
            tooltip=[
                alt.Tooltip("location:N", title="Gym"),
                alt.Tooltip("activity_date:T", title=grain),
                alt.Tooltip(f"{field}:Q", title=title, format=fmt),
            ],
        )
    )


left, right = st.columns(2)
left.altair_chart(line("visits", f"Visits per {grain.lower()}", ","), width="stretch")
visitors_title = "Members who visited" + (" (daily average)" if GRAINS[grain] else "")
right.altair_chart(line("unique_visitors", visitors_title, ",.1f"), width="stretch")

joins = (
    alt.Chart(series, title=f"New members per {grain.lower()} (home gym)")
    .mark_bar()
    .encode(
        x=alt.X("activity_date:T", title=None),
        y=alt.Y("new_members:Q", title=None, axis=alt.Axis(format="d", tickMinStep=1)),
        color=alt.Color("location:N", title="Gym"),
        tooltip=[
            alt.Tooltip("location:N", title="Gym"),
            alt.Tooltip("activity_date:T", title=grain),
            alt.Tooltip("new_members:Q", title="New members", format=","),
        ],
    )
)
st.altair_chart(joins, width="stretch")

st.subheader("Per gym")
summary = data.location_summary(daily, members)
ui.table(
    summary,
    location="Gym",
    visits=ui.count("Visits"),
    visits_change=ui.percent("vs previous period"),
    avg_daily_visitors=ui.decimal("Members per day"),
    classes_held=ui.count("Sessions held"),
    new_members=ui.count("New members"),
    members_active=ui.count("Members (active)"),
    members_frozen=ui.count("Frozen"),
    members_cancelled=ui.count("Cancelled"),
)
st.caption(
    "Visits and sessions count where the check-in happened; members and new members count "
    "their home gym. Members: those who had joined by the period's end, by today's status."
)
