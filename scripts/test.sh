#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite: ruff, mypy --strict, the docs
# build (mkdocs --strict), pytest.
# This is the README's test command and exactly what CI (.ci/run) runs.  Extra arguments go to
# pytest (e.g. `bash scripts/test.sh -k corpus`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages (Kamailio for the interop tests), only when missing.
bash scripts/install-system-deps.sh

# A virtual environment of the project's own, so that a system Python is never modified.
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -m venv --help >/dev/null 2>&1; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
fi
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev,fuzz]'

echo "== ruff"
.venv/bin/python -m ruff check .
echo "== mypy --strict"
.venv/bin/python -m mypy
echo "== mkdocs build --strict"
site_dir=$(mktemp -d)
.venv/bin/python -m mkdocs build --strict --quiet --site-dir "$site_dir"
rm -rf "$site_dir"
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
