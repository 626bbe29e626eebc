"""The floor of land-and-validate: the design's two passes done bare in DuckDB, no platform code.

Run by ``bench/transform.py`` in the same run as the pipeline it is compared with:

    python bench/transform_floor.py <exports folder> <out folder> [memory limit, 1GB]

1. For every export: its SHA-256 (read in full) and a byte copy (in threads), and per dataset
   one COPY of its exports to text Parquet, one file per export, with the lineage of a file
   (name, export date; not the row number, which DuckDB's CSV reader does not give).
2. Per dataset, over its text Parquet: every contract column trimmed and typed (TRY_CAST after
   the contract's pattern where it has one), rows with a missing required value or a failed
   type set aside, de-duplicated on the primary key (first by export date, file; members
   and classes keep the last per export date), and written as partitioned Parquet in one
   ``COPY ... PARTITION_BY``.

It takes the contracts' column names, types, patterns and keys (data, not code); everything
else is written here, as a hand-written script would.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

import contracts

FILES_IN_FLIGHT = 4
CAST = {"integer": "BIGINT", "boolean": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMPTZ"}


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def keep(src: Path, out: Path) -> None:
    """The export's SHA-256 (read in full) and a byte copy under it."""
    digest = hashlib.sha256()
    with open(src, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    shutil.copyfile(src, out / "raw" / f"{digest.hexdigest()}{src.suffix}")


def to_text(con: duckdb.DuckDBPyConnection, dataset: str, files: list[Path], out: Path) -> None:
    """A dataset's exports -> text Parquet, one file per export, with its lineage, one COPY."""
    names = contracts.get(dataset).column_names
    types = "{" + ", ".join(f"{lit(n)}: 'VARCHAR'" for n in names) + "}"
    listed = ", ".join(lit(str(f)) for f in files)
    export_date = "CAST(REGEXP_EXTRACT(_source_file, '(\\d{4}-\\d{2}-\\d{2})', 1) AS DATE)"
    con.execute(
        f"COPY (SELECT *, {export_date} AS _export_date FROM (SELECT * EXCLUDE (filename), "
        f"PARSE_FILENAME(filename) AS _source_file FROM read_csv([{listed}], header = true, "
        f"auto_detect = false, delim = ',', quote = '\"', escape = '\"', columns = {types}, "
        f"filename = true))) TO {lit(str(out / 'text' / dataset))} "
        "(FORMAT parquet, PARTITION_BY (_source_file), WRITE_PARTITION_COLUMNS true)"
    )


def typed(col: contracts.Column) -> str:
    value = f"NULLIF(TRIM({q(col.name)}), '')"
    check = f"REGEXP_MATCHES({value}, {lit(col.pattern)})" if col.pattern else "TRUE"
    if col.type in CAST:
        cast = f"TRY_CAST({value} AS {CAST[col.type]})"
        return f"CASE WHEN {check} THEN {cast} END"
    return f"CASE WHEN {check} THEN {value} END"


def validate(con: duckdb.DuckDBPyConnection, dataset: str, out: Path) -> None:
    contract = contracts.get(dataset)
    cols = [f"{typed(c)} AS {q(c.name)}" for c in contract.columns]
    bad = [f"{q(c.name)} IS NULL" for c in contract.columns if c.required]
    if contract.partition.by == "column":
        dt = f"CAST({q(contract.partition.column or '')} AS DATE)"
    else:
        dt = "_export_date"
    key = ", ".join(q(k) for k in contract.primary_key)
    scope = key if contract.dedup.scope == "dataset" else f"{key}, dt"
    order = "_export_date, _source_file"
    if contract.dedup.keep == "latest":
        order = ", ".join(f"{c} DESC" for c in order.split(", "))
    con.execute(
        f"COPY (SELECT * EXCLUDE (_export_date) FROM (SELECT *, {dt} AS dt FROM "
        f"(SELECT {', '.join(cols)}, _source_file, _export_date "
        f"FROM read_parquet({lit(str(out / 'text' / dataset / '*' / '*.parquet'))})) "
        f"WHERE NOT ({' OR '.join(bad) or 'FALSE'})) "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {scope} ORDER BY {order}) = 1) "
        f"TO {lit(str(out / 'processed' / dataset))} "
        "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (dt))"
    )


def main(data: Path, out: Path, memory_limit: str) -> None:
    shutil.rmtree(out, ignore_errors=True)
    con = duckdb.connect(config={"memory_limit": memory_limit})
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    (out / "raw").mkdir(parents=True)
    (out / "processed").mkdir()
    (out / "text").mkdir()
    datasets = list(contracts.load_all())
    files = sorted(data.glob("*.csv"))
    with ThreadPoolExecutor(max_workers=FILES_IN_FLIGHT) as pool:  # beside DuckDB's threads
        kept = pool.map(lambda src: keep(src, out), files)
        for dataset in datasets:
            mine = [f for f in files if f.name.startswith(contracts.get(dataset).file_prefix)]
            if mine:
                to_text(con, dataset, mine, out)
        list(kept)
    for dataset in datasets:
        validate(con, dataset, out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "1GB")
