"""`peak forget`: a member erased from everywhere, proven absent, and never brought back.

Given a small generated demo (dirty: quarantined rows and rejected files too) run end to end into
a real Redis and the fake HubSpot, a member with three addresses over time (an older export, the
generator's, a change) who unsubscribed once, and a second member named by address:

- `peak forget --from-file` ends with an erasure report whose every place is searched and clean;
- an independent search finds neither member's id nor any address in any file of the lake
  (Parquet and DuckDB read as tables), any Redis key under the prefix or any fake-HubSpot
  contact; the register holds their salted hashes only;
- a re-delivery of an old export (the same bytes, or other bytes) and a daily run after it do not
  bring them back; a reprocess of the raw zone still balances and does not either;
- running it again changes nothing; a run killed at any step finishes when run again;
- it works on an S3 lake (moto), Athena's folders included.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import redis

from activation.unsubscribe.register import unsubscribe
from generator.generate import generate
from peak.core.erasure import Register, Subject, scrub_json
from peak.core.lake import Lake
from tests.conftest import csv_bytes, run_peak
from tests.fake_hubspot import FakeHubSpot
from tests.redis_server import delete_prefix

END = dt.date(2026, 11, 24)
TOKEN = "forget-test-token"
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("forget")]


# ---------------------------------------------------------------------------------------------
# An independent search: plain Python, pyarrow and DuckDB, nothing of peak.ops.forget
# ---------------------------------------------------------------------------------------------


def needles(user_ids: list[str], emails: list[str]) -> re.Pattern[str]:
    words = [rf"(?<![A-Za-z0-9_-]){re.escape(u)}(?![A-Za-z0-9_-])" for u in user_ids]
    for email in emails:
        encoded = base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")
        words += [f"(?i:{re.escape(email)})", re.escape(encoded)]
    return re.compile("|".join(words))


def file_text(path: Path) -> str:
    """A file's content as text: Parquet and DuckDB tables read row by row, bytes otherwise."""
    if path.suffix == ".parquet" or path.read_bytes()[:4] == b"PAR1":
        table = pq.ParquetFile(path).read()
        return "\n".join(str(row) for row in table.to_pylist())
    if path.suffix == ".duckdb":
        con = duckdb.connect(str(path), read_only=True)
        try:
            tables = con.execute(
                "select table_schema, table_name from information_schema.tables"
                " where table_type = 'BASE TABLE'"
            ).fetchall()
            rows = [
                str(r)
                for s, t in tables
                for r in con.execute(f'select * from "{s}"."{t}"').fetchall()
            ]
        finally:
            con.close()
        return "\n".join(rows) + path.read_bytes().decode("latin-1")
    return path.read_bytes().decode("latin-1")


def files_naming(root: Path, pattern: re.Pattern[str]) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and pattern.search(file_text(p))
    )


def redis_naming(client: redis.Redis, prefix: str, pattern: re.Pattern[str]) -> list[str]:
    found = []
    for key in client.scan_iter(match=f"{prefix}*"):
        kind = client.type(key).decode()
        values: list[bytes] = [key]
        if kind == "zset":
            values += [m for m, _ in client.zscan_iter(key)]
        elif kind == "hash":
            values += [x for kv in client.hscan_iter(key) for x in kv]
        elif kind == "string":
            values.append(client.get(key) or b"")
        found += [key.decode() for v in values if pattern.search(v.decode(errors="replace"))]
    return sorted(set(found))


def hubspot_naming(hub: FakeHubSpot, pattern: re.Pattern[str]) -> list[str]:
    with hub.lock:
        return sorted(
            cid for cid, c in hub.contacts.items() if pattern.search(json.dumps(c["properties"]))
        )


# ---------------------------------------------------------------------------------------------
# The demo lake
# ---------------------------------------------------------------------------------------------


def peak(lake: Path, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess:
    return run_peak(lake, *args, check=ok, **env)


def last_report(lake: Path, command: str) -> dict:
    found = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    return sorted((r for r in found if r["command"] == command), key=lambda r: r["started_at"])[-1]


def query(lake: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(lake / "warehouse.serving.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def member_row(lake: Path, user_id: str) -> dict[str, str]:
    row = query(
        lake,
        "select user_id, email, home_location, cast(join_date as varchar), plan, status,"
        f" cast(marketing_opt_in as varchar) from dim_users where user_id = '{user_id}'",
    )[0]
    keys = ("user_id", "email", "location", "join_date", "plan", "status", "marketing_opt_in")
    return dict(zip(keys, row, strict=True))


class Demo:
    def __init__(
        self, root: Path, exports: Path, lake: Path, env: dict[str, str], hub: FakeHubSpot
    ):
        self.root, self.exports, self.lake, self.env, self.hub = root, exports, lake, env, hub
        self.pristine = root / "pristine"
        self.a_id = ""
        self.a_emails: list[str] = []
        self.a_row: dict[str, str] = {}
        self.b_id = ""
        self.b_email = ""

    @property
    def pattern(self) -> re.Pattern[str]:
        return needles([self.a_id, self.b_id], [*self.a_emails, self.b_email])


def land(demo: Demo, name: str, data: bytes, date: str) -> None:
    inbox = demo.root / f"inbox-{name}"
    inbox.mkdir()
    (inbox / name).write_bytes(data)
    peak(demo.lake, "ingest", str(inbox), "--date", date, **demo.env)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, redis_url) -> Demo:
    root = tmp_path_factory.mktemp("forget")
    exports = root / "exports"
    generate(exports, members=150, days=28, seed=23, dirty_rate=0.02, end_date=END)
    hub = FakeHubSpot(token=TOKEN).start()
    prefix = f"peak-test:forget:{os.getpid()}"
    env = {
        "REDIS_URL": redis_url,
        "PEAK_LEADERBOARD_PREFIX": prefix,
        "HUBSPOT_ACCESS_TOKEN": TOKEN,
        "PEAK_HUBSPOT_BASE_URL": hub.base_url,
    }
    demo = Demo(root, exports, root / "lake", env, hub)
    peak(demo.lake, "run", "--input", str(exports), "--date", END.isoformat(), **env)
    # A: opted in, at risk or churned (in the CRM and the e-mail outbox) and on this week's
    # leaderboard. B: another member of the CRM mart, named by address only.
    unique = "email in (select email from dim_users group by email having count(*) = 1)"
    a_id = query(
        demo.lake, f"select user_id from mart_email_targets where {unique} order by user_id limit 1"
    )[0][0]
    b_id, b_email = query(
        demo.lake,
        f"select user_id, email from mart_hubspot_contacts where user_id <> '{a_id}'"
        f" and {unique} order by user_id limit 1",
    )[0]
    a = member_row(demo.lake, a_id)
    old, new = f"old.{a_id.lower()}@example.org", f"new.{a_id.lower()}@example.net"
    # An older export knew A under an old address; today A changed address (a change export)
    # and checked in (so A is on this week's leaderboard too).
    land(demo, "members_2026-11-10.csv", csv_bytes([{**a, "email": old,
         "updated_at": "2026-11-10T08:00:00Z"}]), "2026-11-10")  # fmt: skip
    land(demo, f"members_{END}_change.csv", csv_bytes([{**a, "email": new,
         "updated_at": f"{END}T20:00:00Z"}]), END.isoformat())  # fmt: skip
    class_id = query(demo.lake, "select class_id from dim_classes order by class_id limit 1")[0][0]
    visit = {"attendance_id": "FORGET-A1", "user_id": a_id, "class_id": class_id,
             "checked_in_at": f"{END}T10:00:00Z"}  # fmt: skip
    land(demo, f"attendance_{END}_extra.csv", csv_bytes([visit]), END.isoformat())
    peak(demo.lake, "transform", "--no-quality", **env)
    peak(demo.lake, "build", "--as-of", END.isoformat(), **env)
    peak(demo.lake, "activate", "all", **env)
    unsubscribe(Lake.from_uri(str(demo.lake)), old, source="test")
    demo.a_id, demo.a_emails, demo.a_row = a_id, [a["email"], old, new], a
    demo.b_id, demo.b_email = b_id, b_email
    shutil.copytree(demo.lake, demo.pristine)  # before any test forgets anyone
    yield demo
    hub.stop()
    delete_prefix(redis.Redis.from_url(redis_url), prefix)


def copy_demo(demo: Demo, to: Path) -> Path:
    """The demo lake as the fixture built it, before any test forgot anyone."""
    shutil.copytree(demo.pristine, to)
    shutil.rmtree(to / "_dbt" / "target-local", ignore_errors=True)
    return to


def request_file(demo: Demo, root: Path) -> Path:
    path = root / "forget.txt"
    path.write_text(f"# erasure requests\n{demo.a_id}\n\n{demo.b_email.upper()}  # by address\n")
    return path


# ---------------------------------------------------------------------------------------------
# The whole story, on the demo lake
# ---------------------------------------------------------------------------------------------


def test_a_forgotten_member_is_nowhere_and_stays_gone(demo, tmp_path, redis_url):
    lake, env, pattern = demo.lake, demo.env, demo.pattern
    prefix = env["PEAK_LEADERBOARD_PREFIX"]
    client = redis.Redis.from_url(redis_url)
    # Given: the members are everywhere.
    before = files_naming(lake, pattern)
    for zone in ("raw/", "raw_parquet/", "processed/", "warehouse.duckdb", "outbox/", "_state/"):
        assert any(f.startswith(zone) for f in before), zone
    assert redis_naming(client, prefix, pattern)
    assert len(hubspot_naming(demo.hub, pattern)) >= 2
    old_member = Lake.from_uri(str(lake))

    # When: both are forgotten at once, from a file.
    result = peak(lake, "forget", "--from-file", str(request_file(demo, tmp_path)), **env)

    # Then: the report searched every place and found nothing left.
    report = last_report(lake, "forget")
    assert report["status"] == "ok"
    stage = report["stages"]["forget"]
    assert stage["clean"] and stage["remaining"] == 0
    assert stage["subject"] == {"ids": 2, "emails": 4, "ids_added": 1, "emails_added": 3}
    places = {p["place"]: p for p in stage["places"]}
    for name in ("lake: raw", "lake: raw_parquet", "lake: processed", "lake: quarantine",
                 "lake: warehouse.duckdb", "lake: warehouse.serving.duckdb", "lake: outbox",
                 f"redis: {prefix}:*", "hubspot: contacts", "email: unsubscribe list"):  # fmt: skip
        assert places[name]["searched"] > 0 and places[name]["remaining"] == 0, name
    for name in ("lake: raw", "lake: processed", "lake: warehouse.duckdb", f"redis: {prefix}:*",
                 "hubspot: contacts", "email: unsubscribe list"):  # fmt: skip
        assert places[name]["erased"] > 0, name
    tables = places["lake: warehouse.duckdb"]["tables"]
    assert {"main.dim_users", "main.snap_member_status", "main.fct_attendance"} <= set(tables)
    assert set(tables.values()) == {0}
    assert "erasure report" in result.stdout
    # No value asked for is in the run report, the output or anywhere else (checked below).
    assert not pattern.search(json.dumps(report)) and not pattern.search(result.stdout)

    # And an independent search finds them in no file, table, key or contact.
    assert files_naming(lake, pattern) == []
    assert redis_naming(client, prefix, pattern) == []
    assert hubspot_naming(demo.hub, pattern) == []
    purged = {
        r.body["objectId"] for r in demo.hub.calls("POST", "/crm/v3/objects/contacts/gdpr-delete")
    }
    assert {*demo.a_emails, demo.b_email} <= purged
    # The register keeps their salted hashes, nothing else.
    register = Register.load(old_member)
    key = bytes.fromhex(register.salt)
    for email in (*demo.a_emails, demo.b_email):
        digest = hmac.new(key, f"email:{email}".encode(), hashlib.sha256).hexdigest()
        assert digest in register.emails
    assert not (lake / "_state" / "erasure" / "pending").exists() or not any(
        (lake / "_state" / "erasure" / "pending").iterdir()
    )

    # A re-delivered old export, the same bytes and other bytes, and a daily run after it.
    original = (demo.exports / f"members_{END}.csv").read_bytes()
    land(demo, f"members_{END}.csv", original, END.isoformat())
    assert last_report(lake, "ingest")["datasets"]["members"]["files_already_landed"] == 1
    land(demo, f"members_{END}_resent.csv", original.replace(b"\n", b"\r\n"), END.isoformat())
    late = csv_bytes([{**demo.a_row, "email": demo.a_emails[1].upper(),
                       "updated_at": "2026-11-10T09:00:00Z"}])  # fmt: skip
    land(demo, "members_2026-11-10_late.csv", late, "2026-11-10")
    ledgers = [json.loads(p.read_text()) for p in (lake / "_state/ingest/members").glob("*.json")]
    assert sum(e.get("erased_rows", 0) for e in ledgers) >= 4  # forgotten + dropped at landing
    peak(lake, "run", "--date", END.isoformat(), **env)
    assert last_report(lake, "run")["status"] == "ok"
    assert files_naming(lake, pattern) == []
    assert redis_naming(client, prefix, pattern) == []
    assert hubspot_naming(demo.hub, pattern) == []

    # A reprocess of the raw zone balances with the ledger, and brings nobody back.
    peak(lake, "transform", "--reprocess", "--no-quality", **env)
    assert files_naming(lake, pattern) == []

    # Running it again finds nothing to erase and nothing left.
    peak(lake, "forget", "--from-file", str(request_file(demo, tmp_path)), **env)
    again = last_report(lake, "forget")["stages"]["forget"]
    assert again["clean"] and sum(p["erased"] for p in again["places"]) == 0


# ---------------------------------------------------------------------------------------------
# Crash safety and a dry run (on copies of the demo lake)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crash", ["forget.register", "forget.file:3", "forget.stores"])
def test_a_killed_erasure_finishes_when_run_again(demo, tmp_path, crash):
    lake = copy_demo(demo, tmp_path / "lake")
    env = {"PEAK_LEADERBOARD_PREFIX": f"peak-test:forget-crash:{os.getpid()}"}
    killed = peak(lake, "forget", "--user-id", demo.a_id, "--skip", "hubspot", ok=False,
                  PEAK_FAILPOINT=crash, **env)  # fmt: skip
    assert killed.returncode == 137
    pending = list((lake / "_state/erasure/pending").glob("*.json"))
    assert len(pending) == 1  # the subject, kept until the erasure is proven
    peak(lake, "forget", "--user-id", demo.a_id, "--skip", "hubspot", **env)
    stage = last_report(lake, "forget")["stages"]["forget"]
    assert stage["clean"] and stage["resumed"] == 1
    assert files_naming(lake, needles([demo.a_id], demo.a_emails)) == []
    assert not list((lake / "_state/erasure/pending").glob("*.json"))
    peak(lake, "transform", "--reprocess", "--no-quality")  # the ledger balances


def test_a_dry_run_says_where_a_member_is_and_changes_nothing(demo, tmp_path):
    lake = copy_demo(demo, tmp_path / "lake")
    files = {p: p.read_bytes() for p in lake.rglob("*") if p.is_file() and "_runs" not in p.parts}
    out = peak(lake, "forget", "--email", demo.a_emails[0], "--dry-run", "--skip", "redis",
               "--skip", "hubspot")  # fmt: skip
    stage = last_report(lake, "forget")["stages"]["forget"]
    found = {p["place"]: p["remaining"] for p in stage["places"]}
    assert found["lake: raw"] > 0 and found["lake: warehouse.duckdb"] > 0
    assert stage["subject"]["ids"] == 1 and stage["subject"]["emails"] == 3
    assert "where the members are" in out.stdout
    assert {p: p.read_bytes() for p in files} == files


def test_forget_needs_someone_to_forget(tmp_path):
    result = peak(tmp_path / "lake", "forget", ok=False)
    assert result.returncode == 1
    assert "nothing to forget" in result.stderr


# ---------------------------------------------------------------------------------------------
# The pieces: finding a member, rewriting an export, a JSON document, HubSpot's GDPR delete
# ---------------------------------------------------------------------------------------------


def test_a_member_is_found_as_a_whole_token_in_any_case_and_encoding():
    subject = Subject.of(["U12"], [" Alice@Example.com "])
    assert subject.emails == {"alice@example.com"}
    named = ["U12", "x,U12,y", "campaign|U12", "ALICE@example.COM", "to: alice@example.com.",
             "?e=YWxpY2VAZXhhbXBsZS5jb20&t=1", "alice%40example.com"]  # fmt: skip
    unnamed = ["U123", "XU12", "U12-b", "malice@example.com", "alice@example.com.au", ""]
    assert [t for t in named if not subject.found_in(t)] == []
    assert [t for t in unnamed if subject.found_in(t)] == []
    # The same pattern runs in DuckDB's and Arrow's RE2.
    con = duckdb.connect()
    rows = con.execute(
        "select t, regexp_matches(t, ?) from unnest(?) as texts(t)",
        [subject.pattern, named + unnamed],
    ).fetchall()
    assert {t for t, hit in rows if hit} == set(named)


@pytest.mark.parametrize(
    ("name", "data", "kept"),
    [
        (
            "members_1.csv",
            b'\xef\xbb\xbfuser_id,email,note\r\nU1,a@x.com,"two\r\nlines"\r\nU12,b@x.com,\r\n'
            b'\r\nU2,c@x.com,"U12, said"\r\n',
            b'\xef\xbb\xbfuser_id,email,note\r\nU1,a@x.com,"two\r\nlines"\r\n\r\n',
        ),
        (
            "members_1.json",
            b'[\n  {"user_id": "U1", "n": 1},\n  {"user_id": "U12"},\n  {"user_id": "U3"}\n]\n',
            b'[\n  {"user_id": "U1", "n": 1},\n  {"user_id": "U3"}\n]\n',
        ),
        (
            "attendance_1.jsonl",
            b'{"user_id": "U12"}\n{"user_id": "U1"}\nnot json U12\n',
            b'{"user_id": "U1"}\n',
        ),
    ],
)
def test_an_export_loses_only_the_members_records(name, data, kept):
    from ingestion.redact import redact_export

    subject = Subject.of(["U12"])
    out, dropped = redact_export(
        data, name, lambda record: any(subject.found_in(v) for v in record.values())
    )
    assert out == kept
    assert dropped == data.count(b"U12")


def test_json_documents_keep_everyone_elses_records():
    subject = Subject.of(["U12"], ["a@x.com"])
    batch = {"inputs": [{"id": "a@x.com", "properties": {}}, {"id": "b@x.com"}], "n": 2}
    assert scrub_json(batch, subject) == ({"inputs": [{"id": "b@x.com"}], "n": 2}, 1, False)
    state = {"contacts": {"a@x.com": "h|churned|U12", "b@x.com": "h|churned|U2"}}
    assert scrub_json(state, subject)[0] == {"contacts": {"b@x.com": "h|churned|U2"}}
    assert scrub_json({"to": "a@x.com"}, subject)[2]  # residual: the record goes whole


@pytest.fixture
def hub():
    with FakeHubSpot(token=TOKEN) as fake:
        yield fake


def test_hubspots_gdpr_delete_through_hubspot_api_client(hub):
    from hubspot import HubSpot
    from hubspot.crm.contacts import ApiException, PublicGdprDeleteInput

    client = HubSpot(access_token=TOKEN, host=hub.base_url)
    client.crm.contacts.batch_api.upsert(
        {
            "inputs": [
                {"idProperty": "email", "id": e, "properties": {}} for e in ("a@x.com", "b@x.com")
            ]
        }
    )
    basic = client.crm.contacts.basic_api
    basic.purge(PublicGdprDeleteInput(object_id="A@x.com", id_property="email"))
    basic.purge(PublicGdprDeleteInput(object_id="unknown@x.com", id_property="email"))
    assert hub.contact("a@x.com") is None and hub.contact("b@x.com") is not None
    assert {"a@x.com", "unknown@x.com"} <= hub.gdpr_blocklist
    with pytest.raises(ApiException) as missing:
        basic.purge(PublicGdprDeleteInput(object_id="999999"))
    assert missing.value.status == 404
    found = client.crm.contacts.search_api.do_search(
        {
            "filterGroups": [
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": "B@X.COM"}]}
            ],
            "limit": 1,
        }
    )
    assert found.total == 1 and found.results[0].properties["email"] == "b@x.com"


# ---------------------------------------------------------------------------------------------
# An S3 lake (moto), Athena's folders included
# ---------------------------------------------------------------------------------------------


def test_forget_on_an_s3_lake(s3, s3_lake, tmp_path, write_export):
    import pyarrow as pa

    from glue.engine import build_engine
    from glue.transform import TransformOptions, transform
    from ingestion.land import land_many
    from peak.core.report import RunReport
    from peak.core.settings import Settings
    from peak.ops.forget import forget
    from tests.conftest import CHECKIN, CLASS, MEMBER

    bob = {**MEMBER, "user_id": "U2", "email": "bob@example.com"}
    exports = [
        write_export("members_2026-11-24.csv", [MEMBER, bob]),
        write_export("classes_2026-11-24.csv", [CLASS]),
        write_export(
            "attendance_2026-11-24.csv",
            [CHECKIN, {**CHECKIN, "attendance_id": "A2", "user_id": "U2"}],
        ),
    ]
    landed_at = dt.datetime(2026, 11, 24, 6)
    land_many(s3_lake, [str(p) for p in exports], ingested_at=landed_at)
    settings = Settings(lake=s3_lake.root, athena={"s3_data_dir": "s3://peak-inbox/athena/"})
    transform(
        s3_lake,
        engine=build_engine("duckdb", settings),
        report=RunReport("transform"),
        options=TransformOptions.from_settings(settings, reprocess=False, quality=False),
    )
    s3_lake.write_bytes(
        "outbox/email/r1/emails.jsonl", b'{"to": "alice@example.com"}\n{"to": "bob@example.com"}\n'
    )
    # An Athena table's file (dbt writes them without an extension).
    athena = Lake.from_uri("s3://peak-inbox/athena", boto3_session=s3)
    table = pa.table({"user_id": ["U1", "U2"], "email": ["alice@example.com", "bob@example.com"]})
    pq.write_table(table, tmp_path / "part")
    athena.put_file(tmp_path / "part", "peak_analytics/dim_users/20261124_000000_00001")

    result = forget(s3_lake, Subject.of(["U1"]), settings=settings, run_id="r-forget",
                    skip=("redis", "hubspot"))  # fmt: skip
    assert result.clean, [p for p in result.places if p.remaining]
    alice = needles(["U1"], ["alice@example.com"])
    for store in (s3_lake, athena):
        for key in store.list(""):
            with store.local_copy(key) as path:
                assert not alice.search(file_text(path)), key
    with athena.local_copy("peak_analytics/dim_users/20261124_000000_00001") as path:
        assert pq.read_table(path).column("user_id").to_pylist() == ["U2"]
    # A re-delivery of the same bytes is still recognised; other bytes land without her.
    again = land_many(s3_lake, [str(exports[0])], ingested_at=landed_at)[0]
    assert again.status == "already_landed"
    other = write_export("members_2026-11-25.csv", [{**MEMBER, "email": "Alice@Example.com "}, bob])
    late = land_many(s3_lake, [str(other)], ingested_at=landed_at)[0]
    assert (late.status, late.rows, late.erased_rows) == ("landed", 1, 1)
    assert not alice.search(s3_lake.read_bytes(late.raw_key).decode())
