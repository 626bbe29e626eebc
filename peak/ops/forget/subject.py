"""Who is being erased: from the ids and addresses asked for, every id and address of theirs.

A member asked for by id is erased with every address they ever had (the processed zone keeps
every export, the snapshots keep old versions, the HubSpot sync state an address it synced); one
asked for by address, with every member who ever used it. An address two members share is the
data of both: erasing either erases every member record that uses it. The closure is taken to a
fixpoint over every store that pairs an id with an address, and the ids it added are counted in
the report (never named).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq

import contracts
from activation.hubspot.state import SyncState
from peak.core import layout
from peak.core.erasure import Subject, normalise_email, normalise_id
from peak.core.lake import Lake
from peak.ops import warehouse_files
from peak.ops.forget.stores import is_parquet, keys

#: The columns that pair a member's id with an address.
ID_COLUMN = contracts.get("members").primary_key[0]
EMAIL_COLUMN = "email"

Pairs = set[tuple[str, str]]


def parse_lines(lines: Iterable[str]) -> Subject:
    """A file of members to erase: one id or address a line (an ``@`` makes it an address);
    blank lines and ``#`` comments are skipped."""
    ids: list[str] = []
    emails: list[str] = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        (emails if "@" in line else ids).append(line)
    return Subject.of(ids, emails)


def _parquet_pairs(path: Path) -> Pairs:
    schema = pq.read_schema(path)
    if ID_COLUMN not in schema.names or EMAIL_COLUMN not in schema.names:
        return set()
    table = pq.read_table(path, columns=[ID_COLUMN, EMAIL_COLUMN])
    ids = table.column(0).to_pylist()
    emails = table.column(1).to_pylist()
    return {
        (normalise_id(i), normalise_email(e))
        for i, e in zip(ids, emails, strict=True)
        if normalise_id(i) and normalise_email(e)
    }


def lake_pairs(store: Lake) -> Pairs:
    """(id, address) pairs of every members file: processed, raw Parquet, quarantined rows."""
    prefixes = (
        layout.processed_prefix("members"),
        layout.raw_parquet_key("members", "\x00", "\x00").split("\x00", 1)[0],
        layout.quarantine_rows_key("members", "\x00", "\x00").split("\x00", 1)[0],
    )
    pairs: Pairs = set()
    for prefix in prefixes:
        for key in store.list(prefix):
            if key.endswith(".parquet"):
                with store.local_copy(key) as path:
                    pairs |= _parquet_pairs(path)
    return pairs


def warehouse_pairs(store: Lake) -> Pairs:
    """(id, address) pairs of every warehouse table that has both (the snapshots' old ones)."""
    import duckdb  # deferred: duckdb

    pairs: Pairs = set()
    for path in warehouse_files.warehouse_files(store):
        con = duckdb.connect()
        try:
            con.execute(f"attach {warehouse_files.literal(str(path))} as src (read_only)")
            for table in warehouse_files.tables(con, "src"):
                if ID_COLUMN in table.columns and EMAIL_COLUMN in table.columns:
                    rows = con.execute(
                        f"select distinct {ID_COLUMN}, {EMAIL_COLUMN} from src.{table.qualified}"
                    ).fetchall()
                    pairs |= {(normalise_id(i), normalise_email(e)) for i, e in rows if i and e}
        finally:
            con.close()
    return pairs


def state_pairs(store: Lake) -> Pairs:
    """(id, address) pairs the HubSpot sync state holds."""
    state = SyncState.load(store)
    pairs: Pairs = set()
    for address, entry in state.contacts.items():
        user_id = SyncState.split(entry)[2]
        if user_id:
            pairs.add((normalise_id(user_id), normalise_email(address)))
    return pairs


def resolve(asked: Subject, pairs: Pairs) -> Subject:
    """The closure of ``asked`` over the id-address pairs."""
    subject = asked
    while True:
        ids = subject.ids | {i for i, e in pairs if e in subject.emails}
        emails = subject.emails | {e for i, e in pairs if i in subject.ids}
        grown = Subject(frozenset(ids), frozenset(emails))
        if grown == subject:
            return subject
        subject = grown


def store_pairs(store: Lake) -> Pairs:
    """(id, address) pairs of every Parquet file of a store with both columns (Athena's
    tables: dbt writes them without a file extension)."""
    pairs: Pairs = set()
    for key in keys(store):
        if is_parquet(store, key):
            with store.local_copy(key) as path:
                pairs |= _parquet_pairs(path)
    return pairs


def all_pairs(lake: Lake, extra: Iterable[Lake] = ()) -> Pairs:
    pairs = lake_pairs(lake) | warehouse_pairs(lake) | state_pairs(lake)
    for store in extra:
        pairs |= store_pairs(store)
    return pairs
