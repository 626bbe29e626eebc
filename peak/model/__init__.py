"""The model stage: dbt (``peak build``), the Glue catalog over the processed zone, and the
warehouse the consumers read (the published DuckDB copy locally, Athena in production)."""
