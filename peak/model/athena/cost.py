"""What a scan of a partitioned table reads: the bytes Athena would bill for it.

Athena bills the compressed bytes of the Parquet column chunks a query reads (plus the files'
footers, which are small). :func:`scan_bytes` sums them for a relation and the columns a scan
reads (:mod:`.scans` finds those), over every partition:

* a source table: the processed zone's own files, which Athena reads as they are;
* a model: the local warehouse's table written as Athena writes it (Hive partitions of snappy
  Parquet), an estimate: Athena's writer groups rows and encodes a little differently.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from peak.core.layout import processed_prefix
from peak.model.athena.project import CompiledProject
from peak.model.athena.transpile import WAREHOUSE


def column_bytes(files: Iterable[Path], columns: Iterable[str]) -> int:
    """The compressed bytes of ``columns``' chunks in the Parquet ``files``."""
    import pyarrow.parquet as pq

    wanted = set(columns)
    total = 0
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for index in range(row_group.num_columns):
                chunk = row_group.column(index)
                if chunk.path_in_schema in wanted:
                    total += chunk.total_compressed_size
    return total


def scan_bytes(project: CompiledProject, relation: str, columns: Iterable[str]) -> int:
    """Bytes a full scan of ``relation`` (a source's dotted name or a model's) reading
    ``columns`` costs on the compiled project's lake."""
    if project.lake is None:
        raise ValueError("the compiled project has no lake to measure")
    lake = project.lake
    source = next((s for s in project.sources if s.name == relation), None)
    if source is not None:
        prefix = processed_prefix(source.dataset)
        files = [lake.path(k) for k in lake.list(prefix) if k.endswith(".parquet")]
        return column_bytes(files, columns)
    node = project.nodes[relation]
    with tempfile.TemporaryDirectory(prefix="peak-scan-") as folder, project.session.lock:
        partition = f', partition_by ("{node.partition}")' if node.partition else ""
        project.session.con.execute(
            f"copy (select * from {WAREHOUSE}.main.\"{node.name}\") to '{folder}' "
            f"(format parquet, compression snappy{partition})"
        )
        return column_bytes(Path(folder).rglob("*.parquet"), columns)
