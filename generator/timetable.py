"""The classes: the visit rates calibrated to about 100 check-ins per member-year, and the
weekly timetable sized to that demand (more parallel classes for a busy gym), with the choice
tables that send each check-in to a class of the member's home gym."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from generator.behaviour import (
    _CALIBRATION_CELLS,
    _CAPACITY_LOSS,
    _CLASS_TYPES,
    _CORE_SLOTS,
    _DOUBLE_CLASS,
    _FRIDAY_EVENING,
    _INSTRUCTOR_FIRST,
    _INSTRUCTOR_LAST,
    _MIN_SLOT_DEMAND,
    _PMAX,
    _PREF_BOOST,
    _PREFERENCES,
    _SUNDAY_DROP,
    _TARGET_UTILISATION,
    _WEEKDAY_SLOTS,
    _WEEKEND_SLOTS,
    TARGET_VISITS_PER_YEAR,
    WEEKDAYS,
    _rng,
)
from generator.members import _location_names, _Population, _season


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
    want /= 1 + _DOUBLE_CLASS  # visit days; some hold two classes
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
    loads = (grid @ onehot) * (pop.n / sample.n * (1 + _DOUBLE_CLASS))  # (days, locations)
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
