#!/usr/bin/env bash
# The whole TypeScript SDK suite: install (idempotent), lint, typecheck, tests against the testbed
# (a real broker, a real OpenID provider, an upstream that checks credentials), build, and a smoke
# test of the built package on Node 20 when one is installed. Exits non-zero on any failure.
set -euo pipefail

SDK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SDK_DIR/../.." && pwd)"
NODE="$REPO/node_modules/.bin/node"
BIN="$REPO/node_modules/.bin"

# Node 24 (pinned through npm), TypeScript, Biome and @smithy/signature-v4 come from the workspace install.
if [[ ! -x "$NODE" || ! -d "$REPO/node_modules/@smithy/signature-v4" || ! -e "$REPO/node_modules/@nexus-broker/sdk" ]]; then
  echo "[sdk-ts] installing workspace dependencies"
  (cd "$REPO" && npm install --no-audit --no-fund)
fi

cd "$REPO"
echo "[sdk-ts] lint"
"$BIN/biome" check packages/sdk
echo "[sdk-ts] typecheck"
"$NODE" "$BIN/tsc" --noEmit -p packages/sdk

echo "[sdk-ts] tests"
cd "$SDK_DIR"
"$NODE" --test --test-concurrency=2 test/*.test.ts

echo "[sdk-ts] build"
"$NODE" -e "fs.rmSync('dist',{recursive:true,force:true})"
"$NODE" "$BIN/tsc" -p tsconfig.build.json
"$NODE" scripts/rewrite-dts-imports.mjs

echo "[sdk-ts] built package smoke test"
"$NODE" test/dist-smoke.mjs
SYSTEM_NODE="$(command -v node || true)"
if [[ -n "$SYSTEM_NODE" && "$SYSTEM_NODE" != "$NODE" ]]; then
  major="$("$SYSTEM_NODE" -p 'process.versions.node.split(".")[0]')"
  if [[ "$major" -ge 20 ]]; then "$SYSTEM_NODE" test/dist-smoke.mjs; fi
fi
echo "[sdk-ts] all passed"
