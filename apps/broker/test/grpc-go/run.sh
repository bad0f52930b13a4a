#!/usr/bin/env bash
# The Go client test of nexus.v1.NexusService: starts the broker side (fixture.ts: a test broker with
# a real OpenID provider and its gRPC listener), then runs `go test` against it with the addresses
# in NEXUS_GRPC_FIXTURE. Uses the database of the Node suites: SQLite, or PostgreSQL when
# NEXUS_TEST_DATABASE_URL is set (scripts/services.sh run-with-postgres). Needs Go; the generated
# code (nexusv1/ from proto/, originalv1/ from the original's service in ../fixtures) is checked in,
# so `protoc` is only needed to regenerate it (generate.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
node="$root/node_modules/.bin/node"

if ! command -v go >/dev/null 2>&1; then
  echo "go is not installed: the Go gRPC client test cannot run" >&2
  exit 1
fi

out="$(mktemp)"
# stdin from a FIFO we hold open: closing it (or the trap's kill) stops the fixture.
fifo="$(mktemp -u)"
mkfifo "$fifo"
"$node" "$here/fixture.ts" <"$fifo" >"$out" &
fixture_pid=$!
exec 3>"$fifo"
cleanup() {
  exec 3>&- || true
  kill "$fixture_pid" 2>/dev/null || true
  wait "$fixture_pid" 2>/dev/null || true
  rm -f "$fifo" "$out"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
  if [ -s "$out" ]; then break; fi
  if ! kill -0 "$fixture_pid" 2>/dev/null; then
    echo "the broker fixture exited before it was ready" >&2
    exit 1
  fi
  sleep 0.1
done
if [ ! -s "$out" ]; then
  echo "the broker fixture was not ready within 30 s" >&2
  exit 1
fi

cd "$here"
# -p 1: the packages share the fixture's clock and fault switches, so they run one after the other.
NEXUS_GRPC_FIXTURE="$(head -n 1 "$out")" go test -count=1 -p 1 -v ./...
