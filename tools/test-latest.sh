#!/usr/bin/env bash
# `make test-latest`: the whole suite on the newest versions that pyproject.toml's ranges allow,
# in a throw-away environment, so that we meet a new release's breakage before users do. It is
# what `pip install -e '.[dev]'` gives someone today: `uv pip install --no-config` ignores the lock
# and the lock's extra constraints ([tool.uv] in pyproject.toml). Prints every package whose newest
# version differs from the lock, then the tests' summary; exits with pytest's status. Not in CI.
set -uo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv-tools/uv/bin/uv}
PYTHON=${PYTHON:-python3.11}
env_dir=$(mktemp -d "${TMPDIR:-/tmp}/peak-latest.XXXXXX")
trap 'rm -rf "$env_dir"' EXIT

"$UV" venv --quiet --python "$PYTHON" "$env_dir"
VIRTUAL_ENV="$env_dir" "$UV" pip install --no-config --quiet --upgrade -e '.[dev]' || exit 1

echo "== newest allowed versions that differ from uv.lock"
"$env_dir/bin/python" - <<'PY'
import tomllib
from importlib import metadata

from packaging.utils import canonicalize_name

locked = {p["name"]: p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"]}
newest = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
rows = [(n, locked.get(n, "-"), v) for n, v in sorted(newest.items()) if locked.get(n) != v]
rows = [r for r in rows if r[0] != "peak-fitness-platform"]
width = max((len(r[0]) for r in rows), default=7)
print(f"{'package':<{width}}  {'uv.lock':<12}  newest")
for name, old, new in rows:
    print(f"{name:<{width}}  {old:<12}  {new}")
print(f"{len(rows)} of {len(newest)} packages differ")
PY

echo "== make test on the newest versions"
"$env_dir/bin/python" -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadgroup -p no:cacheprovider \
  -o addopts="-ra --strict-markers" "$@"
status=$?
echo "== test-latest: pytest exited $status (0: the newest versions pass; see the failures above)"
exit $status
