"""Leaderboard: this week's and previous weeks' boards, overall and per gym, live from Redis.

When Redis cannot be reached (or holds no board) the page reads ``mart_leaderboard_weekly``
instead and says so: the same ranks as of the last dbt build.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import fmt, live, ui

TOP = 20

f = ui.filters()
ui.header(
    "Leaderboard",
    note="Weekly visits, ranked (ties: longer streak, then earlier first check-in). "
    "The week is chosen here; the gym filter picks the gym boards shown.",
)

FALLBACK = (
    "Redis is unreachable, so this is mart_leaderboard_weekly from the warehouse instead: "
    "the boards as of the last dbt build."
)


def mart_weeks() -> tuple[pd.DataFrame, list[live.Week]]:
    index = ui.query("mart_boards")
    seen = index.drop_duplicates("week_start")
    weeks = [
        live.Week(iso, ts.date())
        for iso, ts in zip(seen["iso_week"], seen["week_start"], strict=True)
    ]
    return index, weeks


weeks_live = ui.live_weeks()
from_redis = weeks_live.error is None and bool(weeks_live.weeks)
if from_redis:
    weeks = weeks_live.weeks
else:
    if weeks_live.error:
        st.warning(f"{FALLBACK} ({fmt.mask_emails(weeks_live.error)})", icon=":material/cloud_off:")
    else:
        st.info(
            "Redis holds no leaderboard under this prefix yet (run `peak activate leaderboard`), "
            "so this is mart_leaderboard_weekly from the warehouse instead."
        )
    index, weeks = mart_weeks()

if not weeks:
    st.info("No leaderboard yet: the mart is empty.")
    st.stop()


def week_label(week: live.Week) -> str:
    newest = " (this week)" if week == weeks[0] else ""
    return f"{week.iso_week}: week of {week.week_start:%d %b %Y}{newest}"


week = st.selectbox("Week", weeks, format_func=week_label, key="leaderboard_week")

snapshot = ui.live_week(week, weeks, TOP) if from_redis else None
if snapshot is not None and snapshot.get("error"):  # Redis went away since the weeks were read
    st.warning(f"{FALLBACK} ({fmt.mask_emails(snapshot['error'])})", icon=":material/cloud_off:")
    snapshot = None
    index, _ = mart_weeks()
if snapshot is not None:
    st.caption(f"Live from Redis (prefix `{ui.context().settings.leaderboard.prefix}`).")
    names: dict[str, str] = snapshot["boards"]
    tops: dict[str, pd.DataFrame] = snapshot["tops"]
    sizes: dict[str, int] = snapshot["sizes"]
    winners: pd.DataFrame = snapshot["winners"]
else:
    of_week = index[index["week_start"] == pd.Timestamp(week.week_start)]
    boards = sorted(of_week["board"], key=lambda b: (b != live.OVERALL, b))
    names = {b: b for b in boards}
    tops = {b: ui.query("mart_board", week.week_start, b, TOP) for b in boards}
    sizes = dict(zip(of_week["board"], of_week["members"], strict=True))
    winners = ui.query("mart_winners")

chosen = [
    slug
    for slug, name in names.items()
    if slug == live.OVERALL or not f.locations or name in f.locations
]
if not chosen:
    st.info("No board this week.")
    st.stop()
tabs = st.tabs(["Overall" if slug == live.OVERALL else names[slug] for slug in chosen])
for tab, slug in zip(tabs, chosen, strict=True):
    with tab:
        board = tops[slug]
        st.caption(
            f"Top {min(TOP, len(board))} of {fmt.count(sizes.get(slug, len(board)))} members "
            "who checked in that week"
            + ("" if slug == live.OVERALL else f" at {names[slug]}")
            + "."
        )
        columns = {
            "rank": ui.count("Rank"),
            "handle": "Member",
            "visits": ui.count("Visits"),
        }
        if "streak_weeks" in board:
            columns["streak_weeks"] = ui.count("Streak (weeks)")
        ui.table(board, **columns)

st.subheader("Previous weeks' winners (overall)")
ui.table(
    winners[winners["week_start"] < pd.Timestamp(weeks[0].week_start)],
    iso_week="Week",
    week_start=ui.date("Week of"),
    handle="Member",
    visits=ui.count("Visits"),
)
