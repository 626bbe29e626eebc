"""Shared fixtures: local lakes, moto-backed S3 lakes, and export files written like the gyms'."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from peak.core.lake import Lake

#: A real Redis for every test that asks (``redis_url``, ``redis_prefix``): see redis_server.py.
pytest_plugins = ["tests.redis_server", "tests.moto_server"]

INGESTED_AT = dt.datetime(2026, 11, 24, 6, 0, 0)

MEMBER = {
    "user_id": "U1",
    "email": "alice@example.com",
    "location": "Peak Camden",
    "join_date": "2025-01-15",
    "plan": "plus",
    "status": "active",
    "marketing_opt_in": "true",
    "updated_at": "2026-11-20T10:00:00Z",
}
CLASS = {
    "class_id": "C1",
    "class_name": "Spin 45",
    "instructor": "Sam Lee",
    "location": "Peak Camden",
    "weekday": "Mon",
    "start_time": "07:30",
    "duration_minutes": "45",
    "capacity": "20",
}
CHECKIN = {
    "attendance_id": "A1",
    "user_id": "U1",
    "class_id": "C1",
    "checked_in_at": "2026-11-23T07:25:00Z",
}


def csv_bytes(rows: list[dict[str, str]], header: list[str] | None = None) -> bytes:
    header = header or list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


@pytest.fixture
def write_export(tmp_path: Path):
    """Write an export file into ``tmp_path/inbox`` and return its path."""

    def write(name: str, rows: list[dict] | bytes, header: list[str] | None = None) -> Path:
        inbox = tmp_path / "inbox"
        inbox.mkdir(exist_ok=True)
        path = inbox / name
        if isinstance(rows, bytes):
            path.write_bytes(rows)
        elif name.endswith(".json"):
            path.write_text(json.dumps(rows))
        elif name.endswith((".jsonl", ".ndjson")):
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            path.write_bytes(csv_bytes(rows, header))
        return path

    return write


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake.from_uri(str(tmp_path / "lake"))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


@pytest.fixture
def s3(aws_env) -> Iterator[object]:
    """moto's S3, started before any client is built; yields a boto3 session."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        session = boto3.session.Session(region_name="eu-west-1")
        client = session.client("s3")
        for bucket in ("peak-lake", "peak-inbox"):
            client.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )
        yield session


@pytest.fixture
def s3_lake(s3) -> Lake:
    return Lake.from_uri("s3://peak-lake/prod", boto3_session=s3)


def read_zone(lake: Lake, prefix: str, order: str = "1") -> list[dict]:
    """Every row under a lake prefix (Hive partitions become columns), sorted."""
    import duckdb

    files = [str(lake.path(k)) for k in lake.list(prefix) if k.endswith(".parquet")]
    if not files:
        return []
    con = duckdb.connect()
    sql = (
        f"SELECT * FROM read_parquet({files!r}, hive_partitioning = true, union_by_name = true) "
        f"ORDER BY {order}"
    )
    return con.sql(sql).to_arrow_table().to_pylist()


def pip_install_wheel(wheel: Path, target: Path) -> Path:
    """Install a built wheel into ``target`` with pip, offline and without dependencies (what
    Glue's --additional-python-modules does with our wheel)."""
    import subprocess
    import sys

    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    return target


#: Never passed on to a `peak` the tests start: a failpoint meant for this process, a real token.
PRIVATE_ENV = ("PEAK_FAILPOINT", "HUBSPOT_ACCESS_TOKEN")


def run_peak(
    lake: Path | str,
    *args: str,
    check: bool = False,
    cwd: Path | None = None,
    timeout: float = 900,
    **env: str,
):
    """``python -m peak ARGS`` on ``lake`` in a child process; with ``check``, it must exit 0."""
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
    environ.update({"PEAK_LAKE": str(lake), **env})
    result = subprocess.run(
        [sys.executable, "-m", "peak", *args],
        env=environ,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result
