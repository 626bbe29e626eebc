#!/usr/bin/env bash
# sqlfluff over the dbt models, offline: the dbt templater compiles each model with the local
# DuckDB profile (profiles.yml.example, copied into a temporary profiles dir) against an empty
# temporary lake, so it needs no profiles.yml, no lake and no network. `make lint` and the
# pre-commit hook (.pre-commit-config.yaml) both run this script. Arguments: what to lint
# (default dbt_project/models). BIN picks the virtualenv's bin folder (default .venv/bin).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/peak-sqlfluff.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp profiles.yml.example "$tmp/profiles.yml"
printf '[sqlfluff:templater:dbt]\nprofiles_dir = %s\n' "$tmp" > "$tmp/sqlfluff.cfg"
PEAK_LAKE=$tmp "$BIN/sqlfluff" lint --config "$tmp/sqlfluff.cfg" "${@:-dbt_project/models}"
