"""The columns a public dbt model publishes: what a sink or the dashboard may read from it.

A model that code reads is ``access: public`` with an enforced contract: its folder's
``_<folder>__models.yml`` lists its columns, in order, each with a ``data_type``, and dbt fails
the build when the model's SQL gives anything else. :func:`public_columns` returns that list,
so a consumer takes its columns from the model rather than from a hand-written copy.

Where the list is read from:

* **dbt's manifest** (``manifest.json``), when it is *current*: written after every YAML file
  under ``models/`` and ``dbt_project.yml`` last changed. It is what dbt itself compiled, with
  the config dbt resolved. By default the one plain ``dbt`` writes
  (``dbt_project/target/manifest.json``); ``peak build`` writes its own under the lake
  (``peak.model.dbt.target_path(lake, target) / "manifest.json"``), which a caller can pass.
* otherwise **the models' YAML**, the source the manifest is compiled from: always present in
  a checkout or a deployed package, never stale, and read without importing dbt. For the two to
  agree, ``access`` and ``contract`` are set in the model's own ``config:`` (never folder-wide
  in ``dbt_project.yml``); a test checks that they agree, and that the YAML's columns are the
  built tables' columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from peak.core.errors import ModelError
from peak.model.dbt import PROJECT_DIR

#: The dbt project's name (the manifest's package of its own models).
PROJECT_NAME = "peak_fitness"
MODELS_DIR = PROJECT_DIR / "models"
#: Where plain ``dbt`` (run in dbt_project/) writes its manifest.
MANIFEST = PROJECT_DIR / "target" / "manifest.json"


def project_files() -> list[Path]:
    """The files a model's properties come from: every YAML under models/, dbt_project.yml."""
    return [PROJECT_DIR / "dbt_project.yml", *sorted(MODELS_DIR.rglob("*.yml"))]


def is_current(manifest: Path) -> bool:
    """True when ``manifest`` exists and was written after every models YAML last changed."""
    try:
        written = manifest.stat().st_mtime
    except OSError:
        return False
    return all(path.stat().st_mtime <= written for path in project_files())


def _is_public(config: dict[str, Any]) -> bool:
    contract = config.get("contract") or {}
    return config.get("access") == "public" and bool(contract.get("enforced"))


def _from_yaml(files: Iterable[Path]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in files:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for model in document.get("models") or []:
            if _is_public(model.get("config") or {}):
                found[model["name"]] = [column["name"] for column in model.get("columns") or []]
    return found


def _from_manifest(manifest: Path) -> dict[str, list[str]]:
    document = json.loads(manifest.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for node in document.get("nodes", {}).values():
        if node.get("resource_type") != "model" or node.get("package_name") != PROJECT_NAME:
            continue
        config = {**node.get("config", {}), "access": node.get("access")}
        if _is_public(config):
            # The manifest keeps the columns in their YAML order.
            found[node["name"]] = list(node.get("columns") or {})
    return found


def public_models(manifest: Path | None = MANIFEST) -> dict[str, list[str]]:
    """Every public model with an enforced contract, and its columns in order.

    Read from ``manifest`` when it is current (:func:`is_current`), else from the models' YAML.
    ``manifest=None`` reads the YAML.
    """
    if manifest is not None and is_current(manifest):
        return _from_manifest(manifest)
    return _from_yaml(sorted(MODELS_DIR.rglob("*.yml")))


def public_columns(model: str, manifest: Path | None = MANIFEST) -> list[str]:
    """The contracted columns of the public model ``model``, in order.

    Raises :class:`~peak.core.errors.ModelError` when no public model has that name (a model
    that is not public may change its columns with no notice to consumers).
    """
    models = public_models(manifest)
    if model not in models:
        raise ModelError(
            f"{model} is not a public dbt model with an enforced contract "
            f"(public: {', '.join(sorted(models)) or 'none'})"
        )
    return models[model]
