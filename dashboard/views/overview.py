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
    "Members who visited",
    fmt.count(now["active_members"]),
    fmt.delta_count(now["active_members"], before["active_members"]),
    help="Members with at least one check-in at the chosen gyms in the period (not the "
    "retention page's churn status).",
    border=True,
)
cards[1].metric(
    "Visits",
    fmt.count(now["visits"]),
    fmt.delta_count(now["visits"], before["visits"]),
    help="Check-ins at the chosen gyms in the period.",
    border=True,
)
cards[2].metric(
    "Churn rate",
    fmt.pct(now["churn_rate"]),
    churn_delta,
    delta_color="inverse" if churn_moved else "off",
    help=(
        "Members who churned in the period (cancelled, or the day their inactivity reached "
        "the threshold) over the members who could have: joined by the "
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

daily = ui.query("daily_visits", f).copy()
# The previous period (same weekdays, whole weeks before) is drawn on the current one's dates so
# the two lines overlay, Monday on Monday.
daily["date"] = pd.Timestamp(f.start) + pd.to_timedelta(daily["day"] - 1, unit="D")
prev = f.previous()
labels = {
    "current": f"This period ({f.start:%d %b} – {f.end:%d %b})",
    "previous": f"Previous, same weekdays ({prev.start:%d %b} – {prev.end:%d %b})",
}
daily["series"] = daily["period"].map(labels)
chart = (
    alt.Chart(daily, title="Visits per day")
    .mark_line(point=f.days <= 31)
    .encode(
        x=alt.X("date:T", title=None),
        y=alt.Y("visits:Q", title="Visits", axis=alt.Axis(format=",d", tickMinStep=1)),
        color=alt.Color(
            "series:N",
            title=None,
            scale=alt.Scale(domain=list(labels.values()), range=["#1f77b4", "#a0a0a0"]),
            legend=alt.Legend(orient="top"),
        ),
        strokeDash=alt.StrokeDash(
            "series:N",
            title=None,
            scale=alt.Scale(domain=list(labels.values()), range=[[1, 0], [5, 3]]),
            legend=alt.Legend(orient="top"),
        ),
        tooltip=[
            alt.Tooltip("activity_date:T", title="Day"),
            alt.Tooltip("series:N", title="Period"),
            alt.Tooltip("visits:Q", title="Visits", format=","),
            alt.Tooltip("new_members:Q", title="New joins", format=","),
        ],
    )
)
st.altair_chart(chart, width="stretch")

st.subheader("Visits per member")
per_member = ui.query("visits_per_member", f)
if per_member.empty:
    st.info("No member of the chosen gyms had joined by the period's end.")
else:
    visits = per_member["visits"]
    none = int((visits == 0).sum())
    cols = st.columns(3)
    cols[0].metric("Median visits per member", fmt.number(float(visits.median()), 1), border=True)
    cols[1].metric(
        "Members with no visit",
        fmt.count(none),
        help="Members of the chosen gyms (joined by the period's end, not cancelled) "
        "with no check-in in the period.",
        border=True,
    )
    cols[2].metric("Share with no visit", fmt.pct(none / len(visits)), border=True)
    bins = [-1, 0, 1, 3, 7, 11, 19, float("inf")]
    names = ["0", "1", "2–3", "4–7", "8–11", "12–19", "20+"]
    spread = (
        pd.cut(visits, bins=bins, labels=names)
        .value_counts()
        .reindex(names, fill_value=0)
        .rename_axis("visits")
        .reset_index(name="members")
    )
    st.altair_chart(
        alt.Chart(spread, title="Members by visits in the period")
        .mark_bar()
        .encode(
            x=alt.X(
                "visits:N",
                title="Visits",
                sort=names,
                axis=alt.Axis(labelOverlap=False, labelAngle=0),
            ),
            y=alt.Y("members:Q", title="Members", axis=alt.Axis(format=",d", tickMinStep=1)),
            tooltip=[
                alt.Tooltip("visits:N", title="Visits"),
                alt.Tooltip("members:Q", title="Members", format=","),
            ],
        ),
        width="stretch",
    )
