#!/usr/bin/env bash
# The whole CLI suite: install (idempotent), build the SDK it imports, lint, typecheck, then the
# tests end to end against a real broker (SQLite; PostgreSQL too when NEXUS_TEST_DATABASE_URL is
# set, e.g. `bash scripts/services.sh run-with-postgres bash packages/cli/run-tests.sh`), then a
# build of the package and a smoke run of the built CLI. Exits non-zero on any failure.
set -euo pipefail

CLI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$CLI_DIR/../.." && pwd)"
NODE="$REPO/node_modules/.bin/node"
BIN="$REPO/node_modules/.bin"

if [[ ! -x "$NODE" || ! -d "$REPO/node_modules/yaml" || ! -d "$REPO/node_modules/ajv" || ! -e "$REPO/node_modules/@nexus-broker/cli" ]]; then
  echo "[cli] installing workspace dependencies"
  (cd "$REPO" && npm install --no-audit --no-fund)
fi

# The CLI imports @nexus-broker/sdk, whose package entry is its build output.
if [[ ! -f "$REPO/packages/sdk/dist/index.js" ]]; then
  echo "[cli] building @nexus-broker/sdk"
  (cd "$REPO/packages/sdk" && "$NODE" "$BIN/tsc" -p tsconfig.build.json && "$NODE" scripts/rewrite-dts-imports.mjs)
fi

cd "$REPO"
echo "[cli] lint"
"$BIN/biome" check packages/cli
echo "[cli] typecheck"
"$NODE" "$BIN/tsc" --noEmit -p packages/cli

echo "[cli] tests${NEXUS_TEST_DATABASE_URL:+ (PostgreSQL)}"
cd "$CLI_DIR"
"$NODE" --test --test-concurrency=2 test/*.test.ts

echo "[cli] build"
"$NODE" -e "fs.rmSync('dist',{recursive:true,force:true})"
"$NODE" "$BIN/tsc" -p tsconfig.build.json
echo "[cli] built CLI smoke test"
out="$("$NODE" bin/nexus.js completion bash)"
[[ "$out" == *"complete -F _nexus nexus"* ]]
"$NODE" bin/nexus.js validate -f examples/nexus-providers.yaml >/dev/null 2>&1 && exit 1 # variables unset: must fail
GITHUB_CLIENT_SECRET=x GOOGLE_CLIENT_SECRET=y "$NODE" bin/nexus.js validate -f examples/nexus-providers.yaml
(cd examples && GITHUB_CLIENT_SECRET=x GOOGLE_CLIENT_SECRET=y "$NODE" ../bin/nexus.js validate) # no -f: ./nexus-providers.yaml
rm -rf dist
echo "[cli] all passed"
