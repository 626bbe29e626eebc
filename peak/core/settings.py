"""The platform's settings: one typed model, read from ``PEAK_*`` environment variables.

Entry points (the CLI, the Lambda handler, the Glue job) build a :class:`Settings` once and pass
what they need down as arguments; nothing below them reads ``os.environ``. Explicit arguments beat
the environment. Secrets (AWS credentials, later the HubSpot token) never live here: they come
from the AWS credential chain or their own variables and are never logged.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Engine = Literal["duckdb", "spark"]
Target = Literal["local", "athena"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PEAK_", extra="ignore")

    lake: str = Field("./lake", description="Lake root: a local folder or s3://bucket/prefix.")
    gym_timezone: str = Field("UTC", description="Time zone of naive export timestamps.")
    engine: Engine = Field("duckdb", description="Default transform engine.")
    duckdb_memory_limit: str = Field("3GB", description="DuckDB's memory cap (it spills).")
    duckdb_threads: int | None = Field(None, description="DuckDB threads (default: all cores).")
    quality_batch_rows: int = Field(1_000_000, description="Rows per Great Expectations batch.")
    spark_driver_memory: str = Field("3g", description="Local Spark's driver (and heap) memory.")
    spark_shuffle_partitions: int = Field(16, description="Local Spark's shuffle partitions.")

    dbt_target: Target = Field("local", description="dbt target: local (DuckDB) or athena.")
    glue_database: str = Field("peak_processed", description="Glue database of the processed zone.")
    athena_schema: str = Field("peak_analytics", description="Athena schema dbt builds into.")
    athena_work_group: str = Field("peak", description="Athena workgroup (bytes-scanned cutoff).")
    athena_s3_staging_dir: str | None = Field(None, description="Athena query results location.")
    athena_s3_data_dir: str | None = Field(None, description="Where dbt writes Athena tables.")

    @field_validator("gym_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value
