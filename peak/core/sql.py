"""Quoting for SQL text: every identifier, path or value the code writes into a SQL statement
goes through one of these two functions (DuckDB's spelling, which Spark, Athena and sqlglot read
too). Values that can be bound as parameters should be; these are for the places SQL cannot take
a parameter (``SET temp_directory``, ``COPY ... TO``, ``read_parquet([...])``, ``ATTACH``)."""

from __future__ import annotations


def literal(value: object) -> str:
    """A SQL string literal, its single quotes doubled (a path is written as its text)."""
    return "'" + str(value).replace("'", "''") + "'"


def identifier(name: str) -> str:
    """A quoted SQL identifier, its double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'
