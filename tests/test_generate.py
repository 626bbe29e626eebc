"""The sample-data generator: realistic, deterministic, and exactly as dirty as asked.

The checks below read the written files back and judge them with a small checker built from the
contracts (their columns, rules and the shapes in ``contracts``), independent of the generator.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

import contracts
from contracts import Column, Contract
from generator.behaviour import PLANS
from generator.generate import GenerateSummary, generate

END = dt.date(2026, 11, 24)
SMALL = {"members": 200, "days": 30, "seed": 7, "end_date": END}
DIRTY_RATE = 0.03

# ---------------------------------------------------------------------------------------------
# A small contract checker (what the pipeline's row rules mean, restated from the contracts)
# ---------------------------------------------------------------------------------------------


def _cast(col: Column, value: str) -> object | None:
    """The typed value, or None when ``value`` is not of the column's type."""
    if col.type == "string":
        return value
    if col.type == "integer":
        return int(value) if re.match(contracts.INTEGER_PATTERN, value) else None
    if col.type == "boolean":
        low = value.lower()
        if low in contracts.TRUE_VALUES:
            return True
        return False if low in contracts.FALSE_VALUES else None
    if col.type == "date":
        if not re.match(contracts.DATE_PATTERN, value):
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    if col.type == "time":
        return value if re.match(contracts.TIME_PATTERN, value) else None
    return contracts.parse_timestamp(value)


def _bound(col: Column, bound: object) -> object:
    if col.type == "integer":
        return float(bound)  # type: ignore[arg-type]
    day = dt.date.fromisoformat(str(bound)[:10])
    if col.type == "timestamp":
        return dt.datetime.combine(day, dt.time(), dt.UTC)
    return day


def _text(raw: object) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def normalise(col: Column, raw: object) -> object | None:
    """A value as the processed zone would hold it (None when missing)."""
    text = _text(raw)
    if text is None or not text.strip():
        return None
    value = text.strip()
    if col.normalize == "lower":
        value = value.lower()
    return _cast(col, value)


def violations(contract: Contract, row: dict[str, object], ingest_day: dt.date) -> list[str]:
    """The rule codes a parsed row fails, in the contract's order."""
    codes = []
    for col in contract.columns:
        text = _text(row.get(col.name))
        if text is None or not text.strip():
            if col.required:
                codes.append(f"{col.name}.required")
            continue
        value = text.strip().lower() if col.normalize == "lower" else text.strip()
        typed = _cast(col, value)
        if typed is None:
            codes.append(f"{col.name}.type")
            continue
        if col.max_length is not None and len(value) > col.max_length:
            codes.append(f"{col.name}.max_length")
        if col.pattern and not re.search(col.pattern, value):
            codes.append(f"{col.name}.pattern")
        if col.allowed and value.lower() not in {a.lower() for a in col.allowed}:
            codes.append(f"{col.name}.allowed")
        if col.min is not None and typed < _bound(col, col.min):  # type: ignore[operator]
            codes.append(f"{col.name}.min")
        if col.max is not None and typed > _bound(col, col.max):  # type: ignore[operator]
            codes.append(f"{col.name}.max")
        if col.not_after_ingestion:
            day = typed.date() if isinstance(typed, dt.datetime) else typed
            if day > ingest_day:  # type: ignore[operator]
                codes.append(f"{col.name}.future")
    return codes


def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, object] | None]]]:
    """A readable export's header and its rows (None for a row that has the wrong width)."""
    text = path.read_bytes().decode("utf-8")
    if path.suffix == ".json":
        objects = json.loads(text)
    elif path.suffix == ".jsonl":
        objects = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        records = list(csv.reader(io.StringIO(text, newline="")))
        header = records[0] if records else []

        def rows() -> Iterator[tuple[int, dict[str, object] | None]]:
            for i, rec in enumerate(records[1:], start=1):
                yield i, dict(zip(header, rec, strict=True)) if len(rec) == len(header) else None

        return header, rows()
    header = list(objects[0]) if objects else []
    return header, iter(enumerate(objects, start=1))


def check_dir(summary: GenerateSummary) -> dict[str, Counter[str]]:
    """Rule code counts per dataset over every readable export; asserts one code per bad row."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    unreadable = set(summary.bad_files)
    for path in summary.files:
        if path in unreadable or path.stat().st_size == 0:
            continue
        contract = contracts.get(contracts.dataset_for_file(path.name) or "?")
        header, rows = read_rows(path)
        assert set(contract.required_columns) <= set(header), path.name
        for _, row in rows:
            codes = ["row.malformed"] if row is None else violations(contract, row, END)
            assert len(codes) <= 1, (path.name, row, codes)
            found[contract.dataset].update(codes)
    return found


def processed(summary: GenerateSummary) -> dict[str, dict[tuple, tuple]]:
    """What the processed zone should hold: valid rows, normalised, de-duplicated per contract."""
    out: dict[str, dict[tuple, tuple]] = {}
    by_dataset: dict[str, list[tuple[tuple, tuple]]] = defaultdict(list)
    for path in sorted(summary.files):  # ingestion order: by name, then row by row
        if path in set(summary.bad_files) or path.stat().st_size == 0:
            continue
        contract = contracts.get(contracts.dataset_for_file(path.name) or "?")
        for _, row in read_rows(path)[1]:
            if row is None or violations(contract, row, END):
                continue
            values = tuple(normalise(c, row.get(c.name)) for c in contract.columns)
            by_dataset[contract.dataset].append(((path.name,), values))
    for name, rows in by_dataset.items():
        contract = contracts.get(name)
        names = contract.column_names
        key_pos = [names.index(k) for k in contract.dedup.key]
        order_pos = [names.index(k) for k in contract.dedup.order_by]
        kept: dict[tuple, tuple] = {}
        rank: dict[tuple, tuple] = {}
        for seq, (_, values) in enumerate(rows):
            key = tuple(values[i] for i in key_pos)
            if contract.dedup.keep == "first":
                kept.setdefault(key, values)
                continue
            this = (*(values[i] for i in order_pos), seq)
            if key not in rank or this >= rank[key]:
                kept[key], rank[key] = values, this
        out[name] = kept
    return out


# ---------------------------------------------------------------------------------------------
# Fixtures: each generated once per module
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> GenerateSummary:
    return generate(tmp_path_factory.mktemp("clean"), **SMALL)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> GenerateSummary:
    return generate(tmp_path_factory.mktemp("dirty"), dirty_rate=DIRTY_RATE, **SMALL)


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> GenerateSummary:
    """A bigger clean run (1,000 members over 13 weeks) for the behavioural checks."""
    out = tmp_path_factory.mktemp("season")
    return generate(out, members=1000, days=91, seed=11, end_date=END)


def _table(summary: GenerateSummary, dataset: str) -> list[dict[str, object]]:
    rows = []
    for path in summary.files:
        ours = contracts.dataset_for_file(path.name) == dataset
        if ours and path not in summary.bad_files and path.stat().st_size:
            rows += [r for _, r in read_rows(path)[1] if r is not None]
    return rows


def _contents(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dirty_rate", [0.0, DIRTY_RATE])
def test_same_seed_and_end_date_give_identical_bytes(tmp_path: Path, dirty_rate: float) -> None:
    # Given two runs with the same seed and end date
    first = generate(tmp_path / "a", dirty_rate=dirty_rate, **SMALL)
    second = generate(tmp_path / "b", dirty_rate=dirty_rate, **SMALL)
    # Then every file is byte for byte the same
    assert _contents(first.out) == _contents(second.out)
    assert first.rows == second.rows and first.injected == second.injected


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    # Given runs with different seeds
    first = generate(tmp_path / "a", **SMALL)
    second = generate(tmp_path / "b", **{**SMALL, "seed": 8})
    # Then the same files exist but hold different data
    a, b = _contents(first.out), _contents(second.out)
    assert a.keys() == b.keys()
    assert a[f"members_{END}.csv"] != b[f"members_{END}.csv"]
    assert a[f"attendance_{END}.csv"] != b[f"attendance_{END}.csv"]


def test_dirt_does_not_change_the_clean_data(
    clean: GenerateSummary, dirty: GenerateSummary
) -> None:
    # Given a clean and a dirty run with the same seed
    # When both are validated, normalised and de-duplicated as the contracts say
    # Then what survives is exactly the clean data
    want, got = processed(clean), processed(dirty)
    assert want.keys() == got.keys() == set(contracts.load_all())
    for dataset in want:
        assert got[dataset] == want[dataset], dataset


# ---------------------------------------------------------------------------------------------
# Clean output
# ---------------------------------------------------------------------------------------------


def test_clean_output_passes_every_rule(clean: GenerateSummary) -> None:
    # Given a clean run
    # Then no row of any export breaks any rule and nothing was injected
    found = check_dir(clean)
    assert all(not codes for codes in found.values()), found
    assert clean.bad_files == [] and clean.empty_files == []
    assert all(v == 0 for v in clean.dirty_rows.values())
    assert all(not v for v in clean.injected.values())
    assert all(not v for v in clean.anomalies.values())


def test_clean_files_have_exactly_the_contract_columns(clean: GenerateSummary) -> None:
    for path in clean.files:
        dataset = contracts.dataset_for_file(path.name)
        assert dataset is not None, path.name
        header, _ = read_rows(path)
        assert tuple(header) == contracts.get(dataset).column_names, path.name


def test_clean_output_has_the_expected_files(clean: GenerateSummary) -> None:
    names = {p.name for p in clean.files}
    days = [END - dt.timedelta(days=i) for i in range(SMALL["days"])]
    assert {f"attendance_{d}.csv" for d in days} <= names
    assert {f"members_{END}.csv", f"classes_{END}.csv"} <= names
    assert {f"members_{END}_signups.json", f"attendance_{END}_kiosk.jsonl"} <= names
    assert all(p.parent == clean.out for p in clean.files)
    assert clean.start_date == days[-1] and clean.end_date == END


def test_keys_are_unique_and_json_rows_do_not_collide(clean: GenerateSummary) -> None:
    for dataset in contracts.load_all():
        contract = contracts.get(dataset)
        keys = [tuple(r[k] for k in contract.primary_key) for r in _table(clean, dataset)]
        assert len(keys) == len(set(keys)), dataset
    rows = Counter(clean.rows)
    assert rows["attendance"] == clean.check_ins == len(_table(clean, "attendance"))
    assert rows["members"] == SMALL["members"] == len(_table(clean, "members"))


def test_json_exports_are_an_array_and_json_lines(clean: GenerateSummary) -> None:
    signups = json.loads((clean.out / f"members_{END}_signups.json").read_text("utf-8"))
    assert isinstance(signups, list) and signups
    assert all(set(o) == set(contracts.get("members").column_names) for o in signups)
    assert all(isinstance(o["marketing_opt_in"], bool) for o in signups)
    lines = (clean.out / f"attendance_{END}_kiosk.jsonl").read_text("utf-8").splitlines()
    kiosk = [json.loads(line) for line in lines]
    assert kiosk and all(set(o) == set(contracts.get("attendance").column_names) for o in kiosk)


def test_csv_is_utf8_rfc4180_with_quoted_commas(clean: GenerateSummary) -> None:
    text = (clean.out / f"classes_{END}.csv").read_text("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert all(len(r) == len(rows[0]) for r in rows)
    assert any("," in r[1] for r in rows) or any('"' in r[1] for r in rows)


# ---------------------------------------------------------------------------------------------
# Dirty output
# ---------------------------------------------------------------------------------------------


def test_dirty_run_breaks_every_rule_of_every_contract(dirty: GenerateSummary) -> None:
    # Given a dirty run
    # When its readable exports are checked against the contracts
    found = check_dir(dirty)
    for name, contract in contracts.load_all().items():
        codes = {r.code for r in contract.rules()}
        # Then every rule code is broken somewhere, by exactly the rows the generator reports
        assert set(found[name]) == codes, name
        assert set(dirty.injected[name]) == codes, name
        assert dict(found[name]) == dirty.injected[name], name


def test_dirty_run_counts_add_up(dirty: GenerateSummary) -> None:
    for name in contracts.load_all():
        injected = sum(dirty.injected[name].values())
        dups = dirty.anomalies[name].get("duplicate_row", 0)
        dups += dirty.anomalies[name].get("duplicate_key", 0)
        assert dirty.dirty_rows[name] == injected + dups
        # Dirty rows are about the asked share of the rows (at least one of each kind).
        kinds = len(contracts.get(name).rules()) + 2
        assert dirty.dirty_rows[name] <= max(kinds, 3 * DIRTY_RATE * dirty.rows[name])


def test_dirty_run_has_duplicates_extra_columns_and_noise(dirty: GenerateSummary) -> None:
    for name in contracts.load_all():
        assert dirty.anomalies[name]["duplicate_row"] >= 1
        assert dirty.anomalies[name]["duplicate_key"] >= 1
    assert dirty.anomalies["members"]["noise"] >= 1
    assert dirty.anomalies["members"]["extra_column_files"] == 1
    assert dirty.anomalies["attendance"]["extra_column_files"] >= 1
    header, rows = read_rows(dirty.out / f"members_{END}.csv")
    assert "phone" in header
    members = [r for _, r in rows if r is not None]
    assert any(r["email"] != str(r["email"]).strip().lower() for r in members)
    statuses = contracts.get("members").column("status").allowed or ()
    assert any(r["status"] not in statuses for r in members)  # "ACTIVE", " Frozen"...
    # Exact duplicate lines: within a day's file or re-sent in the next day's
    all_lines = Counter(
        line
        for p in dirty.files
        if p.name.startswith("attendance_") and p.suffix == ".csv" and p not in dirty.bad_files
        for line in p.read_text("utf-8").splitlines()[1:]
    )
    assert any(n > 1 for n in all_lines.values())


def test_dirty_run_writes_one_bad_file_of_each_kind(dirty: GenerateSummary) -> None:
    out = dirty.out
    latin1 = out / f"attendance_{END}_latin1.csv"
    broken = out / f"members_{END}_broken.json"
    nocap = out / f"classes_{END}_nocap.csv"
    payments = out / f"payments_{END}.csv"
    empty = out / f"attendance_{END}_empty.csv"
    header_only = out / f"attendance_{END}_headeronly.csv"
    # Then the unreadable ones are reported as bad files
    assert set(dirty.bad_files) == {latin1, broken, nocap, payments}
    with pytest.raises(UnicodeDecodeError):
        latin1.read_bytes().decode("utf-8")
    assert b"\xe9" in latin1.read_bytes()
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.read_text("utf-8"))
    nocap_header = nocap.read_text("utf-8").splitlines()[0].split(",")
    assert "capacity" not in nocap_header
    assert set(nocap_header) < set(contracts.get("classes").column_names)
    assert contracts.dataset_for_file(payments.name) is None
    # And the empty and header-only files exist but are not errors
    assert empty.stat().st_size == 0
    lines = header_only.read_text("utf-8").splitlines()
    assert lines == [",".join(contracts.get("attendance").column_names)]
    assert set(dirty.empty_files) == {empty, header_only}
    assert not set(dirty.empty_files) & set(dirty.bad_files)
    assert set(dirty.bad_files) | set(dirty.empty_files) <= set(dirty.files)


def test_dirty_future_values_are_far_in_the_future(dirty: GenerateSummary) -> None:
    rows = _table(dirty, "attendance")
    future = [r["checked_in_at"] for r in rows if str(r["checked_in_at"]).startswith("2099")]
    assert len(future) == dirty.injected["attendance"]["checked_in_at.future"]


# ---------------------------------------------------------------------------------------------
# Realism
# ---------------------------------------------------------------------------------------------


def test_volume_is_about_100_check_ins_per_member_year(season: GenerateSummary) -> None:
    per_member_year = season.check_ins / 1000 / (91 / 365)
    assert 75 <= per_member_year <= 125, per_member_year


def test_some_members_take_two_classes_on_one_day_never_one_class_twice(
    season: GenerateSummary,
) -> None:
    per_day: Counter[tuple[object, dt.date]] = Counter()
    per_class_day: Counter[tuple[object, object, dt.date]] = Counter()
    for row in _table(season, "attendance"):
        at = contracts.parse_timestamp(str(row["checked_in_at"]))
        assert at is not None
        per_day[(row["user_id"], at.date())] += 1
        per_class_day[(row["user_id"], row["class_id"], at.date())] += 1
    doubles = sum(n == 2 for n in per_day.values())
    assert 0.02 * len(per_day) <= doubles <= 0.1 * len(per_day), doubles / len(per_day)
    assert max(per_day.values()) == 2 and max(per_class_day.values()) == 1


def test_check_ins_reference_members_and_classes_sensibly(season: GenerateSummary) -> None:
    members = {r["user_id"]: r for r in _table(season, "members")}
    classes = {r["class_id"]: r for r in _table(season, "classes")}
    weekdays = contracts.get("classes").column("weekday").allowed
    assert weekdays is not None
    for row in _table(season, "attendance"):
        member, cls = members[row["user_id"]], classes[row["class_id"]]
        at = contracts.parse_timestamp(str(row["checked_in_at"]))
        assert at is not None
        # After joining, at the member's home gym, on the class's weekday, near its start
        assert at.date() >= dt.date.fromisoformat(str(member["join_date"]))
        assert member["location"] == cls["location"]
        assert weekdays[at.weekday()] == cls["weekday"]
        start = dt.datetime.combine(at.date(), dt.time.fromisoformat(str(cls["start_time"])))
        minutes = (at - start.replace(tzinfo=dt.UTC)).total_seconds() / 60
        assert -31 <= minutes <= 11, (row, cls)


def test_no_class_is_over_capacity(season: GenerateSummary) -> None:
    capacity = {r["class_id"]: int(str(r["capacity"])) for r in _table(season, "classes")}
    per_class_day: Counter[tuple[object, dt.date]] = Counter()
    for row in _table(season, "attendance"):
        at = contracts.parse_timestamp(str(row["checked_in_at"]))
        assert at is not None
        per_class_day[(row["class_id"], at.date())] += 1
    assert all(n <= capacity[c] for (c, _), n in per_class_day.items())


def test_weekday_and_hour_seasonality(season: GenerateSummary) -> None:
    times = [
        contracts.parse_timestamp(str(r["checked_in_at"])) for r in _table(season, "attendance")
    ]
    weekdays = Counter(t.weekday() for t in times if t)
    hours = Counter(t.hour for t in times if t)
    # Mondays are busier than Sundays
    assert weekdays[0] > 1.3 * weekdays[6]
    # Before-work and after-work peaks, a quiet afternoon
    evening = hours[17] + hours[18] + hours[19]
    afternoon = hours[14] + hours[15] + hours[16]
    assert evening > 3 * max(afternoon, 1)
    assert hours[6] + hours[7] > 3 * max(afternoon, 1)


def test_check_in_timestamps_mix_utc_offsets_and_naive(season: GenerateSummary) -> None:
    stamps = [str(r["checked_in_at"]) for r in _table(season, "attendance")]
    zulu = sum(s.endswith("Z") for s in stamps)
    offset = sum(bool(re.search(r"[+-]\d{2}:\d{2}$", s)) for s in stamps)
    naive = len(stamps) - zulu - offset
    assert zulu > 0.7 * len(stamps) and offset > 0 and naive > 0


def test_visit_rates_are_skewed(season: GenerateSummary) -> None:
    visits = Counter(r["user_id"] for r in _table(season, "attendance"))
    counts = sorted(visits.values(), reverse=True)
    top = counts[: len(counts) // 10]
    assert sum(top) > 0.2 * sum(counts)
    assert counts[0] > 3 * counts[len(counts) // 2]


def test_members_join_over_time_and_some_fade_out(season: GenerateSummary) -> None:
    members = _table(season, "members")
    start = season.start_date
    assert start is not None
    joins = [dt.date.fromisoformat(str(m["join_date"])) for m in members]
    assert any(j < start for j in joins) and any(j >= start for j in joins)
    assert {m["status"] for m in members} == set(
        contracts.get("members").column("status").allowed or ()
    )
    assert {m["plan"] for m in members} == set(PLANS)
    # Some members were regulars in the first month and have not come in the last three weeks
    early: Counter[object] = Counter()
    late: Counter[object] = Counter()
    for row in _table(season, "attendance"):
        at = contracts.parse_timestamp(str(row["checked_in_at"]))
        assert at is not None
        if at.date() < start + dt.timedelta(days=30):
            early[row["user_id"]] += 1
        if at.date() > END - dt.timedelta(days=21):
            late[row["user_id"]] += 1
    faded = [u for u, n in early.items() if n >= 4 and not late[u]]
    assert len(faded) >= 10


def test_cancelled_and_frozen_members_stop_at_their_last_change(season: GenerateSummary) -> None:
    last_change = {
        m["user_id"]: contracts.parse_timestamp(str(m["updated_at"]))
        for m in _table(season, "members")
        if m["status"] in ("cancelled", "frozen")
    }
    for row in _table(season, "attendance"):
        changed = last_change.get(row["user_id"])
        if changed is not None:
            at = contracts.parse_timestamp(str(row["checked_in_at"]))
            assert at is not None and at.date() < changed.date(), row


def test_timetable_has_several_classes_per_gym_and_weekday(season: GenerateSummary) -> None:
    classes = _table(season, "classes")
    per_day = Counter((c["location"], c["weekday"]) for c in classes)
    assert len({c["location"] for c in classes}) == 5
    assert len(per_day) == 5 * 7 and min(per_day.values()) >= 3
    assert len({c["class_name"] for c in classes}) >= 8


# ---------------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------------


def test_progress_reports_every_day(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    generate(
        tmp_path, members=50, days=10, end_date=END, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(d, 10) for d in range(1, 11)]


def test_end_date_defaults_to_today_utc(tmp_path: Path) -> None:
    summary = generate(tmp_path, members=20, days=3)
    assert summary.end_date == dt.datetime.now(dt.UTC).date()


@pytest.mark.parametrize(
    "kwargs",
    [{"members": 0}, {"days": 0}, {"dirty_rate": -0.1}, {"dirty_rate": 1.0}, {"locations": 0}],
)
def test_rejects_nonsense_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, **{"members": 10, "days": 5, **kwargs})  # type: ignore[arg-type]
