"""The members: who joins when (ids follow the join order), their home gym, plan, habitual
visit rate, weekday rhythm and preferred time of day, who fades, stops, cancels or freezes, and
the member snapshot's records (emails, status and last change as of the end date)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from generator.behaviour import (
    _EMAIL_DOMAINS,
    _EMAIL_FIRST,
    _EMAIL_LAST,
    _HONEYMOON,
    _LOCATION_WEIGHTS,
    _NEVER,
    _PLAN_RATE,
    _PLAN_SHARE,
    _PRE_HISTORY_DAYS,
    _PRE_HISTORY_SHARE,
    _PREFERENCES,
    _WEEKDAY_FACTOR,
    LOCATION_NAMES,
    PLANS,
    _rng,
)
from generator.text import _day_epoch


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
