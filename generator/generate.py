"""Realistic sample exports: members, the weekly class timetable and a year of daily check-ins.

``generate(out, members=…, days=…, seed=…)`` writes the three source exports the way the gyms'
booking system delivers them (see ``docs/architecture.md``, "The exports"):

* ``members_<end>.csv``: a full member snapshot (its newest few sign-ups are delivered beside it
  as ``members_<end>_signups.json``, a JSON array; the two together are the snapshot);
* ``classes_<end>.csv``: the weekly timetable;
* ``attendance_<day>.csv``: one file per day of history; a few of the last day's check-ins come
  from a kiosk as ``attendance_<end>_kiosk.jsonl`` (JSON Lines) instead.

The behaviour model (what churn, streaks and leaderboards downstream feed on): every member has a
habitual, skewed visit rate (premium members go more often), a personal weekday rhythm and a
preferred time of day; new members are keen for their first weeks; January is busy, summer and
Christmas quiet; members join over time (ids follow the join order) and only attend from their
join date; about a third fade (their rate decays) and stop, most of those then cancel while the
rest stay silently "active"; a few cancel abruptly; frozen members pause. A check-in is for a
class of the member's home gym on that weekday, a few minutes before it starts, and a full class
turns the late-comers away. Rates are calibrated so the average is about 100 check-ins per
member-year, and the timetable is sized to the demand (more parallel classes for a busy gym).

With ``dirty_rate`` R > 0 the exports also carry the problems the pipeline must survive, derived
from the contracts (``contracts/*.yml``): for every rule code of ``Contract.rules()`` rows that
break exactly that rule (and no other), exact duplicate rows, duplicate keys placed so that the
contract's de-duplication keeps the clean row, an unexpected extra column in some files, case and
whitespace noise that normalisation removes, and one file of each unreadable kind. Dirty rows are
*extra* rows (copies of clean rows, then corrupted), so the valid, normalised, de-duplicated data
is exactly the data of a clean run with the same seed.

Everything is deterministic for a seed and an end date: every random choice comes from a stream
named by (seed, purpose[, day]), so a clean run and a dirty run share their clean data byte for
byte, and days can be produced one at a time (only one day's check-ins are ever in memory).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import contracts
from contracts import Column, Contract

# ---------------------------------------------------------------------------------------------
# The public API
# ---------------------------------------------------------------------------------------------


@dataclass
class GenerateSummary:
    """What ``generate`` wrote."""

    out: Path
    #: Every file written, sorted by name.
    files: list[Path]
    #: dataset -> data rows written to readable files (clean + dirty; bad files not counted).
    rows: dict[str, int]
    #: dataset -> rows deliberately made invalid or duplicated (rule violations + duplicates).
    dirty_rows: dict[str, int]
    #: Files deliberately unreadable or to be rejected whole (empty/header-only files are not).
    bad_files: list[Path]
    #: dataset -> rule code -> rows written that break exactly that rule (and no other one).
    injected: dict[str, dict[str, int]] = field(default_factory=dict)
    #: dataset -> anomaly -> count: ``duplicate_row`` (exact copies), ``duplicate_key`` (same key,
    #: other values, placed to lose the contract's de-duplication), ``noise`` (valid rows with
    #: case/whitespace/format noise), ``extra_column_files`` (files with an unexpected column).
    anomalies: dict[str, dict[str, int]] = field(default_factory=dict)
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    #: Clean check-ins written (CSV + JSON Lines), i.e. what the processed zone should hold.
    check_ins: int = 0
    #: Check-ins that did not happen because the class was full (for the curious).
    turned_away: int = 0
    #: The empty and header-only files (valid, just without rows).
    empty_files: list[Path] = field(default_factory=list)


def generate(
    out: Path,
    *,
    members: int = 5000,
    days: int = 365,
    seed: int = 42,
    dirty_rate: float = 0.0,
    end_date: dt.date | None = None,
    locations: int = 5,
    progress: Callable[[int, int], None] | None = None,
) -> GenerateSummary:
    """Write sample exports for ``members`` members over the ``days`` days ending at ``end_date``.

    ``end_date`` defaults to today (UTC). ``progress(done, total)`` is called as days are made.
    """
    if members < 1:
        raise ValueError("members must be at least 1")
    if days < 1:
        raise ValueError("days must be at least 1")
    if locations < 1:
        raise ValueError("locations must be at least 1")
    if not 0.0 <= dirty_rate < 1.0:
        raise ValueError("dirty_rate must be in [0, 1)")
    end = end_date or dt.datetime.now(dt.UTC).date()
    start = end - dt.timedelta(days=days - 1)
    if start < _FLOOR_DATE + dt.timedelta(days=_PRE_HISTORY_DAYS):
        raise ValueError(f"the history must start after {_FLOOR_DATE} plus three years")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return _Generator(out, members, days, seed, dirty_rate, start, end, locations, progress).run()


# ---------------------------------------------------------------------------------------------
# The behaviour model's constants
# ---------------------------------------------------------------------------------------------

TARGET_VISITS_PER_YEAR = 100.0
#: Share of demand expected to be turned away by full classes (calibration allowance).
_CAPACITY_LOSS = 0.012
#: Classes are sized so that a busy (75th percentile) day fills them to about this share.
_TARGET_UTILISATION = 0.72
#: A slot below this many classes' worth of demand is not run, except the day's busiest ones.
_MIN_SLOT_DEMAND = 0.35
_CORE_SLOTS = 3
_PMAX = 0.95  # at most one check-in a day, never quite certain
_HONEYMOON = 0.6  # new members' extra keenness, decaying over ~3 weeks
_PRE_HISTORY_DAYS = 3 * 365  # how far back the earliest members joined
_PRE_HISTORY_SHARE = 0.5  # members who joined before the history starts
_FLOOR_DATE = dt.date(2000, 1, 1)
_NEVER = np.iinfo(np.int32).max // 2
_CALIBRATION_CELLS = 8_000_000  # sample members x days held for calibration (float32)

LOCATION_NAMES = (
    "Peak Camden",
    "Peak Shoreditch",
    "Peak Brixton",
    "Peak Islington",
    "Peak Clapham",
    "Peak Hackney",
    "Peak Greenwich",
    "Peak Wimbledon",
    "Peak Richmond",
    "Peak Ealing",
    "Peak Stratford",
    "Peak Canary Wharf",
)
#: Relative size of each gym (cycled when there are more gyms).
_LOCATION_WEIGHTS = (1.35, 1.15, 1.0, 0.9, 0.8, 0.75, 0.7, 0.65)

PLANS = ("basic", "plus", "premium")
_PLAN_SHARE = (0.5, 0.32, 0.18)
_PLAN_RATE = (0.85, 1.05, 1.3)

#: Global weekday rhythm, Mon..Sun (mean 1).
_WEEKDAY_FACTOR = np.array([1.16, 1.12, 1.06, 1.02, 0.86, 0.8, 0.68]) / (7.72 / 7)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

#: Timetable slots: (start, popularity). Weekdays peak before work and after it.
_WEEKDAY_SLOTS = (
    ("06:30", 1.0),
    ("07:15", 1.3),
    ("09:30", 0.6),
    ("10:30", 0.35),
    ("12:15", 0.8),
    ("13:15", 0.35),
    ("17:30", 1.3),
    ("18:15", 1.7),
    ("19:00", 1.4),
    ("19:45", 0.9),
    ("20:30", 0.45),
)
_WEEKEND_SLOTS = (
    ("08:00", 0.6),
    ("09:00", 1.2),
    ("10:00", 1.5),
    ("11:00", 1.2),
    ("12:00", 0.8),
    ("14:00", 0.3),
    ("16:00", 0.5),
    ("17:00", 0.35),
)
_FRIDAY_EVENING = 0.65  # Friday evenings are quieter
_SUNDAY_DROP = ("17:00",)

#: Preferred time of day: (name, share of members, (first hour, last hour) boosted).
_PREFERENCES = (
    ("morning", 0.30, (0, 10)),
    ("midday", 0.12, (10, 16)),
    ("evening", 0.38, (16, 24)),
    ("any", 0.20, None),
)
_PREF_BOOST = 4.0

#: Class types: (name, minutes, capacity, weight). Names exercise CSV quoting on purpose.
_CLASS_TYPES = (
    ("Spin 45", 45, 24, 1.6),
    ("Spin 30 Express", 30, 20, 0.8),
    ("Yoga Flow", 60, 25, 1.3),
    ("Yin Yoga", 75, 20, 0.5),
    ("HIIT", 30, 20, 1.4),
    ("Pilates", 50, 18, 1.0),
    ("Body Pump", 55, 30, 1.1),
    ("Boxfit", 45, 20, 0.8),
    ("Barre", 45, 16, 0.6),
    ("Zumba", 60, 35, 0.6),
    ("Kettlebell Blast", 30, 16, 0.6),
    ("Stretch, Roll & Release", 40, 20, 0.5),
    ("Strength & Conditioning", 60, 18, 0.9),
    ("Core Blast", 30, 20, 0.7),
    ("Bootcamp", 45, 25, 0.7),
    ("Rock 'n' Ride", 45, 24, 0.4),
    ('Circuit "Beast Mode"', 45, 20, 0.4),
    ("Aqua Fit", 45, 25, 0.4),
)

_INSTRUCTOR_FIRST = (
    "Sam", "Alex", "Jordan", "Priya", "Tom", "Chloé", "Zoë", "Siobhán", "José", "Aoife", "Ngozi",
    "Tomasz", "Léa", "Björn", "Maya", "Kofi", "Hannah", "Raj", "Elena", "Dan", "Amara", "Lucas",
    "Fatima", "Ollie", "Mei", "Kwame", "Isla", "Mateo", "Noor", "Ben",
)  # fmt: skip
_INSTRUCTOR_LAST = (
    "Clarke", "O'Neill", "Martínez", "Byrne", "Okafor", "Shah", "Nowak", "Dubois", "Larsen",
    "Patel", "Mensah", "Evans", "Kowalski", "Rossi", "Nguyen", "Hughes", "Adeyemi", "Silva",
    "Walsh", "Khan", "Murphy", "Chen", "Brown", "Da Costa", "Müller", "Green",
)  # fmt: skip
_EMAIL_FIRST = (
    "alice", "ben", "chloe", "daniel", "emma", "finn", "grace", "harry", "isla", "jack", "kate",
    "liam", "mia", "noah", "olivia", "priya", "quinn", "rosa", "sam", "tara", "umar", "vera",
    "will", "xena", "yusuf", "zoe", "amir", "bea", "carlos", "dina", "ethan", "fatima", "george",
    "hana", "ivan", "jade", "kofi", "lena", "max", "nina", "omar", "poppy", "raj", "sofia",
    "theo", "uma", "victor", "wendy", "yara", "zac", "leo", "ella", "oscar", "ruby", "arjun",
    "mei", "tomasz", "aoife", "jose", "lea",
)  # fmt: skip
_EMAIL_LAST = (
    "smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel",
    "wright", "khan", "walker", "evans", "roberts", "green", "hall", "wood", "clarke", "hughes",
    "edwards", "turner", "martin", "cooper", "hill", "ward", "morris", "moore", "lee", "baker",
    "harris", "okafor", "nguyen", "murphy", "oneill", "kowalski", "rossi", "silva", "chen",
    "mensah", "shah", "byrne", "nowak", "dubois", "larsen", "adeyemi", "walsh", "ali", "begum",
)  # fmt: skip
_EMAIL_DOMAINS = (
    ("gmail.com", 0.36),
    ("outlook.com", 0.12),
    ("hotmail.co.uk", 0.12),
    ("icloud.com", 0.1),
    ("yahoo.co.uk", 0.08),
    ("btinternet.com", 0.05),
    ("live.co.uk", 0.05),
    ("sky.com", 0.04),
    ("proton.me", 0.03),
    ("peak-fitness.co.uk", 0.05),
)

#: Check-in time renderings: (suffix, share, hours added to the UTC clock). Naive means the gym's
#: time zone, which is UTC (the default), so every rendering denotes the same instant.
_TS_FORMATS = (("Z", 0.85, 0), ("+01:00", 0.10, 1), ("", 0.05, 0))

# Dirty data -----------------------------------------------------------------------------------

DUPLICATE_ROW = "duplicate_row"
DUPLICATE_KEY = "duplicate_key"
NOISE = "noise"
EXTRA_COLUMN_FILES = "extra_column_files"
#: The unexpected extra column some files carry, by dataset.
_EXTRA_COLUMNS = {"members": "phone", "attendance": "device"}
_EXTRA_COLUMN_EVERY_DAYS = 7  # every 7th attendance file carries the extra column
#: Values that are not of a type (the date/timestamp ones have the right shape but no such day).
_TYPE_GARBAGE = {
    "integer": ("abc", "n/a", "twelve", "12a", "-"),
    "boolean": ("maybe", "2", "ja", "unknown", "?"),
    "date": ("{y}-02-30", "{y}-13-01", "31/12/{y}", "not a date", "{y}-06-31"),
    "timestamp": (
        "{y}-02-30T10:00:00Z",
        "{y}-06-01T25:00:00Z",
        "yesterday",
        "01/06/{y} 10:00",
        "{y}-13-05T08:00:00Z",
    ),
    "time": ("25:00", "7pm", "18.30", "1830", "24:15"),
}
#: Realistic wrong values for a few columns with an allowed list (others get generic ones).
_WRONG_HINTS = {
    "status": ("paused", "pending", "deleted", "trial"),
    "weekday": ("Monday", "Weds", "Thurs", "Funday"),
}
_NEEDS_QUOTES = re.compile(r'[",\r\n]')
_TS_RE = re.compile(contracts.TIMESTAMP_PATTERN)


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _rng(seed: int, *purpose: int) -> np.random.Generator:
    """An independent random stream for (seed, purpose...): choices never leak across purposes."""
    return np.random.default_rng([seed % (1 << 64), *purpose])


def _q(value: str | None) -> str:
    """One CSV field, RFC 4180 quoted only where needed."""
    if value is None:
        return ""
    if _NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_line(values: Sequence[str | None]) -> str:
    return ",".join(_q(v) for v in values)


def _csv_safe(arr: pa.Array) -> pa.Array:
    """A string column as CSV fields (nulls empty, quoted where needed), vectorised."""
    arr = pc.fill_null(arr.cast(pa.string()), "")
    mask = pc.match_substring_regex(arr, r'[",\r\n]')
    if not pc.any(mask).as_py():
        return arr
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
    return pc.if_else(mask, quoted, arr)


def _join_lines(lines: pa.Array) -> bytes:
    if len(lines) == 0:
        return b""
    offsets = pa.array([0, len(lines)], pa.int32())
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, lines), "\n")
    return joined[0].as_buffer().to_pybytes() + b"\n"


def _day_epoch(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * 86400


_HMS = pa.array(
    [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)], pa.string()
)


def _render_timestamps(epoch: np.ndarray, fmt: np.ndarray) -> pa.Array:
    """Epoch seconds (UTC) -> ISO-8601 text in the renderings of ``_TS_FORMATS``."""
    hours = np.array([f[2] for f in _TS_FORMATS], dtype=np.int64)
    local = epoch.astype(np.int64) + hours[fmt] * 3600
    days = local // 86400
    secs = local - days * 86400
    uniq, inverse = np.unique(days, return_inverse=True)
    names = pa.array(
        [(dt.date(1970, 1, 1) + dt.timedelta(days=int(d))).isoformat() for d in uniq], pa.string()
    )
    suffix = pa.array([f[0] for f in _TS_FORMATS], pa.string()).take(pa.array(fmt, pa.int64()))
    return pc.binary_join_element_wise(
        names.take(pa.array(inverse.ravel())), "T", _HMS.take(pa.array(secs)), suffix, ""
    )


def _zulu(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


# ---------------------------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------------------------


@dataclass
class _Population:
    """Per-member arrays, ordered by user id (= join order)."""

    loc: np.ndarray  # int16 home gym
    pref: np.ndarray  # int8 preferred time of day
    join: np.ndarray  # int32 join day (day index; negative = before the history)
    last: np.ndarray  # int32 first day with no more visits (stop or cancellation)
    cancel: np.ndarray  # int32 cancellation day (_NEVER if none)
    freeze_start: np.ndarray  # int32
    freeze_end: np.ndarray  # int32 (exclusive)
    fade_start: np.ndarray  # int32 (_NEVER if the member does not fade)
    inv_tau: np.ndarray  # float32 1 / fade time constant (days)
    base: np.ndarray  # float32 habitual visits per day (before calibration)
    wd_weight: np.ndarray  # float32 (n, 7) personal weekday rhythm x the global one

    @property
    def n(self) -> int:
        return len(self.loc)

    def subset(self, idx: np.ndarray) -> _Population:
        return _Population(**{k: v[idx] for k, v in self.__dict__.items()})

    def eligible(self, t: int) -> np.ndarray:
        """Indices of members who may visit on day ``t`` (joined, not stopped, not frozen)."""
        n = int(np.searchsorted(self.join, t, side="right"))
        ok = self.last[:n] > t
        ok &= ~((self.freeze_start[:n] <= t) & (self.freeze_end[:n] > t))
        return np.flatnonzero(ok)

    def intensity(self, idx: np.ndarray, t: int, weekday: int, season: float) -> np.ndarray:
        """Unscaled visit probability of members ``idx`` on day ``t``."""
        p = self.base[idx] * self.wd_weight[idx, weekday] * np.float32(season)
        since = (t - self.join[idx]).astype(np.float32)
        p *= 1 + np.float32(_HONEYMOON) * np.exp(since / np.float32(-21.0))
        faded = np.maximum(t - self.fade_start[idx], 0).astype(np.float32)
        p *= np.exp(-faded * self.inv_tau[idx])
        return p


def _season(day: dt.date) -> float:
    """Gym traffic over the year: a January rush, a summer lull, a Christmas dip."""
    doy = day.timetuple().tm_yday
    value = 1.0 + 0.12 * math.cos(2 * math.pi * (doy - 20) / 365.25)
    if (day.month == 12 and day.day >= 22) or (day.month == 1 and day.day <= 1):
        value *= 0.6
    if (day.month, day.day) in ((12, 25), (12, 26), (1, 1)):
        value *= 0.4
    return value


def _join_weight(day: dt.date, frac: float) -> float:
    """Sign-ups: a growing business with a New Year and a September bump."""
    value = 1.0 + 0.6 * frac
    if day.month == 1:
        value *= 2.2 if day.day <= 21 else 1.5
    elif day.month == 9:
        value *= 1.35
    elif day.month in (7, 8, 12):
        value *= 0.75
    return value


@dataclass
class _MemberRecords:
    user_ids: list[str]
    emails: list[str]
    location: list[str]
    join_date: list[str]
    plan: list[str]
    status: list[str]
    opt_in: list[bool]
    updated_at: list[str]

    def as_object(self, i: int) -> dict[str, object]:
        """Member ``i`` as a JSON export object (the opt-in a real JSON boolean)."""
        return {
            "user_id": self.user_ids[i],
            "email": self.emails[i],
            "location": self.location[i],
            "join_date": self.join_date[i],
            "plan": self.plan[i],
            "status": self.status[i],
            "marketing_opt_in": self.opt_in[i],
            "updated_at": self.updated_at[i],
        }


def _make_population(
    seed: int, n: int, days: int, start: dt.date, locations: int
) -> tuple[_Population, _MemberRecords]:
    rng = _rng(seed, 1)
    end_t = days - 1
    # Join days: some before the history, the rest over it (growth and seasonal bumps).
    pre = rng.random(n) < _PRE_HISTORY_SHARE
    join = np.empty(n, dtype=np.int64)
    join[pre] = -rng.integers(1, _PRE_HISTORY_DAYS + 1, pre.sum())
    weights = np.array(
        [_join_weight(start + dt.timedelta(days=t), t / max(days - 1, 1)) for t in range(days)]
    )
    join[~pre] = rng.choice(days, size=int((~pre).sum()), p=weights / weights.sum())
    order = np.lexsort((rng.random(n), join))  # ids follow the join order

    loc_w = np.array([_LOCATION_WEIGHTS[i % len(_LOCATION_WEIGHTS)] for i in range(locations)])
    loc = rng.choice(locations, size=n, p=loc_w / loc_w.sum()).astype(np.int16)
    pref_share = np.array([p[1] for p in _PREFERENCES])
    pref = rng.choice(len(_PREFERENCES), size=n, p=pref_share).astype(np.int8)
    plan = rng.choice(len(PLANS), size=n, p=np.array(_PLAN_SHARE)).astype(np.int8)

    # Habitual visits per week: skewed (a long tail of regulars), premium members go more.
    rate = np.clip(rng.lognormal(np.log(1.7), 0.6, n), 0.4, 6.0) * np.array(_PLAN_RATE)[plan]
    personal = rng.gamma(1.5, size=(n, 7))
    personal /= personal.mean(axis=1, keepdims=True)
    wd_weight = (_WEEKDAY_FACTOR[None, :] * (0.4 + 0.6 * personal)).astype(np.float32)

    # Fading: the visit rate decays from a day on, then the member stops; most then cancel.
    fades = rng.random(n) < 0.32
    fade_start = np.full(n, _NEVER, dtype=np.int64)
    fade_start[fades] = join[fades] + rng.integers(14, 420, fades.sum())
    tau = rng.uniform(10, 45, n)
    last = np.full(n, _NEVER, dtype=np.int64)
    last[fades] = fade_start[fades] + rng.integers(21, 120, fades.sum())
    cancel = np.full(n, _NEVER, dtype=np.int64)
    cancels_after_fade = fades & (rng.random(n) < 0.55)
    cancel[cancels_after_fade] = last[cancels_after_fade] + rng.integers(
        0, 60, cancels_after_fade.sum()
    )
    # Abrupt cancellations (moved away, injured...).
    abrupt = ~fades & (rng.random(n) < 0.07)
    cancel[abrupt] = join[abrupt] + rng.integers(30, 500, abrupt.sum())
    last = np.minimum(last, cancel)

    # Freezes: some paused in the past, some are frozen now.
    freeze_start = np.full(n, _NEVER, dtype=np.int64)
    freeze_end = np.full(n, _NEVER, dtype=np.int64)
    past = rng.random(n) < 0.08
    freeze_start[past] = join[past] + rng.integers(20, 500, past.sum())
    freeze_end[past] = freeze_start[past] + rng.integers(14, 90, past.sum())
    now = ~past & (rng.random(n) < 0.045)
    freeze_start[now] = np.maximum(end_t - rng.integers(0, 60, now.sum()), join[now] + 1)
    freeze_end[now] = end_t + rng.integers(1, 90, now.sum())

    pop = _Population(
        loc=loc[order].astype(np.int16),
        pref=pref[order].astype(np.int8),
        join=join[order].astype(np.int32),
        last=last[order].astype(np.int32),
        cancel=cancel[order].astype(np.int32),
        freeze_start=freeze_start[order].astype(np.int32),
        freeze_end=freeze_end[order].astype(np.int32),
        fade_start=fade_start[order].astype(np.int32),
        inv_tau=(1.0 / tau[order]).astype(np.float32),
        base=(rate[order] / 7.0).astype(np.float32),
        wd_weight=wd_weight[order],
    )
    plan = plan[order]
    opt_in = (rng.random(n) < 0.58).tolist()

    # The snapshot's status and last change, as of the end date.
    cancelled = pop.cancel <= end_t
    frozen = ~cancelled & (pop.freeze_start <= end_t) & (pop.freeze_end > end_t)
    status = np.where(cancelled, "cancelled", np.where(frozen, "frozen", "active"))
    events = [pop.join.astype(np.int64)]
    for ev in (pop.cancel, pop.freeze_start, pop.freeze_end):
        events.append(np.where(ev <= end_t, ev, -_NEVER))
    edit = rng.random(n) < 0.4
    edit_day = pop.join + (rng.random(n) * (end_t - pop.join + 1)).astype(np.int64)
    events.append(np.where(edit, edit_day, -_NEVER))
    updated_day = np.minimum(np.max(np.stack(events), axis=0), end_t)
    updated_sec = rng.integers(6 * 3600, 22 * 3600, n)  # office hours: no date roll-over
    fmt = rng.choice(3, size=n, p=[0.8, 0.12, 0.08])
    epoch = _day_epoch(start) + updated_day * 86400 + updated_sec
    local = epoch + np.where(fmt == 1, 3600, 0)
    text = np.datetime_as_string(local.astype("datetime64[s]"), unit="s")
    suffix = np.array(["Z", "+01:00", "+00:00"])[fmt]
    updated_at = np.strings.add(text, suffix).tolist()

    width = max(6, len(str(n)))
    user_ids = [f"U{i:0{width}d}" for i in range(1, n + 1)]
    emails = _make_emails(rng, n)
    names = _location_names(locations)
    join_dates = (np.datetime64(start) + pop.join.astype("timedelta64[D]")).astype(str).tolist()
    records = _MemberRecords(
        user_ids=user_ids,
        emails=emails,
        location=[names[i] for i in pop.loc],
        join_date=join_dates,
        plan=[PLANS[i] for i in plan],
        status=status.tolist(),
        opt_in=opt_in,
        updated_at=updated_at,
    )
    return pop, records


def _location_names(locations: int) -> list[str]:
    names = list(LOCATION_NAMES[:locations])
    names += [f"Peak Site {i + 1}" for i in range(len(names), locations)]
    return names


def _make_emails(rng: np.random.Generator, n: int) -> list[str]:
    first = rng.integers(0, len(_EMAIL_FIRST), n)
    last = rng.integers(0, len(_EMAIL_LAST), n)
    style = rng.integers(0, 6, n)
    number = rng.integers(1, 99, n)
    tagged = rng.random(n) < 0.02
    dom_p = np.array([d[1] for d in _EMAIL_DOMAINS])
    domain = rng.choice(len(_EMAIL_DOMAINS), size=n, p=dom_p / dom_p.sum())
    seen: dict[str, int] = {}
    emails = []
    for i in range(n):
        f, s = _EMAIL_FIRST[first[i]], _EMAIL_LAST[last[i]]
        local = (
            f"{f}.{s}",
            f"{f}{s}",
            f"{f[0]}{s}",
            f"{f}_{s}",
            f"{f}.{s}{number[i]}",
            f"{s}.{f}",
        )[style[i]]
        if tagged[i]:
            local += "+gym"
        address = f"{local}@{_EMAIL_DOMAINS[domain[i]][0]}"
        count = seen.get(address, 0)
        seen[address] = count + 1
        if count:
            address = f"{local}{count + 1}@{_EMAIL_DOMAINS[domain[i]][0]}"
            seen[address] = seen.get(address, 0) + 1
        emails.append(address)
    return emails


# ---------------------------------------------------------------------------------------------
# Calibration and the timetable
# ---------------------------------------------------------------------------------------------


def _calibrate(
    seed: int, pop: _Population, days: int, start: dt.date, locations: int
) -> tuple[float, np.ndarray]:
    """The rate scale giving ~100 visits per member-year, and expected visits per day and gym."""
    rng = _rng(seed, 2)
    size = min(pop.n, max(1000, _CALIBRATION_CELLS // days))
    sample = pop if size >= pop.n else pop.subset(np.sort(rng.choice(pop.n, size, replace=False)))
    grid = np.zeros((days, sample.n), dtype=np.float32)
    for t in range(days):
        day = start + dt.timedelta(days=t)
        idx = sample.eligible(t)
        grid[t, idx] = sample.intensity(idx, t, day.weekday(), _season(day))
    want = TARGET_VISITS_PER_YEAR * days / 365.0 * sample.n / (1 - _CAPACITY_LOSS)
    total = float(grid.sum(dtype=np.float64))
    scale = want / total if total > 0 else 1.0
    for _ in range(6):  # correct for the clipping at _PMAX
        got = float(np.minimum(grid * np.float32(scale), _PMAX).sum(dtype=np.float64))
        if got <= 0:
            break
        scale *= want / got
    np.minimum(grid * np.float32(scale), _PMAX, out=grid)
    onehot = np.zeros((sample.n, locations), dtype=np.float32)
    onehot[np.arange(sample.n), sample.loc] = 1
    loads = (grid @ onehot) * (pop.n / sample.n)  # (days, locations)
    return scale, loads


@dataclass
class _Timetable:
    class_ids: list[str]
    name: list[str]
    instructor: list[str]
    location: list[str]
    weekday: list[str]
    start_time: list[str]
    duration: list[int]
    capacity: np.ndarray  # int32
    start_sec: np.ndarray  # int32 seconds after midnight
    #: Per weekday: flattened cumulative choice weights (group + cum) and class indices.
    cum: list[np.ndarray]
    cls: list[np.ndarray]
    group_end: list[np.ndarray]


def _slots(weekday: int) -> list[tuple[str, float]]:
    if weekday < 5:
        slots = list(_WEEKDAY_SLOTS)
        if weekday == 4:
            slots = [(s, w * (_FRIDAY_EVENING if s >= "17:00" else 1.0)) for s, w in slots]
        return slots
    slots = list(_WEEKEND_SLOTS)
    if weekday == 6:
        slots = [(s, w) for s, w in slots if s not in _SUNDAY_DROP]
    return slots


def _seconds(hhmm: str) -> int:
    return int(hhmm[:2]) * 3600 + int(hhmm[3:]) * 60


def _pref_weights(slots: list[tuple[str, float]]) -> np.ndarray:
    """(preferences, slots) relative choice weights of a slot for each preferred time of day."""
    out = np.empty((len(_PREFERENCES), len(slots)))
    for p, (_, _, hours) in enumerate(_PREFERENCES):
        for s, (hhmm, popularity) in enumerate(slots):
            hour = int(hhmm[:2])
            boost = _PREF_BOOST if hours and hours[0] <= hour < hours[1] else 1.0
            out[p, s] = popularity * boost
    return out


def _make_timetable(
    seed: int, pop: _Population, loads: np.ndarray, start: dt.date, locations: int
) -> _Timetable:
    rng = _rng(seed, 3)
    names = _location_names(locations)
    days = loads.shape[0]
    weekday_of = np.array([(start + dt.timedelta(days=t)).weekday() for t in range(days)])
    type_w = np.array([c[3] for c in _CLASS_TYPES])
    type_w = type_w / type_w.sum()
    mean_cap = float(np.dot(type_w, [c[2] for c in _CLASS_TYPES]))
    pref_mix = np.zeros((locations, len(_PREFERENCES)))
    np.add.at(pref_mix, (pop.loc, pop.pref), 1)
    pref_mix /= np.maximum(pref_mix.sum(axis=1, keepdims=True), 1)

    rows: list[tuple] = []  # (loc, weekday, slot index, type, instructor, capacity)
    for li in range(locations):
        loc_rows = []
        for wd in range(7):
            on_day = loads[weekday_of == wd, li]
            load = float(np.percentile(on_day, 75)) if len(on_day) else float(loads[:, li].mean())
            slots = _slots(wd)
            weights = _pref_weights(slots)
            share = pref_mix[li] @ (weights / weights.sum(axis=1, keepdims=True))
            core = set(np.argsort(-share)[:_CORE_SLOTS].tolist())
            for s in range(len(slots)):
                classes = load * share[s] / (_TARGET_UTILISATION * mean_cap)
                # A small gym runs its busiest slots only; a big one runs parallel classes.
                n = math.ceil(classes) if classes >= _MIN_SLOT_DEMAND else int(s in core)
                kinds = rng.choice(
                    len(_CLASS_TYPES), size=n, replace=n > len(_CLASS_TYPES), p=type_w
                )
                for k in kinds:
                    loc_rows.append((li, wd, s, int(k)))
        n_instr = max(6, math.ceil(len(loc_rows) / 12))
        pool = [
            f"{_INSTRUCTOR_FIRST[a]} {_INSTRUCTOR_LAST[b]}"
            for a, b in zip(
                rng.integers(0, len(_INSTRUCTOR_FIRST), n_instr),
                rng.integers(0, len(_INSTRUCTOR_LAST), n_instr),
                strict=True,
            )
        ]
        who = rng.integers(0, n_instr, len(loc_rows))
        jitter = rng.integers(-2, 3, len(loc_rows))
        for (li_, wd, s, k), w, j in zip(loc_rows, who, jitter, strict=True):
            cap = max(8, _CLASS_TYPES[k][2] + 2 * int(j))
            rows.append((li_, wd, s, k, pool[w], cap))
    rows.sort(key=lambda r: (r[0], r[1], _slots(r[1])[r[2]][0], r[3]))

    width = max(4, len(str(len(rows))))
    tt = _Timetable(
        class_ids=[f"C{i:0{width}d}" for i in range(1, len(rows) + 1)],
        name=[_CLASS_TYPES[r[3]][0] for r in rows],
        instructor=[r[4] for r in rows],
        location=[names[r[0]] for r in rows],
        weekday=[WEEKDAYS[r[1]] for r in rows],
        start_time=[_slots(r[1])[r[2]][0] for r in rows],
        duration=[_CLASS_TYPES[r[3]][1] for r in rows],
        capacity=np.array([r[5] for r in rows], dtype=np.int32),
        start_sec=np.array([_seconds(_slots(r[1])[r[2]][0]) for r in rows], dtype=np.int32),
        cum=[],
        cls=[],
        group_end=[],
    )
    # Choice tables: for each weekday and group (gym x preferred time), a cumulative
    # distribution over that gym's classes of the day, shifted by the group number.
    loc_arr = np.array([r[0] for r in rows])
    wd_arr = np.array([r[1] for r in rows])
    slot_arr = np.array([r[2] for r in rows])
    n_pref = len(_PREFERENCES)
    for wd in range(7):
        weights = _pref_weights(_slots(wd))
        cum_parts, cls_parts, ends = [], [], []
        used = 0
        for li in range(locations):
            members_cls = np.flatnonzero((loc_arr == li) & (wd_arr == wd))
            slot_of = slot_arr[members_cls]
            caps = tt.capacity[members_cls].astype(np.float64)
            cap_sum = np.bincount(slot_of, weights=caps, minlength=weights.shape[1])
            for p in range(n_pref):
                w = weights[p, slot_of] * caps / cap_sum[slot_of]
                c = np.cumsum(w) / w.sum()
                c[-1] = 1.0
                cum_parts.append(li * n_pref + p + c)
                cls_parts.append(members_cls)
                used += len(members_cls)
                ends.append(used)
        tt.cum.append(np.concatenate(cum_parts))
        tt.cls.append(np.concatenate(cls_parts))
        tt.group_end.append(np.array(ends))
    return tt


# ---------------------------------------------------------------------------------------------
# Dirty data, derived from the contracts
# ---------------------------------------------------------------------------------------------


def _normalized(col: Column, value: str) -> str:
    value = value.strip()
    return value.lower() if col.normalize == "lower" else value


def _string_ok(col: Column, value: str, skip: str) -> bool:
    """Whether ``value`` passes the string rules of ``col`` other than ``skip``."""
    v = _normalized(col, value)
    if not v:
        return False
    if skip != "max_length" and col.max_length is not None and len(v) > col.max_length:
        return False
    if skip != "pattern" and col.pattern and not re.search(col.pattern, v):
        return False
    allowed = {a.lower() for a in col.allowed or ()}  # the transform compares case-blind
    return not (skip != "allowed" and allowed and v.lower() not in allowed)


def _bad_value(col: Column, kind: str, base: str, rng: np.random.Generator, end: dt.date) -> str:
    """A value of ``col`` that breaks the rule ``kind`` and no other rule of the column."""
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    y = end.year
    if kind == "required":
        return ""
    if kind == "type":
        return pick(_TYPE_GARBAGE[col.type]).format(y=y)
    if kind in ("min", "max"):
        bound = col.min if kind == "min" else col.max
        sign = -1 if kind == "min" else 1
        if col.type == "integer":
            step = int(rng.integers(1, 10 if kind == "min" else 500))
            return str(int(float(bound)) + sign * step)
        day = _as_date(bound) + dt.timedelta(days=sign * int(rng.integers(1, 8000)))
        if col.type == "date":
            return day.isoformat()
        return f"{day.isoformat()}T{int(rng.integers(6, 22)):02d}:{int(rng.integers(60)):02d}:00Z"
    if kind == "future":
        day = dt.date(2099, int(rng.integers(1, 13)), int(rng.integers(1, 29)))
        if col.type == "date":
            return day.isoformat()
        return f"{day.isoformat()}T{int(rng.integers(6, 22)):02d}:{int(rng.integers(60)):02d}:00Z"
    if kind == "max_length":
        assert col.max_length is not None
        target = col.max_length + 1 + int(rng.integers(0, 20))
        filler = (base + " ") * (target // max(len(base) + 1, 1) + 2)
        candidates = [
            (filler[:target].rstrip() + "x" * target)[:target],
            "x" * max(target - len(base), 1) + base,
            base + "x" * max(target - len(base), 1),
        ]
    elif kind == "pattern":
        k = max(1, len(base) // 2)
        candidates = [base[:k] + " " + base[k:], base + "#", "!" + base]
        if "@" in base:
            local, _, domain = base.partition("@")
            candidates += [f"{local}@@{domain}", f"{local} at {domain}", local, f"{local}@"]
            candidates += [f"{local}@{domain.rsplit('.', 1)[0]}"]
    elif kind == "allowed":
        candidates = [*_WRONG_HINTS.get(col.name, ()), "unknown", f"{base}s", "n/a"]
    else:
        raise ValueError(f"no corruption for rule kind {kind!r}")
    good = [
        c
        for c in candidates
        if not _string_ok(col, c, skip="") and _string_ok(col, c, skip=kind) and "\n" not in c
    ]
    if not good:
        raise RuntimeError(f"cannot break {col.name}.{kind} alone from {base!r}")
    return pick(good)


def _noise_value(col: Column, value: str, rng: np.random.Generator) -> str | None:
    """A spelling of ``value`` that normalisation turns back into it (None when there is none)."""
    r = int(rng.integers(4))
    if col.type == "string" and col.normalize == "lower":
        styled = (value.upper(), value.title(), value.capitalize(), value.swapcase())[r]
        if styled == value:
            styled = value.upper()
        pad = (" ", "", "  ", "\t")[int(rng.integers(4))]
        return (" " + styled + pad) if rng.random() < 0.5 else styled + pad
    if col.type == "boolean":
        truth = value.strip().lower() in contracts.TRUE_VALUES
        options = contracts.TRUE_VALUES if truth else contracts.FALSE_VALUES
        spelled = options[int(rng.integers(len(options)))]
        spelled = (spelled.upper(), spelled.title(), spelled, spelled.upper())[r]
        return f" {spelled} " if rng.random() < 0.3 else spelled
    if col.type == "integer" and re.fullmatch(r"[0-9]+", value):
        return "0" * int(rng.integers(1, 3)) + value
    if col.type == "timestamp":
        parsed = contracts.parse_timestamp(value)
        if parsed is None:
            return None
        base = parsed.strftime("%Y-%m-%d %H:%M:%S")
        options = (
            base + "Z",
            parsed.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            parsed.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            (parsed + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+0200"),
        )
        choice = options[r]
        return (
            choice if _TS_RE.match(choice) and contracts.parse_timestamp(choice) == parsed else None
        )
    return None


@dataclass
class _Extra:
    """A row added to a file: placed before (0) or after (2) clean row ``anchor``."""

    anchor: int
    side: int
    line: str
    kind: str


class _Dirt:
    """The corruptions of one dataset, spread over its files."""

    def __init__(self, contract: Contract, rate: float, end: dt.date) -> None:
        self.contract = contract
        self.rate = rate
        self.end = end
        self.kinds = [r.code for r in contract.rules()] + [DUPLICATE_ROW, DUPLICATE_KEY]
        self.pending = list(self.kinds)  # every kind at least once, as early as possible
        self.counts: dict[str, int] = {}
        self.noise = 0
        self.noisy_columns = [
            c
            for c in contract.columns
            if (c.type == "string" and c.normalize) or c.type in ("boolean", "integer", "timestamp")
        ]
        self.noise_pending = [c.name for c in self.noisy_columns]
        # keep=first: later copies lose; keep=latest: earlier copies lose.
        self.losing_side = 2 if contract.dedup.keep == "first" else 0

    def add_noise(self, cols: dict[str, pa.Array], rng: np.random.Generator) -> dict[str, pa.Array]:
        n = len(next(iter(cols.values())))
        if not self.noisy_columns or n == 0:
            return cols
        # Every noisy column at least once, as early as possible; then at random.
        pending = [i for i, c in enumerate(self.noisy_columns) if c.name in self.noise_pending]
        k = min(max(int(rng.binomial(n, self.rate)), len(pending)), n)
        rows = rng.choice(n, size=k, replace=False)
        which = np.concatenate(
            [pending[:k], rng.integers(0, len(self.noisy_columns), k - len(pending[:k]))]
        ).astype(np.int64)
        for ci, col in enumerate(self.noisy_columns):
            target = np.sort(rows[which == ci])  # replace_with_mask fills in index order
            if len(target) == 0:
                continue
            values = cols[col.name].take(pa.array(target)).to_pylist()
            new = [_noise_value(col, v, rng) if v is not None else None for v in values]
            keep = [i for i, v in enumerate(new) if v is not None]
            if not keep:
                continue
            mask = np.zeros(n, dtype=bool)
            mask[target[keep]] = True
            cols[col.name] = pc.replace_with_mask(
                cols[col.name], pa.array(mask), pa.array([new[i] for i in keep], pa.string())
            )
            self.noise += len(keep)
            if col.name in self.noise_pending:
                self.noise_pending.remove(col.name)
        return cols

    def extras(
        self,
        cols: dict[str, pa.Array],
        header: list[str],
        rng: np.random.Generator,
        resend: list[dict[str, str | None]] | None = None,
    ) -> list[_Extra]:
        """Dirty rows for one file holding the clean rows ``cols`` (already noised)."""
        n = len(next(iter(cols.values())))
        if n == 0:
            return []
        count = max(int(rng.binomial(n, self.rate)), len(self.pending))
        kinds = self.pending[:count]
        self.pending = self.pending[count:]
        kinds += [self.kinds[i] for i in rng.integers(0, len(self.kinds), count - len(kinds))]
        anchors = rng.integers(0, n, count)
        rows = {c: cols[c].take(pa.array(anchors)).to_pylist() for c in header}
        out = []
        for j, kind in enumerate(kinds):
            row = [rows[c][j] for c in header]
            line = self._dirty_line(kind, row, header, cols, n, rng)
            if line is None:  # could not be made from this row: try again in the next file
                if kind not in self.pending:
                    self.pending.append(kind)
                continue
            side = 2 if kind == DUPLICATE_ROW else self.losing_side
            out.append(_Extra(int(anchors[j]), side, line, kind))
            self.counts[kind] = self.counts.get(kind, 0) + 1
        if resend:  # yesterday's rows sent again, at the top of today's file
            for old in resend:
                out.append(_Extra(0, 0, _csv_line([old.get(h) for h in header]), DUPLICATE_ROW))
                self.counts[DUPLICATE_ROW] = self.counts.get(DUPLICATE_ROW, 0) + 1
        return out

    def _dirty_line(
        self,
        kind: str,
        row: list[str | None],
        header: list[str],
        cols: dict[str, pa.Array],
        n: int,
        rng: np.random.Generator,
    ) -> str | None:
        contract = self.contract
        if kind == DUPLICATE_ROW:
            return _csv_line(row)
        if kind == DUPLICATE_KEY:
            keys = set(contract.dedup.key) | set(contract.dedup.order_by)
            changeable = [c for c in contract.column_names if c not in keys]
            for _ in range(10):
                name = changeable[int(rng.integers(len(changeable)))]
                other = cols[name][int(rng.integers(n))].as_py()
                pos = header.index(name)
                if other is not None and other.strip() != (row[pos] or "").strip():
                    row = list(row)
                    row[pos] = other
                    break
            else:
                return None
            for name in contract.dedup.order_by:  # an older version: it loses
                pos = header.index(name)
                col = contract.column(name)
                row[pos] = self._older(col, row[pos], rng)
            return _csv_line(row)
        if kind == "row.malformed":
            fields = [_q(v) for v in row]
            variant = int(rng.integers(3))
            if variant == 0:
                fields = [*fields, fields[-1]]
            elif variant == 1:
                fields = fields[:-1]
            else:  # an unquoted comma inside a value
                k = int(rng.integers(len(fields)))
                fields[k] = (row[k] or "x").replace('"', "") + ",x"
            line = ",".join(fields)
            return line if len(fields) != len(header) or variant == 2 else None
        code_col, _, rule_kind = kind.rpartition(".")
        col = contract.column(code_col)
        pos = header.index(code_col)
        row = list(row)
        row[pos] = _bad_value(col, rule_kind, (row[pos] or "x").strip(), rng, self.end)
        return _csv_line(row)

    @staticmethod
    def _older(col: Column, value: str | None, rng: np.random.Generator) -> str | None:
        if value is None:
            return value
        days = int(rng.integers(1, 90))
        if col.type == "timestamp":
            parsed = contracts.parse_timestamp(value)
            floor = dt.datetime.combine(_as_date(col.min or _FLOOR_DATE), dt.time(), dt.UTC)
            if parsed is not None:
                return _zulu(max(parsed - dt.timedelta(days=days), floor))
        if col.type == "date":
            return (dt.date.fromisoformat(value.strip()) - dt.timedelta(days=days)).isoformat()
        return value


def _assemble(
    header: list[str],
    cols: dict[str, pa.Array],
    extras: list[_Extra],
    trusted: bool = False,
) -> bytes:
    """The CSV bytes of a file: the clean rows with the extra lines in their places.

    ``trusted``: the columns are made here of ids and timestamps and never need quoting.
    """
    fields = [cols[c] if trusted else _csv_safe(cols[c]) for c in header]
    lines = pc.binary_join_element_wise(*fields, ",")
    n = len(lines)
    keys = np.arange(n, dtype=np.int64) * 3 + 1
    if extras:
        lines = pa.concat_arrays([lines, pa.array([e.line for e in extras], pa.string())])
        keys = np.concatenate([keys, [e.anchor * 3 + e.side for e in extras]])
    order = np.argsort(keys, kind="stable")
    return (",".join(_q(h) for h in header) + "\n").encode() + _join_lines(lines.take(order))


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


class _Generator:
    def __init__(
        self,
        out: Path,
        members: int,
        days: int,
        seed: int,
        dirty_rate: float,
        start: dt.date,
        end: dt.date,
        locations: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.out = out
        self.n = members
        self.days = days
        self.seed = seed
        self.rate = dirty_rate
        self.start = start
        self.end = end
        self.locations = locations
        self.progress = progress
        self.contracts = contracts.load_all()
        self.dirty = dirty_rate > 0
        self.dirt = {name: _Dirt(c, dirty_rate, end) for name, c in self.contracts.items()}
        self.files: list[Path] = []
        self.bad: list[Path] = []
        self.empty: list[Path] = []
        self.rows: dict[str, int] = {name: 0 for name in self.contracts}
        self.extra_files: dict[str, int] = {}

    def _write(self, name: str, data: bytes) -> Path:
        path = self.out / name
        path.write_bytes(data)
        self.files.append(path)
        return path

    def run(self) -> GenerateSummary:
        pop, records = _make_population(self.seed, self.n, self.days, self.start, self.locations)
        scale, loads = _calibrate(self.seed, pop, self.days, self.start, self.locations)
        pop.base *= np.float32(scale)
        tt = _make_timetable(self.seed, pop, loads, self.start, self.locations)
        self._write_classes(tt)
        self._write_members(records)
        check_ins, turned_away = self._write_attendance(pop, records, tt)
        if self.dirty:
            self._write_bad_files(records, tt)
        return GenerateSummary(
            out=self.out,
            files=sorted(self.files),
            rows=dict(self.rows),
            dirty_rows={
                name: sum(d.counts.values()) if self.dirty else 0 for name, d in self.dirt.items()
            },
            bad_files=sorted(self.bad),
            injected={
                name: {k: v for k, v in d.counts.items() if k not in (DUPLICATE_ROW, DUPLICATE_KEY)}
                for name, d in self.dirt.items()
            },
            anomalies={
                name: {
                    k: v
                    for k, v in {
                        DUPLICATE_ROW: d.counts.get(DUPLICATE_ROW, 0),
                        DUPLICATE_KEY: d.counts.get(DUPLICATE_KEY, 0),
                        NOISE: d.noise,
                        EXTRA_COLUMN_FILES: self.extra_files.get(name, 0),
                    }.items()
                    if v
                }
                for name, d in self.dirt.items()
            },
            start_date=self.start,
            end_date=self.end,
            check_ins=check_ins,
            turned_away=turned_away,
            empty_files=sorted(self.empty),
        )

    # -- snapshots --------------------------------------------------------------------------

    def _write_snapshot(
        self, dataset: str, cols: dict[str, pa.Array], name: str, purpose: int
    ) -> None:
        contract = self.contracts[dataset]
        header = list(contract.column_names)
        extras: list[_Extra] = []
        if self.dirty:
            rng = _rng(self.seed, purpose)
            dirt = self.dirt[dataset]
            cols = dirt.add_noise(dict(cols), rng)
            extra = _EXTRA_COLUMNS.get(dataset)
            if extra and dataset == "members":
                n = len(cols[header[0]])
                phones = [f"+44 7700 900{int(x):03d}" for x in rng.integers(0, 1000, n)]
                blank = rng.random(n) < 0.3
                cols[extra] = pa.array(
                    [None if b else p for p, b in zip(phones, blank, strict=True)]
                )
                header.append(extra)
                self.extra_files[dataset] = self.extra_files.get(dataset, 0) + 1
            extras = dirt.extras(cols, header, rng)
        data = _assemble(header, cols, extras)
        self.rows[dataset] += len(cols[contract.column_names[0]]) + len(extras)
        self._write(name, data)

    def _write_classes(self, tt: _Timetable) -> None:
        cols = {
            "class_id": pa.array(tt.class_ids),
            "class_name": pa.array(tt.name),
            "instructor": pa.array(tt.instructor),
            "location": pa.array(tt.location),
            "weekday": pa.array(tt.weekday),
            "start_time": pa.array(tt.start_time),
            "duration_minutes": pa.array([str(d) for d in tt.duration]),
            "capacity": pa.array([str(int(c)) for c in tt.capacity]),
        }
        self._write_snapshot("classes", cols, f"classes_{self.end}.csv", 10)

    def _json_signups(self) -> int:
        """How many of the newest members arrive as a JSON export instead of in the CSV."""
        return min(25, self.n // 50)

    def _write_members(self, rec: _MemberRecords) -> None:
        k = self._json_signups()
        n_csv = self.n - k
        cols = {
            "user_id": pa.array(rec.user_ids[:n_csv], pa.string()),
            "email": pa.array(rec.emails[:n_csv], pa.string()),
            "location": pa.array(rec.location[:n_csv], pa.string()),
            "join_date": pa.array(rec.join_date[:n_csv], pa.string()),
            "plan": pa.array(rec.plan[:n_csv], pa.string()),
            "status": pa.array(rec.status[:n_csv], pa.string()),
            "marketing_opt_in": pa.array(
                ["true" if v else "false" for v in rec.opt_in[:n_csv]], pa.string()
            ),
            "updated_at": pa.array(rec.updated_at[:n_csv], pa.string()),
        }
        self._write_snapshot("members", cols, f"members_{self.end}.csv", 11)
        if k:
            objects = [rec.as_object(i) for i in range(n_csv, self.n)]
            data = json.dumps(objects, indent=2, ensure_ascii=False) + "\n"
            self._write(f"members_{self.end}_signups.json", data.encode())
            self.rows["members"] += k

    # -- check-ins --------------------------------------------------------------------------

    def _write_attendance(
        self, pop: _Population, rec: _MemberRecords, tt: _Timetable
    ) -> tuple[int, int]:
        contract = self.contracts["attendance"]
        dirt = self.dirt["attendance"]
        user_ids = pa.array(rec.user_ids, pa.string())
        class_ids = pa.array(tt.class_ids, pa.string())
        fmt_p = np.array([f[1] for f in _TS_FORMATS])
        n_pref = len(_PREFERENCES)
        next_id = 1
        width = 8
        total = turned = 0
        resend: list[dict[str, str | None]] = []
        for t in range(self.days):
            day = self.start + dt.timedelta(days=t)
            wd = day.weekday()
            rng = _rng(self.seed, 4, t)
            idx = pop.eligible(t)
            p = np.minimum(pop.intensity(idx, t, wd, _season(day)), _PMAX)
            visitors = idx[rng.random(len(idx), dtype=np.float32) < p]
            # The class: among the home gym's classes of the weekday, by preferred time.
            group = pop.loc[visitors].astype(np.int64) * n_pref + pop.pref[visitors]
            pos = np.searchsorted(tt.cum[wd], group + rng.random(len(visitors)), side="right")
            pos = np.minimum(pos, tt.group_end[wd][group] - 1)
            cls = tt.cls[wd][pos]
            offset = np.clip(rng.normal(-480, 300, len(visitors)), -1800, 600).astype(np.int64)
            sec = tt.start_sec[cls].astype(np.int64) + offset
            # A full class turns away the latest arrivals.
            order = np.lexsort((visitors, sec, cls))
            cls_o = cls[order]
            first = np.searchsorted(cls_o, cls_o, side="left")
            admitted = order[(np.arange(len(order)) - first) < tt.capacity[cls_o]]
            turned += len(order) - len(admitted)
            admitted = admitted[np.lexsort((visitors[admitted], sec[admitted]))]
            v, c, s = visitors[admitted], cls[admitted], sec[admitted]
            n = len(v)
            fmt = rng.choice(len(_TS_FORMATS), size=n, p=fmt_p)
            ids = np.arange(next_id, next_id + n)
            next_id += n
            cols = {
                "attendance_id": pc.binary_join_element_wise(
                    "A", pc.utf8_lpad(pa.array(ids).cast(pa.string()), width, "0"), ""
                ),
                "user_id": user_ids.take(pa.array(v)),
                "class_id": class_ids.take(pa.array(c)),
                "checked_in_at": _render_timestamps(_day_epoch(day) + s, fmt),
            }
            total += n
            if t == self.days - 1:
                cols = self._write_kiosk(cols, n)
                n = len(cols["attendance_id"])
            header = list(contract.column_names)
            extras: list[_Extra] = []
            if self.dirty:
                drng = _rng(self.seed, 5, t)
                cols = dirt.add_noise(dict(cols), drng)
                if t % _EXTRA_COLUMN_EVERY_DAYS == _EXTRA_COLUMN_EVERY_DAYS - 1:
                    extra = _EXTRA_COLUMNS["attendance"]
                    cols[extra] = pa.array(["app", "kiosk", "desk"]).take(
                        pa.array(drng.choice(3, size=n, p=[0.6, 0.25, 0.15]))
                    )
                    header.append(extra)
                    self.extra_files["attendance"] = self.extra_files.get("attendance", 0) + 1
                extras = dirt.extras(cols, header, drng, resend=resend)
                # A few of today's rows will be sent again (exact copies) in tomorrow's file.
                pick = np.sort(drng.choice(n, size=min(n, int(drng.integers(0, 4))), replace=False))
                resend = [{h: cols[h][int(i)].as_py() for h in contract.column_names} for i in pick]
            data = _assemble(header, cols, extras, trusted=True)
            self.rows["attendance"] += n + len(extras)
            self._write(f"attendance_{day}.csv", data)
            if self.progress:
                self.progress(t + 1, self.days)
        return total, turned

    def _write_kiosk(self, cols: dict[str, pa.Array], n: int) -> dict[str, pa.Array]:
        """Move a few of the last day's check-ins to a JSON Lines export (a kiosk's feed)."""
        k = min(40, n // 10)
        if k == 0:
            return cols
        rng = _rng(self.seed, 6)
        pick = np.sort(rng.choice(n, size=k, replace=False))
        names = list(self.contracts["attendance"].column_names)
        taken = {c: cols[c].take(pa.array(pick)).to_pylist() for c in names}
        lines = [json.dumps({c: taken[c][i] for c in names}, ensure_ascii=False) for i in range(k)]
        self._write(f"attendance_{self.end}_kiosk.jsonl", ("\n".join(lines) + "\n").encode())
        self.rows["attendance"] += k
        rest = pa.array(np.setdiff1d(np.arange(n), pick))
        return {c: arr.take(rest) for c, arr in cols.items()}

    # -- unreadable and empty files --------------------------------------------------------------

    def _write_bad_files(self, rec: _MemberRecords, tt: _Timetable) -> None:
        end = self.end
        att = list(self.contracts["attendance"].column_names)
        # Not UTF-8: a legacy till exporting Latin-1 (é as the single byte 0xE9).
        rows = [
            [
                f"L{i:07d}",
                rec.user_ids[i % self.n],
                tt.class_ids[i % len(tt.class_ids)],
                f"{end}T18:0{i % 10}:00Z",
                "séance d'essai, réservée à l'accueil",
            ]
            for i in range(1, 6)
        ]
        text = _csv_line([*att, "note"]) + "\n" + "".join(_csv_line(r) + "\n" for r in rows)
        self.bad.append(self._write(f"attendance_{end}_latin1.csv", text.encode("latin-1")))
        # Truncated JSON: the transfer stopped part-way.
        objects = [rec.as_object(i) for i in range(min(3, self.n))]
        full = json.dumps(objects, indent=2)
        self.bad.append(
            self._write(f"members_{end}_broken.json", full[: int(len(full) * 0.6)].encode())
        )
        # A timetable without its required capacity column.
        cls_header = [c for c in self.contracts["classes"].column_names if c != "capacity"]
        lines = [_csv_line(cls_header)]
        for i in range(min(10, len(tt.class_ids))):
            lines.append(
                _csv_line(
                    [
                        tt.class_ids[i],
                        tt.name[i],
                        tt.instructor[i],
                        tt.location[i],
                        tt.weekday[i],
                        tt.start_time[i],
                        str(tt.duration[i]),
                    ]
                )
            )
        self.bad.append(self._write(f"classes_{end}_nocap.csv", ("\n".join(lines) + "\n").encode()))
        # A dataset nobody declared.
        pay = ["payment_id,user_id,amount_gbp,paid_at"]
        for i in range(1, 9):
            pay.append(
                f"P{i:06d},{rec.user_ids[i % self.n]},{29.99 + 10 * (i % 3):.2f},{end}T07:00:00Z"
            )
        self.bad.append(self._write(f"payments_{end}.csv", ("\n".join(pay) + "\n").encode()))
        # Empty and header-only files: nothing to load, but not errors.
        self.empty.append(self._write(f"attendance_{end}_empty.csv", b""))
        self.empty.append(
            self._write(f"attendance_{end}_headeronly.csv", (_csv_line(att) + "\n").encode())
        )
