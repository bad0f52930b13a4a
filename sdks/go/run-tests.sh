#!/usr/bin/env bash
# Runs the Go SDK's whole suite: module download, go vet, go test (the integration tests
# start the SDK testbed with the repository's pinned Node). Exits non-zero on any failure.
# NEXUS_GO_RACE=1 adds the race detector.
set -euo pipefail
cd "$(dirname "$0")"

GO=$(command -v go || true)
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; fi
if [ -z "$GO" ]; then
  echo "run-tests.sh: no Go toolchain (go on PATH or /usr/local/go/bin/go); Go 1.26 or newer is needed" >&2
  exit 1
fi
NODE=${NEXUS_TESTBED_NODE:-../../node_modules/.bin/node}
if [ ! -x "$NODE" ]; then
  echo "run-tests.sh: $NODE is missing: run npm ci at the repository root first (the testbed needs it)" >&2
  exit 1
fi

# The toolchain in go.mod is the one to use; never download another.
export GOTOOLCHAIN=local
# go.sum is committed: the build must not change go.mod or go.sum.
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

echo "== $("$GO" version)"
"$GO" mod download
"$GO" mod verify
echo "== go vet"
"$GO" vet ./...
echo "== go test"
race=()
if [ "${NEXUS_GO_RACE:-}" = "1" ]; then race=(-race); fi
"$GO" test "${race[@]}" -count=1 -timeout 10m ./...
