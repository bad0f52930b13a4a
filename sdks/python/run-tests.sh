#!/usr/bin/env bash
# Runs the Python SDK's whole suite: installs what it needs (idempotent), lints (ruff), type-checks (mypy --strict),
# then runs pytest against the SDK testbed (a real broker, OpenID provider and verifying upstream).
# Exits non-zero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${NEXUS_PYTHON_SDK_VENV:-$REPO/.test-services/python-sdk-venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "run-tests.sh: Python 3.10 or newer is required ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$REPO/node_modules/.bin/node" ]; then
  echo "run-tests.sh: $REPO/node_modules/.bin/node is missing; run npm install (or npm ci) at the repository root" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when pyproject.toml changed since the last successful install.
STAMP="$VENV/.nexus-sdk-installed"
if [ ! -f "$STAMP" ] || [ "$HERE/pyproject.toml" -nt "$STAMP" ] || ! "$VENV/bin/python" -c 'import nexus_sdk' 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$HERE[test]"
  touch "$STAMP"
fi

cd "$HERE"
echo "== ruff check"
"$VENV/bin/python" -m ruff check src tests scripts
echo "== mypy --strict (src, tests and scripts)"
"$VENV/bin/python" -m mypy --strict src/nexus_sdk tests scripts
echo "== pytest"
"$VENV/bin/python" -m pytest -q "$@"
