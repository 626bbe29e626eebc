"""The processed-zone suite of a dataset, generated from its contract alone: the row
expectations GX evaluates per chunk and the set-level ones (unique key, partition day) whose SQL
DuckDB runs (docs/quality.md, "What is checked")."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import contracts
from contracts import Contract
from glue.quality.context import _gx
from peak.core.sql import identifier

if TYPE_CHECKING:
    import great_expectations as gx

#: The most a required (or lineage) column's null fraction over every staged row may be.
MAX_NULL_FRACTION_REQUIRED = 0
#: How many days after the run's UTC date a partition of the batch may be dated (time zones).
PARTITION_MAX_DAYS_AHEAD = 1

#: The pandas dtype each contract type converts to (what GX's type check compares).
_PANDAS_TYPE = {
    "string": "str",
    "time": "str",
    "integer": "int64",
    "boolean": "bool",
    "date": "datetime64",
    "timestamp": "datetime64",
}
_LINEAGE_TYPES = {
    contracts.SOURCE_FILE: "string",
    contracts.SOURCE_ROW: "integer",
    contracts.INGESTED_AT: "timestamp",
    contracts.RAW_ID: "string",
}


def suite_name(contract: Contract) -> str:
    return f"{contract.dataset}_processed"


def _expected_columns(contract: Contract) -> list[str]:
    return list(contract.file_columns)


def _bound(col: contracts.Column, value: float | str | None) -> Any:
    """A contract min/max as the Python value GX compares the pandas column with."""
    if value is None:
        return None
    if col.type in ("date", "timestamp"):
        return dt.datetime.fromisoformat(str(value)).replace(tzinfo=None)
    number = float(value)
    return int(number) if col.type == "integer" and number.is_integer() else number


_quote = identifier


def _row_expectations(contract: Contract) -> list[Any]:
    """The expectations GX evaluates on each chunk: exact when their counts are summed."""
    gxe = _gx().expectations
    rules = {r.code for r in contract.rules()}

    def meta(*codes: str, **extra: Any) -> dict[str, Any]:
        """The expectation's meta; ``rule`` lists the contract's reason codes it mirrors."""
        out: dict[str, Any] = {"evaluated_by": "great_expectations", **extra}
        known = [c for c in codes if c in rules]
        if known:
            out["rule"] = ";".join(known)
        return out

    out: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=_expected_columns(contract),
            exact_match=True,
            meta=meta(note="contract columns plus processed lineage; dt is the folder name"),
        )
    ]
    for col in contract.columns:
        n = col.name
        out.append(
            gxe.ExpectColumnValuesToBeOfType(
                column=n, type_=_PANDAS_TYPE[col.type], meta=meta(f"{n}.type", type=col.type)
            )
        )
        if col.required:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=n, meta=meta(f"{n}.required")))
        if col.allowed:
            out.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=n, value_set=list(col.allowed), meta=meta(f"{n}.allowed")
                )
            )
        if col.pattern:
            out.append(
                gxe.ExpectColumnValuesToMatchRegex(
                    column=n, regex=col.pattern, meta=meta(f"{n}.pattern")
                )
            )
        elif col.type == "time":
            out.append(
                gxe.ExpectColumnValuesToMatchRegex(
                    column=n, regex=contracts.TIME_PATTERN, meta=meta(f"{n}.type")
                )
            )
        if col.max_length is not None:
            out.append(
                gxe.ExpectColumnValueLengthsToBeBetween(
                    column=n, max_value=col.max_length, meta=meta(f"{n}.max_length")
                )
            )
        if col.min is not None or col.max is not None:
            codes = [f"{n}.{b}" for b in ("min", "max") if getattr(col, b) is not None]
            out.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=n,
                    min_value=_bound(col, col.min),
                    max_value=_bound(col, col.max),
                    meta=meta(*codes),
                )
            )
    for n in contracts.PROCESSED_LINEAGE:
        kind = _LINEAGE_TYPES[n]
        out.append(
            gxe.ExpectColumnValuesToBeOfType(
                column=n, type_=_PANDAS_TYPE[kind], meta=meta(lineage=True, type=kind)
            )
        )
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=n, meta=meta(lineage=True)))
    return out


def _dataset_expectations(contract: Contract) -> list[Any]:
    """Set-level expectations: SQL over every staged row, run by DuckDB (``{batch}``)."""
    gxe = _gx().expectations
    key = list(contract.primary_key)
    keys = ", ".join(_quote(k) for k in key)
    where = "within each dt partition" if contract.dedup.scope == "partition" else "across rows"
    group = (
        f"{_quote(contracts.PARTITION_COLUMN)}, {keys}"
        if contract.dedup.scope == "partition"
        else keys
    )
    out = [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                f"SELECT {group}, count(*) AS n FROM {{batch}} GROUP BY {group} HAVING count(*) > 1"
            ),
            description=f"The primary key ({', '.join(key)}) is unique {where}",
            meta={
                "evaluated_by": "duckdb",
                "check": "unique",
                "column": ",".join(key),
                "scope": contract.dedup.scope,
                "observed_value_is": "the number of duplicated keys",
            },
        )
    ]
    not_null = [c.name for c in contract.columns if c.required] + list(contracts.PROCESSED_LINEAGE)
    fractions = ", ".join(
        f"count(*) FILTER (WHERE {_quote(n)} IS NULL) / count(*) AS {_quote(n)}" for n in not_null
    )
    out.append(
        gxe.UnexpectedRowsExpectation(
            # One scan for every column; a row per column whose null fraction exceeds its bound.
            unexpected_rows_query=(
                f"SELECT column_name, null_fraction FROM (UNPIVOT (SELECT {fractions} "
                f"FROM {{batch}}) ON {', '.join(_quote(n) for n in not_null)} "
                f"INTO NAME column_name VALUE null_fraction) u "
                f"WHERE null_fraction > {MAX_NULL_FRACTION_REQUIRED}"
            ),
            description=(
                "The null fraction of each required and lineage column, over every row, is at "
                f"most {MAX_NULL_FRACTION_REQUIRED}"
            ),
            meta={
                "evaluated_by": "duckdb",
                "check": "null_fraction",
                "columns": not_null,
                "max_null_fraction": MAX_NULL_FRACTION_REQUIRED,
                "observed_value_is": "the number of columns above their bound",
            },
        )
    )
    dt_col = _quote(contracts.PARTITION_COLUMN)
    earliest = None
    if contract.partition.by == "column" and contract.partition.column:
        earliest = contract.column(contract.partition.column).min
    out_of_window = f"max({dt_col}) > DATE '{{latest}}'"
    if earliest is not None:
        day = dt.date.fromisoformat(str(earliest)[:10]).isoformat()
        out_of_window = f"min({dt_col}) < DATE '{day}' OR {out_of_window}"
    out.append(
        gxe.UnexpectedRowsExpectation(
            # {latest} is filled in at validation time: the run's UTC date plus the days allowed.
            unexpected_rows_query=(
                f"SELECT CAST(min({dt_col}) AS VARCHAR) AS dt_min, "
                f"CAST(max({dt_col}) AS VARCHAR) AS dt_max FROM {{batch}} HAVING {out_of_window}"
            ),
            description=(
                f"The batch's partitions lie between {earliest or 'any day'} and "
                f"{PARTITION_MAX_DAYS_AHEAD} day(s) after the run's UTC date"
            ),
            meta={
                "evaluated_by": "duckdb",
                "check": "partition_bounds",
                "column": contracts.PARTITION_COLUMN,
                "earliest": None if earliest is None else str(earliest),
                "max_days_ahead": PARTITION_MAX_DAYS_AHEAD,
                "observed_value_is": "1 when the batch's dt min or max is outside the window",
            },
        )
    )
    if contract.partition.by == "column" and contract.partition.column:
        col = contract.partition.column
        out.append(
            gxe.UnexpectedRowsExpectation(
                unexpected_rows_query=(
                    f"SELECT * FROM {{batch}} WHERE CAST({_quote(col)} AS DATE) "
                    f"IS DISTINCT FROM {dt_col}"
                ),
                description=f"Every row's {col} falls on its partition's day",
                meta={
                    "evaluated_by": "duckdb",
                    "check": "partition",
                    "column": col,
                    "observed_value_is": "the number of rows in the wrong partition",
                },
            )
        )
    return out


def build_suite(contract: Contract) -> gx.ExpectationSuite:
    """The processed-zone suite of a dataset, generated from its contract only."""
    gx_ = _gx()
    return gx_.ExpectationSuite(
        name=suite_name(contract),
        expectations=[*_row_expectations(contract), *_dataset_expectations(contract)],
        meta={
            "dataset": contract.dataset,
            "generated_from": f"contracts/{contract.dataset}.yml",
            "notes": "Row expectations run in GX per chunk; unexpected-rows SQL runs in DuckDB.",
        },
    )


def _exp_key(config: Any) -> str:
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
    return config.type + json.dumps(kwargs, sort_keys=True, default=str)


def _exp_column(config: Any) -> str | None:
    kwargs = dict(config.kwargs)
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_list" in kwargs:
        return ",".join(kwargs["column_list"])
    column = (config.meta or {}).get("column")
    return str(column) if column else None
