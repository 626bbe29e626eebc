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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import contracts
from generator.behaviour import (
    _DOUBLE_CLASS,
    _FLOOR_DATE,
    _PMAX,
    _PRE_HISTORY_DAYS,
    _PREFERENCES,
    _TS_FORMATS,
    _rng,
)
from generator.dirty import (
    _EXTRA_COLUMN_EVERY_DAYS,
    _EXTRA_COLUMNS,
    DUPLICATE_KEY,
    DUPLICATE_ROW,
    EXTRA_COLUMN_FILES,
    NOISE,
    _Dirt,
)
from generator.members import _make_population, _MemberRecords, _Population, _season
from generator.text import _assemble, _csv_line, _day_epoch, _Extra, _render_timestamps
from generator.timetable import _calibrate, _make_timetable, _Timetable


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
            # Some book a second class that day (their own stream: the first choices stay).
            double = _rng(self.seed, 9, t).random(len(visitors)) < _DOUBLE_CLASS
            visitors = np.concatenate([visitors, visitors[double]])
            # The class: among the home gym's classes of the weekday, by preferred time.
            group = pop.loc[visitors].astype(np.int64) * n_pref + pop.pref[visitors]
            pos = np.searchsorted(tt.cum[wd], group + rng.random(len(visitors)), side="right")
            pos = np.minimum(pos, tt.group_end[wd][group] - 1)
            cls = tt.cls[wd][pos]
            # A second booking of the same class is no second class: dropped.
            once = np.sort(np.unique(visitors * len(tt.class_ids) + cls, return_index=True)[1])
            visitors, cls = visitors[once], cls[once]
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
