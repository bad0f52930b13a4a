#!/usr/bin/env bash
# Builds what would be published, checks it, and installs it as a user would (issue #24), so that
# publishing is one step away: the npm tarballs of @nexus-broker/sdk and @nexus-broker/cli and the
# wheel of the Python SDK (nexus-broker-sdk). The Go SDK is published by tagging the repository;
# until then its README's `replace` install is what users do, and it is done here too: a scratch
# module requires the SDK through a `replace` to this clone and builds the README's quick start.
#
#   bash scripts/pack.sh          # build, check, install into scratch projects, clean up
#   bash scripts/pack.sh DIR      # the same, and keep the artifacts in DIR (to install from a clone)
#
# Checked: each artifact holds what an install needs (built JavaScript, type declarations, the
# CLI's bin and schema, the wheel's package and py.typed) and nothing it must not ship (sources,
# tests, maps of them aside, keys, .env files); each one installs into an empty project outside the
# repository, from the artifacts alone, and imports. Registries are reached only for the
# artifacts' third-party dependencies (npm: ws, @smithy/signature-v4, ajv, yaml; PyPI: hatchling
# to build, httpx and websockets to install).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE="$REPO/node_modules/.bin/node"
BIN="$REPO/node_modules/.bin"
[[ -x "$NODE" ]] || { echo "pack: $NODE is missing: run npm ci first (it installs the pinned Node 24)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
OUT="${1:-$WORK/out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
say() { echo "[pack] $*"; }
fail() { echo "[pack] FAIL: $*" >&2; exit 1; }

cd "$REPO"
say "build @nexus-broker/sdk and @nexus-broker/cli"
# npm runs these scripts with the pinned Node first on PATH (node_modules/.bin).
npm run -s build -w @nexus-broker/sdk
npm run -s build -w @nexus-broker/cli

say "npm pack"
npm pack --json --pack-destination "$OUT" -w @nexus-broker/sdk -w @nexus-broker/cli \
  >"$WORK/pack.json" 2>"$WORK/pack.log" || { cat "$WORK/pack.log" >&2; fail "npm pack"; }

# The file lists npm reports, checked against what each package must and must not contain.
"$NODE" - "$WORK/pack.json" <<'EOF'
const fs = require('node:fs');
const packs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const RULES = {
  '@nexus-broker/sdk': {
    must: ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/bridge.js', 'dist/sigv4.js'],
    only: /^(package\.json|README\.md|LICENSE|dist\/[\w.-]+\.(js|d\.ts)(\.map)?)$/,
  },
  '@nexus-broker/cli': {
    must: ['package.json', 'README.md', 'bin/nexus.js', 'dist/main.js', 'schema/nexus.schema.json'],
    only: /^(package\.json|README\.md|LICENSE|bin\/nexus\.js|schema\/[\w.-]+\.json|dist\/[\w/.-]+\.js(\.map)?)$/,
  },
};
// Whatever the allow-list says, these never ship.
const NEVER = /(^|\/)(src|test|tests|node_modules)\/|\.test\.|(^|\/)\.env|\.(pem|key|p12|tgz)$/;
const problems = [];
for (const name of Object.keys(RULES)) {
  const pack = packs.find((p) => p.name === name);
  if (!pack) { problems.push(`${name}: not packed`); continue; }
  const files = pack.files.map((f) => f.path);
  for (const f of RULES[name].must) if (!files.includes(f)) problems.push(`${name}: ${f} is missing`);
  for (const f of files) {
    if (NEVER.test(f) || !RULES[name].only.test(f)) problems.push(`${name}: ${f} must not be shipped`);
  }
  console.log(`[pack] ${pack.filename}: ${files.length} files, ${pack.size} bytes`);
}
if (problems.length > 0) { console.error(problems.join('\n')); process.exit(1); }
EOF

say "wheel of sdks/python"
python3 -m pip wheel -q --no-deps --disable-pip-version-check "$REPO/sdks/python" -w "$OUT" \
  >"$WORK/wheel.log" 2>&1 || { cat "$WORK/wheel.log" >&2; fail "pip wheel"; }
WHEEL="$(ls "$OUT"/nexus_broker_sdk-*-py3-none-any.whl)"
python3 - "$WHEEL" <<'EOF'
import re, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
problems = [f"{n} is missing" for n in ("nexus_sdk/__init__.py", "nexus_sdk/py.typed", "nexus_sdk/bridge.py")
            if n not in names]
problems += [f"{n} must not be shipped" for n in names
             if not re.match(r"^(nexus_sdk/[\w]+\.py|nexus_sdk/py\.typed|nexus_broker_sdk-[\w.]+\.dist-info/.+)$", n)]
print(f"[pack] {sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files")
if problems:
    sys.exit("\n".join(problems))
EOF

# Installs from the artifacts alone, in projects outside the repository: nothing resolves back
# to the workspace's node_modules or sources.
say "install the npm tarballs into an empty project and import them"
APP="$WORK/npm-app"
mkdir -p "$APP"
cd "$APP"
echo '{"name":"pack-check","private":true,"type":"module"}' >package.json
npm install --no-audit --no-fund --silent "$OUT"/nexus-broker-sdk-*.tgz "$OUT"/nexus-broker-cli-*.tgz
"$NODE" --input-type=module -e "
  const sdk = await import('@nexus-broker/sdk');
  for (const name of ['NexusClient', 'NexusAdmin', 'createBridgeFetch', 'maintainWebSocket', 'NexusError'])
    if (typeof sdk[name] !== 'function') throw new Error('@nexus-broker/sdk does not export ' + name);
  const resolved = import.meta.resolve('@nexus-broker/sdk');
  if (!resolved.includes('/pack-check/') && !resolved.includes('/npm-app/')) throw new Error('resolved to ' + resolved);
"
# The declarations resolve for a TypeScript user (NodeNext, as an ESM-only package needs).
cat >check.ts <<'EOF'
import { createBridgeFetch, NexusClient } from '@nexus-broker/sdk';
const client: NexusClient = new NexusClient({ baseUrl: 'http://127.0.0.1:1', apiKey: 'k' });
export const api: typeof fetch = createBridgeFetch({ client, connectionId: 'c' });
EOF
"$NODE" "$BIN/tsc" --noEmit --strict --skipLibCheck --module nodenext --moduleResolution nodenext \
  --types node --typeRoots "$REPO/node_modules/@types" check.ts
"$NODE" node_modules/.bin/nexusctl --help >"$WORK/cli.txt" || fail "nexusctl --help"
grep -q 'operator CLI' "$WORK/cli.txt" || fail "nexusctl --help printed: $(head -3 "$WORK/cli.txt")"

say "install the wheel into a fresh virtual environment and import it"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check "$WHEEL"
(cd "$WORK" && "$WORK/venv/bin/python" -c '
import nexus_sdk
for name in ("NexusClient", "AsyncNexusClient", "NexusAdminClient", "NexusAuth"):
    assert callable(getattr(nexus_sdk, name)), name
assert "/venv/" in nexus_sdk.__file__, nexus_sdk.__file__
')

say "the Go SDK through a replace directive (sdks/go/README.md's install), building its quick start"
GO=$(command -v go || true)
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; fi
[ -n "$GO" ] || fail "no Go toolchain (go on PATH or /usr/local/go/bin/go)"
GOAPP="$WORK/go-app"
mkdir -p "$GOAPP"
# The README's first go block is its quick start (readme.test.ts checks it is example_test.go's Example).
awk '/^```go/ { inside = 1; next } /^```/ { if (inside) exit } inside' "$REPO/sdks/go/README.md" >"$GOAPP/main.go"
grep -q '^func main() {' "$GOAPP/main.go" || fail "no quick start program found in sdks/go/README.md"
(
  cd "$GOAPP"
  export GOTOOLCHAIN=local GOFLAGS=-mod=mod
  "$GO" mod init example.com/pack-check >/dev/null 2>&1
  "$GO" mod edit -require=github.com/nexus-broker/nexus/sdks/go@v0.0.0 \
    -replace=github.com/nexus-broker/nexus/sdks/go="$REPO/sdks/go"
  "$GO" mod tidy >"$WORK/go.log" 2>&1 || { cat "$WORK/go.log" >&2; exit 1; }
  "$GO" build -o quickstart . >>"$WORK/go.log" 2>&1 || { cat "$WORK/go.log" >&2; exit 1; }
) || fail "the Go SDK's replace install"

say "ok: $(cd "$OUT" && ls | xargs), and the Go quick start built"
