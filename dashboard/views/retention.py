"""Retention: cohort retention by join month, churn and at-risk members over time, and the
at-risk members to call (handle and masked email only)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data, fmt, ui

#: What people read for the marts' codes.
STATUS = {"active": "Active", "at_risk": "At risk", "churned": "Churned"}
REASON = {"cancelled": "Cancelled", "inactive": "Stopped visiting"}

f = ui.filters()
ui.header("Retention", f)

now = ui.query("churn_status_now", f)
by_status = now.groupby("churn_status")["members"].sum()
total = by_status.sum()
cards = st.columns(3)
MEANING = {
    "active": "visiting at their usual rate",
    "at_risk": "visiting far less than they used to",
    "churned": "cancelled, or no visit for the churn threshold's days",
}
for card, (status, label) in zip(cards, STATUS.items(), strict=True):
    n = by_status.get(status, 0)
    card.metric(
        f"Churn status: {label.lower()}",
        fmt.count(n),
        help=f"Members {MEANING[status]} as of the last daily run: "
        f"{fmt.pct(n / total if total else None)} of the chosen gyms' members. Not the "
        "overview's members who visited in the period.",
        border=True,
    )

st.subheader("Member movement")
per = "W-SUN" if f.days <= 92 else "M"
movement = ui.query("member_movement", f, per)
if movement.empty:
    st.info("No member in this period.")
else:
    word = "week" if per == "W-SUN" else "month"
    movement["label"] = movement["bucket"].dt.strftime("w/c %d %b" if per == "W-SUN" else "%b %Y")
    movement.loc[movement["partial"], "label"] += " (partial)"
    flows = movement.melt(
        id_vars=["label", "bucket"], value_vars=["joined", "lost"], var_name="flow", value_name="n"
    )
    flows["flow"] = flows["flow"].map({"joined": "Joined", "lost": "Lost (churned)"})
    flows.loc[flows["flow"] == "Lost (churned)", "n"] *= -1
    st.altair_chart(
        alt.Chart(flows, title=f"Members who joined and who were lost, per {word}")
        .mark_bar()
        .encode(
            x=alt.X(
                "label:N",
                title=None,
                sort=alt.SortField("bucket"),
                axis=alt.Axis(labelOverlap=False, labelAngle=-45),
            ),
            y=alt.Y("n:Q", title="Members", axis=alt.Axis(format=",d", tickMinStep=1)),
            color=alt.Color(
                "flow:N",
                title=None,
                scale=alt.Scale(domain=["Joined", "Lost (churned)"], range=["#2ca02c", "#d62728"]),
            ),
            tooltip=[
                alt.Tooltip("label:N", title=word.title()),
                alt.Tooltip("flow:N", title="Flow"),
                alt.Tooltip("n:Q", title="Members", format="+,"),
            ],
        ),
        width="stretch",
    )
    ui.table(
        movement,
        label=word.title(),
        start=ui.count("Members at start"),
        joined=ui.count("Joined"),
        lost=ui.count("Lost"),
        net=st.column_config.NumberColumn("Net", format="%+d"),
        end=ui.count("Members at end"),
        attrition=ui.percent("Attrition"),
    )
    st.caption(
        f"Per {word} of the chosen dates (a cut one marked partial), members of the chosen home "
        "gyms: lost means churned (cancelled, or inactive past the threshold) on that date; "
        "attrition is lost over the members at the start."
    )

st.subheader("New members' first 30 days")
data_end = ui.bounds().last
newcomers = ui.query("onboarding", f, data_end) if data_end else None
if newcomers is None or newcomers.empty:
    st.info(
        f"No member of the chosen gyms completed their first {data.ONBOARDING_DAYS} days "
        "in this period."
    )
else:
    came = newcomers["first_visit"].notna()
    back = newcomers["second_visit"].notna()
    to_second = (newcomers["second_visit"] - newcomers["first_visit"]).dt.days
    cols = st.columns(4)
    cols[0].metric("New members", fmt.count(len(newcomers)), border=True)
    cols[1].metric(
        "Visits in their first 30 days (median)",
        fmt.number(float(newcomers["visits_30d"].median()), 1),
        border=True,
    )
    cols[2].metric(
        "Came back for a second day",
        fmt.pct(back.sum() / len(newcomers)),
        help="Share of the new members who came on two different days (ever, up to today).",
        border=True,
    )
    cols[3].metric(
        "Days from first to second visit (median)",
        fmt.number(float(to_second.median()), 0) if back.any() else "–",
        border=True,
    )
    st.caption(
        f"Members whose first {data.ONBOARDING_DAYS} days ended in the chosen dates; "
        f"{fmt.count((~came).sum())} of them have not visited yet."
    )

first, last = data.cohort_window(f)
cohorts = ui.query("cohorts", f)
history_start = ui.bounds().first
if history_start is not None and not cohorts.empty:
    # a cohort that joined before the check-ins begin has no visits of its first months on
    # record: its 0% then 100% would be the history's edge, not the members' retention
    known = cohorts["cohort_month"] >= pd.Timestamp(history_start.replace(day=1))
    if not known.all():
        st.caption(
            f"Cohorts that joined before {history_start:%b %Y}, when the check-in history "
            "starts, are left out: their early months have no visits on record."
        )
    cohorts = cohorts[known]
st.subheader("Cohort retention")
st.caption(
    f"Members who joined in a month (rows, {first:%b %Y} – {last:%b %Y}) and the share of them "
    "who visited N months later, by home gym."
)
if cohorts.empty:
    st.info("No cohort in this window.")
else:
    cohorts["cohort"] = cohorts["cohort_month"].dt.strftime("%Y-%m")
    base = alt.Chart(cohorts).encode(
        x=alt.X("months_since_join:O", title="Months since joining"),
        y=alt.Y("cohort:O", title="Joined", sort="descending"),
    )
    heat = base.mark_rect().encode(
        color=alt.Color(
            "retention_rate:Q",
            title="Retained",
            scale=alt.Scale(scheme="greens", domain=[0, 1]),
            legend=alt.Legend(format=".0%"),
        ),
        tooltip=[
            alt.Tooltip("cohort:O", title="Joined"),
            alt.Tooltip("months_since_join:O", title="Months since"),
            alt.Tooltip("retention_rate:Q", title="Retained", format=".1%"),
            alt.Tooltip("active_members:Q", title="Visited", format=","),
            alt.Tooltip("cohort_size:Q", title="Cohort", format=","),
        ],
    )
    labels = base.mark_text(fontSize=9).encode(
        text=alt.Text("retention_rate:Q", format=".0%"),
        color=alt.condition(alt.datum.retention_rate > 0.6, alt.value("white"), alt.value("black")),
    )
    st.altair_chart((heat + labels).properties(height=alt.Step(26)), width="stretch")

st.subheader("Churn over time")
churned = ui.query("churned", f)
history = ui.query("status_history", f)
left, right = st.columns(2)
with left:
    if churned.empty:
        st.info("Nobody churned in this period.")
    else:
        weekly = (
            churned.assign(
                week=churned["churn_day"].dt.to_period("W-SUN").dt.start_time,
                reason=churned["churn_reason"].map(REASON).fillna("Other"),
            )
            .groupby(["week", "reason"], as_index=False)["members"]
            .sum()
        )
        weekly["label"] = weekly["week"].dt.strftime("w/c %d %b")
        st.altair_chart(
            alt.Chart(weekly, title="Members who churned, per week (by churn date)")
            .mark_bar()
            .encode(
                x=alt.X(
                    "label:N",
                    title=None,
                    sort=alt.SortField("week"),
                    axis=alt.Axis(labelOverlap=False, labelAngle=-45),
                ),
                y=alt.Y("members:Q", title=None, axis=alt.Axis(format="d", tickMinStep=1)),
                color=alt.Color("reason:N", title="Reason"),
                tooltip=[
                    alt.Tooltip("label:N", title="Week"),
                    alt.Tooltip("reason:N", title="Reason"),
                    alt.Tooltip("members:Q", title="Members", format=","),
                ],
            ),
            width="stretch",
        )
with right:
    risky = history[history["churn_status"].isin(["at_risk", "churned"])].copy()
    risky["status"] = risky["churn_status"].map(STATUS)
    if risky.empty:
        st.info("No daily run recorded a status in this period.")
    else:
        st.altair_chart(
            alt.Chart(risky, title="At risk and churned at each daily run")
            .mark_line(point=True, interpolate="step-after")
            .encode(
                x=alt.X("as_of:T", title=None),
                y=alt.Y("members:Q", title=None, axis=alt.Axis(format="d", tickMinStep=1)),
                color=alt.Color("status:N", title="Status"),
                tooltip=[
                    alt.Tooltip("as_of:T", title="Run of"),
                    alt.Tooltip("status:N", title="Status"),
                    alt.Tooltip("members:Q", title="Members", format=","),
                ],
            ),
            width="stretch",
        )

st.subheader("At risk now")
at_risk = ui.query("at_risk_members", f)
links = ui.hubspot_links()
at_risk = at_risk.assign(hubspot=at_risk["user_id"].map(links).fillna(""))
st.caption(
    f"The {fmt.count(len(at_risk))} at-risk members with the steepest drop in weekly visits "
    f"(of {fmt.count(by_status.get('at_risk', 0))}); emails masked."
)
ui.table(
    at_risk,
    user_id="Member id",
    handle="Member",
    email_masked="Email",
    home_location="Home gym",
    at_risk_since=ui.date("At risk since"),
    last_visit_date=ui.date("Last visit"),
    days_inactive=ui.count("Days inactive"),
    usual_class="Usual class",
    usual_gym="Usual gym",
    baseline_weekly_rate=ui.decimal("Visits/week before"),
    recent_weekly_rate=ui.decimal("Visits/week lately"),
    hubspot=st.column_config.LinkColumn(
        "HubSpot", display_text="Open", help="The member's contact record in HubSpot"
    ),
)
ui.download_csv(
    at_risk,
    "at-risk-members.csv",
    label="Download the at-risk list (CSV)",
    user_id="Member id",
    handle="Member",
    email_masked="Email",
    home_location="Home gym",
    at_risk_since="At risk since",
    last_visit_date="Last visit",
    days_inactive="Days inactive",
    usual_class="Usual class",
    usual_gym="Usual gym",
    hubspot="HubSpot record",
)
