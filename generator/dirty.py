"""Dirty data, derived from the contracts: for every rule code a value that breaks exactly
that rule, exact duplicates and losing duplicate keys, and case/whitespace noise that
normalisation removes. Dirty rows are extra rows (copies of clean rows, then corrupted), so a
dirty run's valid data is exactly the clean run's."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import contracts
from contracts import Column, Contract
from generator.behaviour import _FLOOR_DATE
from generator.text import _as_date, _csv_line, _Extra, _q, _zulu

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


_TS_RE = re.compile(contracts.TIMESTAMP_PATTERN)


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
        assert bound is not None, f"{col.name}.{kind} has no bound"
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
        options: tuple[str, ...] = contracts.TRUE_VALUES if truth else contracts.FALSE_VALUES
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
