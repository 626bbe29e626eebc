"""Classes and instructors: utilisation by weekday and hour, the fullest and emptiest classes,
and instructors' popularity, for the chosen period and gyms.

Utilisation is mart_class_utilisation's: check-ins over (sessions held x capacity), a session
being a class on a day with at least one check-in; computed here from fct_attendance so that it
follows the date filter (over all dates it equals the mart's).
"""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import data, fmt, ui

SHOWN = 10

f = ui.filters()
ui.header("Classes and instructors", f)

classes = ui.query("class_period", f)
held = classes[classes["sessions_held"] > 0]
if held.empty:
    st.info("No class had a check-in in this period.")
    st.stop()

grid = data.utilisation_grid(classes)
grid["hour"] = grid["start_hour"].map(lambda h: f"{int(h):02d}:00")
cards = st.columns(3)
places = (held["sessions_held"] * held["capacity"]).sum()
cards[0].metric("Utilisation", fmt.pct(held["check_ins"].sum() / places), border=True)
cards[1].metric("Sessions held", fmt.count(held["sessions_held"].sum()), border=True)
cards[2].metric(
    "Classes without a check-in",
    fmt.count((classes["sessions_held"] == 0).sum()),
    help="Timetabled classes of the chosen gyms with no check-in in the period.",
    border=True,
)

heatmap = (
    alt.Chart(grid, title="Utilisation by weekday and start hour")
    .mark_rect()
    .encode(
        x=alt.X("hour:O", title="Class start", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("weekday:O", title=None, sort=list(data.WEEKDAYS)),
        color=alt.Color(
            "utilisation:Q",
            title="Utilisation",
            scale=alt.Scale(scheme="blues"),
            legend=alt.Legend(format=".0%"),
        ),
        tooltip=[
            alt.Tooltip("weekday:O", title="Day"),
            alt.Tooltip("hour:O", title="Class start"),
            alt.Tooltip("utilisation:Q", title="Utilisation", format=".1%"),
            alt.Tooltip("check_ins:Q", title="Check-ins", format=","),
            alt.Tooltip("sessions:Q", title="Sessions", format=","),
            alt.Tooltip("classes:Q", title="Classes", format=","),
        ],
    )
)
st.altair_chart(heatmap.properties(height=alt.Step(32)), width="stretch")

columns = {
    "class_name": "Class",
    "utilisation": ui.percent("Utilisation"),
    "location": "Gym",
    "weekday": "Day",
    "start_time": "Starts",
    "instructor": "Instructor",
    "sessions_held": ui.count("Sessions"),
    "check_ins": ui.count("Check-ins"),
    "max_attendees": ui.count("Most in one session"),
    "capacity": ui.count("Capacity"),
}
ranked = held.sort_values(["utilisation", "check_ins", "class_id"], ascending=[False, False, True])
st.subheader("Fullest classes")
ui.table(ranked.head(SHOWN), **columns)
st.subheader("Emptiest classes")
ui.table(ranked.tail(SHOWN).iloc[::-1], **columns)

st.subheader("Instructors")
teachers = data.with_utilisation(ui.query("instructors", f), classes)
bars = (
    alt.Chart(teachers, title="Check-ins per instructor")
    .mark_bar()
    .encode(
        x=alt.X("check_ins:Q", title="Check-ins"),
        y=alt.Y(
            "instructor:N",
            title=None,
            sort="-x",
            axis=alt.Axis(labelOverlap=False, labelLimit=0),  # every bar named, in full
        ),
        color=alt.Color(
            "utilisation:Q",
            title="Utilisation",
            scale=alt.Scale(scheme="blues"),
            legend=alt.Legend(format=".0%"),
        ),
        tooltip=[
            alt.Tooltip("instructor:N", title="Instructor"),
            alt.Tooltip("check_ins:Q", title="Check-ins", format=","),
            alt.Tooltip("members:Q", title="Members", format=","),
            alt.Tooltip("classes:Q", title="Classes", format=","),
            alt.Tooltip("utilisation:Q", title="Utilisation", format=".1%"),
        ],
    )
)
st.altair_chart(bars.properties(height=alt.Step(22)), width="stretch")
ui.table(
    teachers,
    instructor="Instructor",
    check_ins=ui.count("Check-ins"),
    members=ui.count("Members"),
    classes=ui.count("Classes"),
    utilisation=ui.percent("Utilisation"),
)
