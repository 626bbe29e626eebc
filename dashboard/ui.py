"""The Streamlit side: settings from the environment, cached reads, the shared filters, headers.

Pages call :func:`query` (a function of :mod:`dashboard.data` by name), :func:`reports` and the
live-leaderboard helpers; all are cached with ``st.cache_data(ttl=…)``. A warehouse query's
cache key holds the serving copy's identity (modification time, size, inode): ``peak build``
publishes a new copy by renaming it over the old one, so the first rerun after a publish reads
the new marts while the daily run never blocks the app (it only ever opens the published copy,
read-only). On Athena the key holds the schema and the TTL decides.

Settings are read from the environment here, the app's entry point (``peak dashboard`` passes
``PEAK_LAKE`` and ``PEAK_DBT_TARGET``; ``REDIS_URL`` and ``PEAK_LEADERBOARD_PREFIX`` as for the
leaderboard sink).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
import redis
import streamlit as st

from activation.hubspot.settings import SINK as HUBSPOT
from activation.hubspot.state import SyncState
from dashboard import data, fmt, live, runs
from dashboard.data import Bounds, Filters
from peak.core.lake import Lake
from peak.core.layout import activation_state_key
from peak.core.report import load_reports
from peak.core.settings import RedisSettings, Settings, redacted_url
from peak.model.warehouse import DuckDBWarehouse, Warehouse, WarehouseError, open_warehouse

#: Seconds a warehouse result stays cached (a new publish is picked up at once anyway).
QUERY_TTL_S = 600
#: Seconds lake listings and run reports stay cached.
LAKE_TTL_S = 30
#: Seconds the live leaderboard (or "Redis is down") stays cached.
LIVE_TTL_S = 10
#: Session-state keys of the sidebar's filters.
LOCATIONS_KEY = "locations"
DATES_KEY = "dates"


@dataclass(frozen=True)
class Context:
    settings: Settings
    lake: Lake
    warehouse: Warehouse

    @property
    def where(self) -> str:
        """Which warehouse (part of every cache key)."""
        if isinstance(self.warehouse, DuckDBWarehouse):
            return f"duckdb:{self.warehouse.path}"
        return f"{self.warehouse.name}:{self.settings.athena.schema_name}"

    def version(self) -> str:
        """The published serving copy's identity: it changes with every publish."""
        if isinstance(self.warehouse, DuckDBWarehouse):
            try:
                st_ = self.warehouse.path.stat()
            except OSError:
                return "missing"
            return f"{st_.st_mtime_ns}-{st_.st_size}-{st_.st_ino}"
        return "ttl"

    def published_at(self) -> dt.datetime | None:
        if isinstance(self.warehouse, DuckDBWarehouse) and self.warehouse.path.exists():
            return dt.datetime.fromtimestamp(self.warehouse.path.stat().st_mtime, dt.UTC)
        return None


def _environment() -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith("PEAK_") or k == "REDIS_URL")
    )


@st.cache_resource(show_spinner=False)
def _context(environment: tuple[tuple[str, str], ...]) -> Context:
    settings = Settings.load()
    lake = Lake.from_uri(settings.lake)
    return Context(settings, lake, open_warehouse(lake, settings))


def context() -> Context:
    """The settings of this process's environment (rebuilt only when it changes)."""
    try:
        return _context(_environment())
    except ValueError as exc:  # pydantic's errors are ValueErrors
        st.error(f"Bad settings: {fmt.mask_emails(str(exc).splitlines()[0])}")
        st.stop()
        raise


# ---------------------------------------------------------------------------------------------
# Cached reads
# ---------------------------------------------------------------------------------------------


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False, max_entries=1000)
def _query(name: str, where: str, version: str, args: tuple, _warehouse: Warehouse) -> Any:
    return getattr(data, name)(_warehouse, *args)


def query(name: str, *args: Any) -> Any:
    """``dashboard.data.<name>(warehouse, *args)``, cached until the next publish (or the TTL).

    A missing warehouse stops the page with a message saying how to build it."""
    ctx = context()
    try:
        return _query(name, ctx.where, ctx.version(), args, _warehouse=ctx.warehouse)
    except WarehouseError as exc:
        st.error(str(exc))
        st.stop()
        raise


@st.cache_data(ttl=LAKE_TTL_S, show_spinner=False)
def _reports(root: str, keys: tuple[str, ...], _lake: Lake) -> list[dict[str, Any]]:
    return load_reports(_lake, keys)


def reports() -> list[dict[str, Any]]:
    """The newest run reports (re-read when a run adds one)."""
    ctx = context()
    return _reports(ctx.lake.root, tuple(runs.report_keys(ctx.lake)), _lake=ctx.lake)


@st.cache_data(ttl=LAKE_TTL_S, show_spinner=False)
def _quality(root: str, keys: tuple[str, ...], _lake: Lake) -> pd.DataFrame:
    return runs.quality_results(_lake, keys)


@st.cache_data(ttl=LAKE_TTL_S, show_spinner=False)
def _hubspot_links(root: str, files: tuple[str, ...], _lake: Lake) -> dict[str, str]:
    state = SyncState.load(_lake)
    links = {user_id: state.contact_link(cid) for user_id, cid in state.contact_ids().items()}
    return {user_id: link for user_id, link in links.items() if link}


def hubspot_links() -> dict[str, str]:
    """Member id -> their record in HubSpot's app, for the contacts the HubSpot sink synced
    (its state keeps HubSpot's contact ids and the portal's)."""
    ctx = context()
    files = tuple(ctx.lake.list(activation_state_key(HUBSPOT, "")))  # re-read when a sync wrote
    return _hubspot_links(ctx.lake.root, files, _lake=ctx.lake)


def quality_results() -> pd.DataFrame:
    ctx = context()
    return _quality(ctx.lake.root, tuple(runs.quality_result_keys(ctx.lake)), _lake=ctx.lake)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def _expectations(root: str, run_id: str, dataset: str, _lake: Lake) -> pd.DataFrame:
    return runs.expectations(_lake, run_id, dataset)


def expectations(run_id: str, dataset: str) -> pd.DataFrame:
    ctx = context()
    return _expectations(ctx.lake.root, run_id, dataset, _lake=ctx.lake)


# ---------------------------------------------------------------------------------------------
# The live leaderboard
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveWeeks:
    weeks: list[live.Week]
    error: str | None = None


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def _live_weeks(url: str, prefix: str, _settings: RedisSettings) -> LiveWeeks:
    try:
        client = live.connect(_settings)
    except live.LeaderboardUnavailable as exc:
        return LiveWeeks([], str(exc))
    try:
        return LiveWeeks(live.LiveLeaderboard(client, prefix).weeks())
    except redis.RedisError as exc:  # an error mid-way: fall back as if it were unreachable
        return LiveWeeks([], f"redis error at {redacted_url(url)}: {type(exc).__name__}")
    finally:
        client.close()


def live_weeks() -> LiveWeeks:
    """The weeks Redis holds, or why Redis could not be read."""
    s = context().settings
    return _live_weeks(s.redis.url, s.leaderboard.prefix, _settings=s.redis)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def _live_week(
    url: str,
    prefix: str,
    week: live.Week,
    weeks: tuple[live.Week, ...],
    top: int,
    _s: RedisSettings,
) -> dict[str, Any]:
    try:
        client = live.connect(_s)
    except live.LeaderboardUnavailable as exc:
        return {"error": str(exc)}
    try:
        board = live.LiveLeaderboard(client, prefix)
        names = board.boards(week.iso_week)
        return {
            "boards": names,
            "tops": {slug: board.board(week.iso_week, slug, top) for slug in names},
            "sizes": {slug: board.size(week.iso_week, slug) for slug in names},
        }
    except redis.RedisError as exc:
        return {"error": f"redis error at {redacted_url(url)}: {type(exc).__name__}"}
    finally:
        client.close()


def live_week(week: live.Week, weeks: list[live.Week], top: int) -> dict[str, Any]:
    """One week's boards from Redis: names, the top of each and sizes; or ``{"error": why}``
    when Redis could not be read."""
    s = context().settings
    return _live_week(s.redis.url, s.leaderboard.prefix, week, tuple(weeks), top, _s=s.redis)


# ---------------------------------------------------------------------------------------------
# Filters and page furniture
# ---------------------------------------------------------------------------------------------


def bounds() -> Bounds:
    return query("bounds")


def sidebar() -> None:
    """The filters every page shares (kept in ``st.session_state`` across pages)."""
    ctx = context()
    with st.sidebar:
        try:
            b = _query("bounds", ctx.where, ctx.version(), (), _warehouse=ctx.warehouse)
        except WarehouseError as exc:
            st.warning(str(exc))
            return
        default = b.default_filters()
        st.multiselect(
            "Gyms",
            options=list(b.locations),
            key=LOCATIONS_KEY,
            placeholder="All gyms",
            help="None chosen means every gym.",
        )
        st.date_input(
            "Dates",
            value=(default.start, default.end),
            min_value=b.first,
            max_value=b.last,
            key=DATES_KEY,
            format="YYYY-MM-DD",
            help="Every figure is compared with a period as long, on the same weekdays, "
            "just before (shifted back by whole weeks).",
        )
        published = ctx.published_at()
        where = (
            f"published {published:%Y-%m-%d %H:%M} UTC" if published else ctx.settings.dbt_target
        )
        st.caption(f"Data to {b.last or '–'} · warehouse {ctx.warehouse.name}, {where}")


def filters() -> Filters:
    """The sidebar's current filters (defaults before the sidebar has run)."""
    default = bounds().default_filters()
    picked = st.session_state.get(DATES_KEY) or (default.start, default.end)
    if not isinstance(picked, (tuple, list)):
        picked = (picked, picked)
    start = picked[0] or default.start
    end = picked[1] if len(picked) > 1 and picked[1] else start  # mid-selection: one day
    return Filters(start, end, tuple(st.session_state.get(LOCATIONS_KEY) or ()))


def describe(f: Filters) -> str:
    gyms = ", ".join(f.locations) if f.locations else "all gyms"
    prev = f.previous()
    return (
        f"{f.start:%d %b %Y} – {f.end:%d %b %Y} ({f.days:,} days) · {gyms} · "
        f"compared with {prev.start:%d %b} – {prev.end:%d %b %Y}"
    )


def header(title: str, f: Filters | None = None, note: str | None = None) -> None:
    st.title(title)
    if f is not None:
        st.caption(describe(f))
    if note:
        st.caption(note)


def count(label: str | None = None) -> Any:
    """A column of counts: thousands separators."""
    return st.column_config.NumberColumn(label, format="localized")


def decimal(label: str | None = None) -> Any:
    return st.column_config.NumberColumn(label, format="%.1f")


@dataclass(frozen=True)
class Percent:
    """A column of shares (0.123), shown as 12.3% (see :func:`table`)."""

    label: str | None = None
    digits: int = 1
    signed: bool = False


def percent(label: str | None = None, digits: int = 1, signed: bool = False) -> Percent:
    """A share column; ``signed`` for a change (``+6.0%``, ``-2.1%``)."""
    return Percent(label, digits, signed)


def date(label: str | None = None) -> Any:
    return st.column_config.DateColumn(label, format="YYYY-MM-DD")


def moment(label: str | None = None) -> Any:
    return st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm")


def _as_text(values: pd.Series, spec: Any) -> pd.Series:
    """A column with missing values as text for people: each value formatted, a gap "–"."""
    if isinstance(spec, Percent):
        sign = "+" if spec.signed else ""
        return values.map(lambda v: "–" if pd.isna(v) else f"{v * 100:{sign},.{spec.digits}f}%")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.map(lambda v: "–" if pd.isna(v) else f"{v:%Y-%m-%d}")
    if pd.api.types.is_numeric_dtype(values):
        whole = values.dropna().eq(values.dropna().round()).all()
        return values.map(lambda v: fmt.count(v) if whole else fmt.number(v))
    return values.map(lambda v: "–" if v is None or pd.isna(v) else v)


def _label(spec: Any) -> str | None:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Percent):
        return spec.label
    return spec.get("label") if isinstance(spec, dict) else None


def table(frame: pd.DataFrame, **columns: Any) -> None:
    """A read-only table without the index, only ``columns`` shown, in their order; each maps
    to a column config, a label, or :func:`percent` (the shares are shown times 100 with a
    percent sign; the frame itself is not changed). A column with a missing value is shown as
    text, the gap as "–" (never "None")."""
    config: dict[str, Any] = {}
    shown = frame
    for name, spec in columns.items():
        if name in frame and frame[name].isna().any():
            if shown is frame:
                shown = frame.copy()
            shown[name] = _as_text(frame[name], spec)
            config[name] = st.column_config.Column(label=_label(spec))
        elif isinstance(spec, str):
            config[name] = st.column_config.Column(label=spec)
        elif isinstance(spec, Percent):
            if shown is frame:
                shown = frame.copy()
            shown[name] = shown[name] * 100
            sign = "+" if spec.signed else ""
            config[name] = st.column_config.NumberColumn(
                spec.label, format=f"%{sign}.{spec.digits}f%%"
            )
        else:
            config[name] = spec
    st.dataframe(shown, hide_index=True, column_order=list(columns) or None, column_config=config)


def download_csv(
    frame: pd.DataFrame, file_name: str, label: str = "Download CSV", **columns: str
) -> None:
    """A download button for ``frame`` as CSV, only ``columns`` (renamed to their labels), made
    formula-safe by :func:`dashboard.fmt.csv_bytes`. The tables' own CSV export is switched off
    (``client.disableDataExport`` in app.py): it would write cells as they are."""
    shown = frame[list(columns)].rename(columns=columns) if columns else frame
    st.download_button(
        label,
        data=fmt.csv_bytes(shown),
        file_name=file_name,
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
