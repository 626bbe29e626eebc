"""Member: one member's profile, visits and churn-status history, by the booking system's
member id (the at-risk list names it). Handle and masked e-mail only."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import fmt, ui

STATUS = {"active": "Active", "at_risk": "At risk", "churned": "Churned"}
REASON = {"cancelled": "Cancelled", "inactive": "Stopped visiting"}

ui.header(
    "Member",
    note="One member's visits and churn status over time (the sidebar's filters do not apply).",
)
at_risk = ui.query("at_risk_members", ui.filters())
suggested = list(at_risk["user_id"]) if "user_id" in at_risk else []
user_id = st.text_input(
    "Member id",
    value=suggested[0] if suggested else "",
    key="member_id",
    help="The booking system's member id (the at-risk list on Retention names it).",
).strip()
if not user_id:
    st.info("Enter a member id.")
    st.stop()
profile = ui.query("member_profile", user_id)
if profile.empty:
    st.info("No member with this id in the members data.")
    st.stop()
who = profile.iloc[0]
cards = st.columns(4)
cards[0].metric("Member", str(who["handle"]), help=str(who["email_masked"]), border=True)
cards[1].metric("Home gym", str(who["home_location"]), border=True)
cards[2].metric("Plan", str(who["plan"]).title(), border=True)
cards[3].metric("Joined", f"{who['join_date']:%d %b %Y}", border=True)

visits = ui.query("member_visits", user_id)
st.subheader("Visits")
if visits.empty:
    st.info("No check-in on record.")
else:
    weekly = (
        visits.assign(week=visits["local_date"].dt.to_period("W-SUN").dt.start_time)
        .groupby("week", as_index=False)
        .size()
        .rename(columns={"size": "visits"})
    )
    st.altair_chart(
        alt.Chart(weekly, title=f"Check-ins per week ({fmt.count(len(visits))} in all)")
        .mark_bar()
        .encode(
            x=alt.X("week:T", title=None),
            y=alt.Y("visits:Q", title="Check-ins", axis=alt.Axis(format="d", tickMinStep=1)),
            tooltip=[
                alt.Tooltip("week:T", title="Week of"),
                alt.Tooltip("visits:Q", title="Check-ins"),
            ],
        ),
        width="stretch",
    )
    ui.table(
        visits.head(50),
        checked_in_local=ui.moment("Checked in (local)"),
        class_name="Class",
        instructor="Instructor",
        location="Gym",
    )

st.subheader("Churn status over time")
history = ui.query("member_status_history", user_id)
if history.empty:
    st.info("No daily run has classified this member yet.")
else:
    history = history.assign(
        status=history["churn_status"].map(STATUS).fillna("Unknown"),
        reason=history["churn_reason"].map(REASON).fillna("–"),
    )
    ui.table(
        history,
        valid_from=ui.date("From"),
        valid_to=ui.date("Until"),
        status="Status",
        reason="Reason",
    )
