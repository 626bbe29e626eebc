"""Leaderboard: the weekly boards, overall and per gym, live from Redis.

Members with as many visits share a rank ("=1"). The week shown first is the last complete one
(the current week has only begun); every week the mart keeps can be chosen. A week Redis holds
is read from Redis; an older one, or every week when Redis cannot be reached, from
``mart_leaderboard_weekly``, and the page says so: the same ranks as of the last dbt build.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import fmt, live, ui

TOP = 20
#: Tied winners listed by name in the previous weeks' table; more are counted.
WINNER_NAMES = 3

f = ui.filters()
ui.header(
    "Leaderboard",
    note="Weekly visits, ranked; members with as many visits share a rank (=1). "
    "The week is chosen here; the gym filter picks the gym boards shown.",
)

index = ui.query("mart_boards")
seen = index.drop_duplicates("week_start")
mart_weeks = [
    live.Week(iso, ts.date()) for iso, ts in zip(seen["iso_week"], seen["week_start"], strict=True)
]
weeks_live = ui.live_weeks()
if weeks_live.error:
    st.warning(
        "Redis is unreachable, so the boards come from the warehouse instead, as of the last "
        f"dbt build ({fmt.mask_emails(weeks_live.error)}).",
        icon=":material/cloud_off:",
    )
elif not weeks_live.weeks:
    st.info(
        "Redis holds no leaderboard under this prefix yet (run `peak activate leaderboard`), "
        "so the boards come from the warehouse, as of the last dbt build."
    )
in_redis = {w.iso_week for w in weeks_live.weeks}
weeks = sorted({*weeks_live.weeks, *mart_weeks}, key=lambda w: w.week_start, reverse=True)
if not weeks:
    st.info("No leaderboard yet: no week has check-ins.")
    st.stop()

last_day = ui.bounds().last or dt.date.today()


def complete(week: live.Week) -> bool:
    return week.week_start + dt.timedelta(days=6) <= last_day


def week_label(week: live.Week) -> str:
    label = f"{week.iso_week}: week of {week.week_start:%d %b %Y}"
    if not complete(week):
        label += (
            f" (in progress: to {min(last_day, week.week_start + dt.timedelta(days=6)):%a %d %b})"
        )
    return label


default = next((i for i, w in enumerate(weeks) if complete(w)), 0)
week = st.selectbox("Week", weeks, index=default, format_func=week_label, key="leaderboard_week")

snapshot = ui.live_week(week, weeks_live.weeks, TOP) if week.iso_week in in_redis else None
if snapshot is not None and snapshot.get("error"):  # Redis went away since the weeks were read
    st.warning(
        "Redis is unreachable, so this board comes from the warehouse instead "
        f"({fmt.mask_emails(snapshot['error'])}).",
        icon=":material/cloud_off:",
    )
    snapshot = None
if snapshot is not None:
    st.caption(f"Live from Redis (prefix `{ui.context().settings.leaderboard.prefix}`).")
    names: dict[str, str] = snapshot["boards"]
    tops: dict[str, pd.DataFrame] = snapshot["tops"]
    sizes: dict[str, int] = snapshot["sizes"]
else:
    if not weeks_live.error and weeks_live.weeks:
        st.caption("An older week than Redis keeps: from the warehouse, as of the last dbt build.")
    of_week = index[index["week_start"] == pd.Timestamp(week.week_start)]
    boards = sorted(of_week["board"], key=lambda b: (b != live.OVERALL, b))
    names = {b: b for b in boards}
    tops = {b: ui.query("mart_board", week.week_start, b, TOP) for b in boards}
    sizes = dict(zip(of_week["board"], of_week["members"], strict=True))

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
        board = tops[slug].copy()
        board["place"] = [fmt.rank(r, t) for r, t in zip(board["rank"], board["tied"], strict=True)]
        st.caption(
            f"The first {min(TOP, len(board))} of {fmt.count(sizes.get(slug, len(board)))} "
            "members who checked in that week"
            + ("" if slug == live.OVERALL else f" at {names[slug]}")
            + "."
        )
        columns = {"place": "Rank", "handle": "Member", "visits": ui.count("Visits")}
        if "streak_weeks" in board:
            columns["streak_weeks"] = ui.count("Streak (weeks)")
        ui.table(board, **columns)

st.subheader("Previous weeks' winners (overall)")
winners = ui.query("mart_winners")
winners = winners[winners["week_start"] < pd.Timestamp(week.week_start)]
if winners.empty:
    st.caption("No earlier week.")
else:

    def names_of(handles: pd.Series) -> str:
        shown = ", ".join(handles.iloc[:WINNER_NAMES])
        more = len(handles) - WINNER_NAMES
        return f"{shown} and {more} more" if more > 0 else shown

    by_week = (
        winners.groupby(["week_start", "iso_week"], sort=False)
        .agg(handle=("handle", names_of), winners=("handle", "size"), visits=("visits", "max"))
        .reset_index()
    )
    ui.table(
        by_week,
        iso_week="Week",
        week_start=ui.date("Week of"),
        handle="Winner(s)",
        winners=ui.count("Sharing first place"),
        visits=ui.count("Visits"),
    )
