"""``peak deploy package``: build every artefact into ``dist/artifacts/``, render
``dist/template.json`` and record them in ``dist/manifest.json``."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from peak.core.lake import Lake
from peak.ops.deploy.artefacts import REPO_ROOT, RUNTIME_PYTHON, Artefact, _sha
from peak.ops.deploy.codebuild import build_codebuild_source
from peak.ops.deploy.glue_wheel import build_glue_script, build_glue_wheel
from peak.ops.deploy.lambda_zips import (
    build_lambda_deps,
    build_lambda_function,
    build_unsubscribe_function,
)
from peak.ops.deploy.template import render_template

DEFAULT_OUT = REPO_ROOT / "dist"


@dataclass
class PackageResult:
    out: str
    lake: str
    artefacts: list[Artefact]

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "lake": self.lake,
            "artefacts": [asdict(a) for a in self.artefacts],
        }


def package(lake: Lake, out: Path = DEFAULT_OUT) -> PackageResult:
    """Build every artefact into ``out/artifacts/`` and render ``out/template.json``."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != RUNTIME_PYTHON:
        raise RuntimeError(f"package with Python {RUNTIME_PYTHON} (Lambda's and Glue 5.0's Python)")
    if lake.is_local:
        render_template(lake, {})  # raises the explanatory error
    artefacts_dir = out / "artifacts"
    if artefacts_dir.exists():
        import shutil

        shutil.rmtree(artefacts_dir)
    built = [
        build_lambda_function(out),
        build_unsubscribe_function(out),
        build_lambda_deps(out),
        build_glue_script(out),
        build_glue_wheel(out),
        build_codebuild_source(out),
    ]
    by_name = {a.name: a for a in built}
    template = render_template(lake, by_name)
    text = json.dumps(template, indent=1, sort_keys=False) + "\n"
    (out / "template.json").write_text(text, encoding="utf-8")
    data = text.encode()
    built.append(Artefact("CloudFormation template", "../template.json", len(data), _sha(data)))
    result = PackageResult(out=str(out), lake=lake.root, artefacts=built)
    (out / "manifest.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result
