"""A local Athena for compiling: moto's AWS emulator, a Glue catalog holding the project's
relations, and an answer to every query dbt sends while it compiles.

dbt-athena compiles a model against AWS: it lists the relations of its schema in Glue (so
``is_incremental()`` is true only when the model's table exists there) and runs the macros'
introspective queries (``run_query``) through Athena's ``StartQueryExecution``. moto emulates
Glue fully, but it does not execute SQL: its Athena accepts a query and answers it with no rows
(and refuses it outright when the workgroup does not exist, which is why ``dbt run --target
athena`` against a bare moto fails on ``StartQueryExecution``).

So the emulator here starts moto in this process (``ThreadedMotoServer``), creates the workgroup,
the results bucket and, for the incremental form, a Glue table for every relation the project
builds, then hooks moto's Athena backend: each query it receives is recorded (with the dbt node
that sent it, from dbt's query comment) and answered by a function: in practice
:class:`.transpile.DuckDBSession`, which runs the query's DuckDB translation on the local lake.
Nothing leaves the process and no AWS account is involved.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: What an answer is: column names, their Athena types, and the rows (None for NULL).
Answer = tuple[Sequence[str], Sequence[str], Sequence[Sequence[Any]]]
Answerer = Callable[[str], Answer]

REGION = "eu-west-1"
#: Placeholders for the Athena profile's settings and the AWS SDK (never a real account).
ENVIRONMENT = {
    "PEAK_ATHENA_S3_STAGING_DIR": "s3://peak-compile-only/athena-results/",
    "PEAK_ATHENA_S3_DATA_DIR": "s3://peak-compile-only/dbt/",
    "AWS_ACCESS_KEY_ID": "compile-only",
    "AWS_SECRET_ACCESS_KEY": "compile-only",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}
_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")
_NODE_ID = re.compile(r'"node_id":\s*"([^"]+)"')


@dataclass(frozen=True)
class CatalogRelation:
    """A relation dbt should find in Glue: its schema, name, kind and partition column."""

    schema: str
    name: str
    view: bool = False
    partition: str | None = None


@dataclass(frozen=True)
class Query:
    sql: str
    node_id: str | None


@dataclass
class Emulator:
    endpoint: str
    queries: list[Query] = field(default_factory=list)

    def add_relations(self, relations: Iterable[CatalogRelation]) -> None:
        """Create a Glue table (or view) for each relation, and its database when missing."""
        glue = _session().client("glue", endpoint_url=self.endpoint)
        databases = {d["Name"] for d in glue.get_databases()["DatabaseList"]}
        for relation in relations:
            if relation.schema not in databases:
                glue.create_database(DatabaseInput={"Name": relation.schema})
                databases.add(relation.schema)
            glue.create_table(DatabaseName=relation.schema, TableInput=_table_input(relation))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _athena_type(name: str) -> str:
    return {"integer": "integer", "bigint": "bigint", "double": "double"}.get(name, name)


def _result(answer: Answer) -> Any:
    from moto.athena.models import QueryResults

    names, types, rows = answer

    def cell(value: Any) -> dict[str, str]:
        return {} if value is None else {"VarCharValue": str(value)}

    header = {"Data": [{"VarCharValue": n} for n in names]}
    return QueryResults(
        rows=[header, *({"Data": [cell(v) for v in row]} for row in rows)],
        column_info=[
            {"Name": n, "Label": n, "Type": _athena_type(t), "Nullable": "UNKNOWN"}
            for n, t in zip(names, types, strict=True)
        ],
    )


@contextmanager
def _answering(emulator: Emulator, answer: Answerer) -> Iterator[None]:
    """Hook moto's Athena backend so every query is recorded and answered by ``answer``."""
    from moto.athena.models import AthenaBackend
    from moto.core.exceptions import JsonRESTError

    original = AthenaBackend.start_query_execution
    lock = threading.Lock()

    def start_query_execution(self: Any, query: str, *args: Any, **kwargs: Any) -> str:
        exec_id = original(self, query, *args, **kwargs)
        node = _NODE_ID.search(query)
        with lock:
            emulator.queries.append(Query(query, node.group(1) if node else None))
            try:
                self.query_results[exec_id] = _result(answer(query))
            except Exception as exc:  # the query's own error, as Athena would report it
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise JsonRESTError("InvalidRequestException", first) from exc
        return exec_id

    AthenaBackend.start_query_execution = start_query_execution  # type: ignore[method-assign]
    try:
        yield
    finally:
        AthenaBackend.start_query_execution = original  # type: ignore[method-assign]


def _bucket_and_key(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _session() -> Any:
    import boto3

    return boto3.session.Session(region_name=REGION)


def _prepare(endpoint: str, work_group: str) -> None:
    """The buckets of the profile's S3 folders and the workgroup dbt-athena queries in."""
    staging = os.environ["PEAK_ATHENA_S3_STAGING_DIR"]
    s3 = _session().client("s3", endpoint_url=endpoint)
    for uri in {staging, os.environ["PEAK_ATHENA_S3_DATA_DIR"]}:
        bucket = _bucket_and_key(uri)[0]
        if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
    _session().client("athena", endpoint_url=endpoint).create_work_group(
        Name=work_group, Configuration={"ResultConfiguration": {"OutputLocation": staging}}
    )


def _table_input(relation: CatalogRelation) -> dict[str, Any]:
    table: dict[str, Any] = {
        "Name": relation.name,
        "TableType": "VIRTUAL_VIEW" if relation.view else "EXTERNAL_TABLE",
        "StorageDescriptor": {
            "Columns": [],
            "Location": f"{os.environ['PEAK_ATHENA_S3_DATA_DIR']}{relation.name}/",
        },
        "Parameters": {"table_type": "VIEW" if relation.view else "hive"},
    }
    if relation.partition:
        table["PartitionKeys"] = [{"Name": relation.partition, "Type": "date"}]
    return table


@contextmanager
def athena_emulator(
    *,
    answer: Answerer,
    relations: Iterable[CatalogRelation] = (),
    work_group: str = "peak",
) -> Iterator[Emulator]:
    """moto in this process, with the catalog holding ``relations`` and every Athena query
    answered by ``answer``; the AWS environment is pointed at it and restored afterwards."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in (*ENVIRONMENT, *_CLEARED)}
    for name in _CLEARED:
        os.environ.pop(name, None)
    os.environ.update({**ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint})
    emulator = Emulator(endpoint)
    try:
        _prepare(endpoint, work_group)
        emulator.add_relations(relations)
        with _answering(emulator, answer):
            yield emulator
    finally:
        server.stop()
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
