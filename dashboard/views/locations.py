"""Locations: visits and members per gym over time, per day, week or month.

A week or month the period cuts (its first or last) is partial: its point is drawn hollow and
named so in the tooltip and the legend, never as a drop."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import data, ui

GRAINS = {"Day": None, "Week": "W-SUN", "Month": "M"}
LABELS = {"Day": "%d %b", "Week": "w/c %d %b", "Month": "%b %Y"}

f = ui.filters()
ui.header("Locations", f)

daily = ui.query("location_daily", f)
members = ui.query("home_members", f)
current = daily[daily["period"] == "current"]
if current.empty:
    st.info("No check-ins in this period.")
    st.stop()

grain = st.segmented_control("Per", list(GRAINS), default="Day", key="locations_grain") or "Day"
series = data.by_grain(current, GRAINS[grain], f)
series["label"] = series["activity_date"].dt.strftime(LABELS[grain])
partial = series["days"] < series["days_in_bucket"]
series["coverage"] = "complete"
series.loc[partial, "coverage"] = (
    "partial: "
    + series.loc[partial, "days"].astype(str)
    + " of "
    + series.loc[partial, "days_in_bucket"].astype(str)
    + " days"
)


def line(field: str, title: str, fmt: str) -> alt.LayerChart | alt.FacetChart:
    base = alt.Chart(series, title=title).encode(
        x=alt.X("activity_date:T", title=None),
        y=alt.Y(f"{field}:Q", title=None, axis=alt.Axis(format=",d", tickMinStep=1)),
        color=alt.Color("location:N", title="Gym"),
    )
    cut = {}
    if GRAINS[grain]:  # a day is never cut: no such legend per day
        cut["shape"] = alt.Shape(
            "period_state:N",
            title=None,
            scale=alt.Scale(
                domain=[f"complete {grain.lower()}", f"partial {grain.lower()} (period cut)"],
                range=["circle", "diamond"],
            ),
        )
    points = base.mark_point(size=45, filled=True).encode(
        fill=alt.condition(alt.datum.coverage == "complete", "location:N", alt.value("white")),
        **cut,
        tooltip=[
            alt.Tooltip("location:N", title="Gym"),
            alt.Tooltip("label:N", title=grain),
            alt.Tooltip(f"{field}:Q", title=title, format=fmt),
            alt.Tooltip("coverage:N", title="Covered"),
        ],
    )
    return alt.layer(base.mark_line(), points)


series["period_state"] = f"complete {grain.lower()}"
series.loc[partial, "period_state"] = f"partial {grain.lower()} (period cut)"
if GRAINS[grain]:
    left, right = st.columns(2)
    left.altair_chart(line("visits", f"Visits per {grain.lower()}", ","), width="stretch")
    right.altair_chart(
        line("unique_visitors", "Members who visited (daily average)", ",.1f"), width="stretch"
    )
    if partial.any():
        st.caption(
            f"Diamonds mark a {grain.lower()} the chosen dates cut: it holds fewer days, so "
            "fewer visits, and is no drop."
        )
else:  # per day, members who visited and visits are nearly the same line: one chart
    st.altair_chart(line("visits", "Visits per day", ","), width="stretch")

joins = (
    alt.Chart(series, title=f"New members per {grain.lower()} (home gym)")
    .mark_bar()
    .encode(
        x=alt.X(
            "label:N",
            title=None,
            sort=alt.SortField("activity_date"),
            axis=alt.Axis(labelOverlap=False, labelAngle=-45 if grain == "Day" else 0),
        ),
        y=alt.Y("new_members:Q", title=None, axis=alt.Axis(format="d", tickMinStep=1)),
        color=alt.Color("location:N", title="Gym"),
        tooltip=[
            alt.Tooltip("location:N", title="Gym"),
            alt.Tooltip("label:N", title=grain),
            alt.Tooltip("new_members:Q", title="New members", format=","),
            alt.Tooltip("coverage:N", title="Covered"),
        ],
    )
)
st.altair_chart(joins, width="stretch")

st.subheader("Peak hours")
hours = ui.query("peak_hours", f)
if hours.empty:
    st.info("No check-in in this period.")
else:
    gyms = sorted(hours["location"].unique())
    gym = st.selectbox("Gym", gyms, key="peak_hours_gym")
    mine = hours[hours["location"] == gym].copy()
    mine["day"] = mine["weekday"].map(lambda d: data.WEEKDAYS[int(d) - 1])
    mine["time"] = mine["hour"].map(lambda h: f"{int(h):02d}:00")
    st.altair_chart(
        alt.Chart(mine, title=f"Check-ins by weekday and hour at {gym} (average per day)")
        .mark_rect()
        .encode(
            x=alt.X("time:O", title="Check-in hour", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("day:O", title=None, sort=list(data.WEEKDAYS)),
            color=alt.Color("per_day:Q", title="Check-ins", scale=alt.Scale(scheme="oranges")),
            tooltip=[
                alt.Tooltip("day:O", title="Day"),
                alt.Tooltip("time:O", title="Hour"),
                alt.Tooltip("per_day:Q", title="Check-ins (average)", format=",.1f"),
                alt.Tooltip("check_ins:Q", title="Check-ins (period)", format=","),
            ],
        )
        .properties(height=alt.Step(30)),
        width="stretch",
    )
    st.caption(
        "When members actually check in (each check-in's local hour), averaged over the "
        "period's days of that weekday: the gym's busy hours, not only the classes' start times."
    )

st.subheader("Membership mix")
mix = ui.query("membership_mix", f)
if mix.empty:
    st.info("No member of the chosen gyms had joined by the period's end.")
else:
    plans = sorted(mix["plan"].dropna().unique())
    chosen_plans = (
        st.pills("Plans", plans, selection_mode="multi", default=plans, key="mix_plans") or plans
    )
    mix = mix[mix["plan"].isin(chosen_plans)].assign(
        status=lambda d: d["status"].str.title(), plan=lambda d: d["plan"].str.title()
    )
    st.altair_chart(
        alt.Chart(mix, title="Members by plan and status (home gym)")
        .mark_bar()
        .encode(
            x=alt.X("members:Q", title="Members", axis=alt.Axis(format=",d", tickMinStep=1)),
            y=alt.Y("plan:N", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=0)),
            color=alt.Color(
                "status:N",
                title="Status",
                scale=alt.Scale(
                    domain=["Active", "Frozen", "Cancelled"],
                    range=["#2ca02c", "#1f77b4", "#a0a0a0"],
                ),
            ),
            tooltip=[
                alt.Tooltip("plan:N", title="Plan"),
                alt.Tooltip("status:N", title="Status"),
                alt.Tooltip("members:Q", title="Members", format=","),
            ],
        )
        .properties(height=alt.Step(34)),
        width="stretch",
    )
    st.caption(
        "Members who had joined by the period's end, by today's plan and status; the plans "
        "chosen above filter this chart."
    )

st.subheader("Per gym")
summary = data.location_summary(daily, members)
ui.table(
    summary,
    location="Gym",
    visits=ui.count("Visits"),
    visits_change=ui.percent("vs previous period", signed=True),
    avg_daily_visitors=ui.count("Members per day (average)"),
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
