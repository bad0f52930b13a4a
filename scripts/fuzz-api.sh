#!/usr/bin/env bash
# Fuzzes the broker's HTTP API from its own OpenAPI document with schemathesis (PyPI), against a
# real broker on a fresh SQLite data directory. Fails on any 5xx, any undocumented status code,
# any response that does not match its schema, and any schema-violating request that is accepted.
#
# Not checked: "schema-valid request rejected" — provider profiles have cross-field rules
# (oauth2 needs client_id, …) that the broker enforces beyond the JSON Schema, with 400 + details.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.test-services/venv
if ! "$VENV/bin/pip" show schemathesis 2>/dev/null | grep -x 'Version: 4.32.5' >/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'schemathesis==4.32.5'
fi
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KEY="fuzz-$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
NEXUS_DATA_DIR="$DATA" PORT="$PORT" API_KEY="$KEY" LOG_LEVEL=warn RATE_LIMIT_ENABLED=false node apps/broker/bin/nexus.js serve >"$DATA/broker.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER 2>/dev/null || true; wait $BROKER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done
# One worker: hypothesis parses lambda sources with ast.parse, and CPython 3.11 can fail that with
# "SystemError: AST constructor recursion depth mismatch" when two threads do it at once (gh-106905).
"$VENV/bin/st" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
  -H "x-api-key: $KEY" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,negative_data_rejection,content_type_conformance,response_headers_conformance \
  --max-examples "${FUZZ_EXAMPLES:-50}" --seed "${FUZZ_SEED:-20261125}" -w 1 --no-color
