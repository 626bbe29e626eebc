"""Loading Great Expectations: imported once and lazily, analytics off, and the in-memory
context a validation runs in (its only Data Docs site is the docs folder it is given)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

#: The Data Docs site the quality step builds (one per docs folder).
DOCS_SITE = "peak_quality"


@cache
def _gx() -> Any:
    """Import GX once, with analytics off before its first import."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations

    return great_expectations


def preload() -> None:
    """Import GX and the parts of it this package uses (about 3 s): call it from a background
    thread while the engine works, so validation does not wait for the import."""
    _gx()
    import great_expectations.data_context.types.base
    import great_expectations.render.renderer  # noqa: F401


def _new_context(docs_dir: Path) -> Any:
    """An in-memory GX context whose only Data Docs site is ``docs_dir``."""
    gx_ = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        data_docs_sites={
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "show_cta_footer": False,
                },
            }
        },
    )
    return gx_.get_context(project_config=config, mode="ephemeral")
