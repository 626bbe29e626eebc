"""Reading exports as their format: CSV and JSON to raw Parquet, and whole-file rejections."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import contracts
from ingestion.parse import FileRejected, Lineage, to_raw_parquet
from tests.conftest import CHECKIN, MEMBER, csv_bytes

LINEAGE = Lineage("export.csv", dt.datetime(2026, 11, 24, 6), dt.date(2026, 11, 24), "abc")


def parse(tmp_path: Path, dataset: str, name: str, data: bytes):
    src = tmp_path / name
    src.write_bytes(data)
    dest = tmp_path / "out.parquet"
    lineage = Lineage(name, LINEAGE.ingested_at, LINEAGE.export_date, LINEAGE.raw_id)
    result = to_raw_parquet(contracts.get(dataset), src, dest, lineage)
    return result, pq.read_table(dest).to_pylist()


def test_csv_rows_become_text_columns_with_lineage(tmp_path):
    rows = [CHECKIN, {**CHECKIN, "attendance_id": "A2", "checked_in_at": " 2026-11-23 08:00 "}]
    result, out = parse(tmp_path, "attendance", "attendance.csv", csv_bytes(rows))
    assert result.rows == 2 and result.malformed_rows == 0
    assert out[1]["checked_in_at"] == " 2026-11-23 08:00 "  # unchanged: typing is the transform's
    assert [r["_source_row"] for r in out] == [1, 2]
    assert out[0]["_source_file"] == "attendance.csv" and out[0]["_raw_id"] == "abc"
    assert out[0]["_export_date"] == dt.date(2026, 11, 24)
    assert out[0]["_parse_error"] is None


@pytest.mark.parametrize("name", ["attendance.csv", "attendance.json"])
def test_a_header_with_repeated_unnamed_trailing_columns_lands(tmp_path, name):
    """Spreadsheet exports end rows with empty columns ("...,checked_in_at,,"): the repeated
    unnamed extra column is dropped like any extra column, not a duplicate contract column."""
    if name.endswith(".csv"):
        data = b"attendance_id,user_id,class_id,checked_in_at,,\nA1,U1,C1,2026-11-23T07:00Z,,\n"
    else:
        data = json.dumps([{**CHECKIN, "": ""}]).encode()
    result, out = parse(tmp_path, "attendance", name, data)
    assert result.rows == 1 and result.malformed_rows == 0
    assert result.extra_columns == [""]
    assert out[0]["attendance_id"] == "A1" and "" not in out[0]


def test_extra_columns_are_dropped_and_named(tmp_path):
    rows = [{**MEMBER, "phone": "+44 7700 900123"}]
    result, out = parse(tmp_path, "members", "members.csv", csv_bytes(rows))
    assert result.extra_columns == ["phone"]
    assert "phone" not in out[0]


def test_header_names_are_trimmed_and_case_insensitive_and_bom_is_skipped(tmp_path):
    data = (
        b"\xef\xbb\xbfAttendance_ID, User_ID ,class_id,checked_in_at\nA1,U1,C1,2026-11-23T07:00Z\n"
    )
    _, out = parse(tmp_path, "attendance", "attendance.csv", data)
    assert out[0]["attendance_id"] == "A1" and out[0]["user_id"] == "U1"


def test_quoted_fields_may_hold_commas_and_newlines(tmp_path):
    data = b"class_id,class_name,instructor,location,weekday,start_time,duration_minutes,capacity\n"
    data += b'C1,"Spin, 45","Sam\nLee",Camden,Mon,07:30,45,20\nC2,Yoga,Ann,Camden,Tue,08:00,60,15\n'
    _, out = parse(tmp_path, "classes", "classes.csv", data)
    assert out[0]["class_name"] == "Spin, 45" and out[0]["instructor"] == "Sam\nLee"
    assert [r["_source_row"] for r in out] == [1, 2]


def test_a_ragged_row_is_kept_numbered_and_marked_malformed(tmp_path):
    data = b"attendance_id,user_id,class_id,checked_in_at\nA1,U1,C1,2026-11-23T07:00Z\n"
    data += b'A2,U1\nA3,"U,1",C1,2026-11-23T07:00Z,extra\nA4,U4,C4,2026-11-23T09:00Z\n'
    result, out = parse(tmp_path, "attendance", "attendance.csv", data)
    assert result.rows == 4 and result.malformed_rows == 2
    assert [r["_source_row"] for r in out] == [1, 2, 3, 4]
    assert out[1]["_parse_error"].startswith("expected 4 fields, got 2")
    assert out[1]["attendance_id"] is None
    assert out[3]["attendance_id"] == "A4" and out[3]["_parse_error"] is None


@pytest.mark.parametrize("data", [b"", b"   \n", b"attendance_id,user_id,class_id,checked_in_at\n"])
def test_empty_and_header_only_files_are_not_errors(tmp_path, data):
    result, out = parse(tmp_path, "attendance", "attendance.csv", data)
    assert result.rows == 0 and out == []


def test_json_array_and_json_lines_give_the_same_rows(tmp_path):
    rows = [
        {**MEMBER, "marketing_opt_in": True},
        {**MEMBER, "user_id": "U2", "marketing_opt_in": False, "phone": 1},
    ]
    _, from_array = parse(tmp_path, "members", "members.json", json.dumps(rows).encode())
    lines = "".join(json.dumps(r) + "\n" for r in rows).encode()
    result, from_lines = parse(tmp_path, "members", "members.jsonl", lines)
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith("_")} for r in rs]  # noqa: E731
    assert strip(from_array) == strip(from_lines)
    assert (
        from_array[0]["marketing_opt_in"] == "true" and from_array[1]["marketing_opt_in"] == "false"
    )
    assert result.extra_columns == ["phone"]


def test_json_numbers_and_nested_values_become_their_json_text(tmp_path):
    rows = [
        {
            "class_id": "C1",
            "class_name": "Spin",
            "instructor": "Sam",
            "location": "Camden",
            "weekday": "Mon",
            "start_time": "07:30",
            "duration_minutes": 45,
            "capacity": {"max": 20},
        }
    ]
    _, out = parse(tmp_path, "classes", "classes.json", json.dumps(rows).encode())
    assert out[0]["duration_minutes"] == "45" and out[0]["capacity"] == '{"max":20}'


def test_a_large_json_array_is_streamed_across_read_chunks(tmp_path):
    rows = [{**CHECKIN, "attendance_id": f"A{i}", "user_id": "U" + "x" * 50} for i in range(40_000)]
    data = json.dumps(rows, indent=1).encode()
    assert len(data) > 3 << 20  # several of the parser's 1 MiB chunks
    result, out = parse(tmp_path, "attendance", "attendance.json", data)
    assert result.rows == 40_000 and out[-1]["attendance_id"] == "A39999"
    assert out[-1]["_source_row"] == 40_000


def test_a_json_element_that_is_not_an_object_is_a_malformed_row(tmp_path):
    data = json.dumps([CHECKIN, [1, 2], "x"]).encode()
    result, out = parse(tmp_path, "attendance", "attendance.json", data)
    assert result.malformed_rows == 2
    assert out[1]["_parse_error"].startswith("not a JSON object")


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("attendance.csv", "attendance_id,user_id\nA1,é\n".encode("latin-1"), "file.encoding"),
        (
            "attendance.csv",
            b"attendance_id,user_id,class_id,checked_in_at\nA1,U\xff,C1,x\n",
            "file.encoding",
        ),
        ("members.json", json.dumps([MEMBER, MEMBER]).encode()[:-20], "file.unreadable"),
        ("members.json", b'{"user_id": "U1", ', "file.unreadable"),
        ("members.jsonl", b"user_id,email\nU1,a@example.com\n", "file.unreadable"),
        ("members.json", b"42", "file.unreadable"),
        (
            "attendance.csv",
            b"attendance_id,user_id,checked_in_at\nA1,U1,2026-11-23T07:00Z\n",
            "file.missing_column",
        ),
        (
            "attendance.csv",
            b"attendance_id,user_id,user_id,class_id,checked_in_at\n",
            "file.duplicate_column",
        ),
        ("attendance.json", json.dumps([{"attendance_id": "A1"}]).encode(), "file.missing_column"),
        ("attendance.xlsx", b"PK\x03\x04", "file.format"),
    ],
)
def test_files_that_cannot_be_read_as_their_format_are_rejected(tmp_path, name, data, code):
    with pytest.raises(FileRejected) as caught:
        parse(tmp_path, name.split(".")[0], name, data)
    assert caught.value.code == code
    assert not (tmp_path / "out.parquet").exists()  # nothing half-written is left behind


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("attendance.json", json.dumps([CHECKIN, None]).encode()),
        ("attendance.jsonl", (json.dumps(CHECKIN) + "\nnull\n").encode()),
    ],
)
def test_a_json_null_element_is_a_malformed_row_not_a_crash(tmp_path, name, data):
    result, out = parse(tmp_path, "attendance", name, data)
    assert result.rows == 2 and result.malformed_rows == 1
    assert [r["_source_row"] for r in out] == [1, 2]
    assert out[0]["_parse_error"] is None
    assert out[1]["_parse_error"] == "not a JSON object: null"


HEADER = b"attendance_id,user_id,class_id,checked_in_at"


@pytest.mark.parametrize(
    ("header", "ragged"),
    [
        (HEADER, b""),  # the fast reader
        (HEADER, b"A9,U9\n"),  # a ragged row: the exact reader
        (HEADER + b',"note\nline"', b""),  # a header record spanning two lines
        (HEADER + b',"note\nline"', b"A9,U9\n"),
    ],
)
def test_blank_lines_before_the_csv_header_are_skipped(tmp_path, header, ragged):
    extra = b",x" if header != HEADER else b""
    data = b"\n\r\n" + header + b"\n"
    data += b"A1,U1,C1,2026-11-23T07:00Z" + extra + b"\n" + ragged
    data += b"A2,U2,C2,2026-11-23T08:00Z" + extra + b"\n"
    result, out = parse(tmp_path, "attendance", "attendance.csv", data)
    ids = ["A1", None, "A2"] if ragged else ["A1", "A2"]
    assert [r["attendance_id"] for r in out] == ids
    assert [r["_source_row"] for r in out] == list(range(1, len(ids) + 1))  # data rows, from 1
    assert result.malformed_rows == (1 if ragged else 0)


@pytest.mark.parametrize("ragged", [b"", b"A9,U9\n"])
def test_blank_lines_between_csv_rows_are_skipped_by_both_readers(tmp_path, ragged):
    data = HEADER + b"\nA1,U1,C1,2026-11-23T07:00Z\n\n" + ragged
    data += b"\r\nA2,U2,C2,2026-11-23T08:00Z\n\n"
    result, out = parse(tmp_path, "attendance", "attendance.csv", data)
    ids = ["A1", None, "A2"] if ragged else ["A1", "A2"]
    assert [r["attendance_id"] for r in out] == ids
    assert [r["_source_row"] for r in out] == list(range(1, len(ids) + 1))
    assert result.rows == len(ids) and result.malformed_rows == (1 if ragged else 0)


def test_the_encoding_rejection_says_where_the_bad_byte_is(tmp_path):
    data = b"\xef\xbb\xbf" + HEADER + b"\nA1,U\xff,C1,x\n"
    with pytest.raises(FileRejected) as caught:
        parse(tmp_path, "attendance", "attendance.csv", data)
    assert caught.value.code == "file.encoding"
    offset = data.index(b"\xff")  # in the file, counting the BOM
    assert caught.value.reason == f"not UTF-8 (byte {offset}, line 2)"


def test_a_ragged_row_beside_a_field_over_pythons_csv_limit_quarantines_the_row_only(tmp_path):
    """The ragged row sends the file to the exact reader, whose default field limit (131,072
    characters) rejected the whole file: now only the ragged row is malformed."""
    long_name = "x" * 200_000
    data = b"attendance_id,user_id,class_id,checked_in_at\n"
    data += f"A1,{long_name},C1,2026-11-23T07:00Z\nA2,U1\nA3,U3,C3,2026-11-23T09:00Z\n".encode()
    result, out = parse(tmp_path, "attendance", "attendance.csv", data)
    assert (result.rows, result.malformed_rows) == (3, 1)
    assert out[0]["user_id"] == long_name and out[0]["_parse_error"] is None
    assert out[1]["_source_row"] == 2 and out[1]["_parse_error"].startswith("expected 4 fields")
    assert out[2]["attendance_id"] == "A3"


@pytest.mark.parametrize("name", ["attendance.jsonl", "attendance.json"])
def test_a_bad_json_line_is_a_malformed_row_not_a_rejected_file(tmp_path, name):
    lines = [json.dumps(CHECKIN), '{"attendance_id": "A2", "user_id": ', json.dumps(CHECKIN)]
    result, out = parse(tmp_path, "attendance", name, ("\n".join(lines) + "\n").encode())
    assert (result.rows, result.malformed_rows) == (3, 1)
    assert [r["_source_row"] for r in out] == [1, 2, 3]
    assert out[1]["_parse_error"].startswith("invalid JSON on line 2")
    assert out[0]["_parse_error"] is None and out[2]["attendance_id"] == "A1"
