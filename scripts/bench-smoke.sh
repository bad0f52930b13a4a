#!/usr/bin/env bash
# Every benchmark in bench/ for a few seconds, so that they keep working (CI runs this). The
# figures mean nothing at this length: they come from full runs (docs/performance.md). Each bench
# fails when its requests fail. Needs PostgreSQL and wrk (installed here when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh ensure-wrk >/dev/null
bash scripts/services.sh ensure-h2load >/dev/null
run() { echo; echo "--- node $*"; node "$@"; }
run bench/startup.ts 2
run bench/token-fetch.ts --smoke
run bench/token-fetch.ts --smoke --pg --key agent
run bench/grpc-token-fetch.ts --pg --seconds 2
run bench/grpc-transport.ts --seconds 1
run bench/proxy.ts --seconds 2
bash scripts/services.sh run-with-postgres node bench/refresh.ts --pg --connections 200 --window 5 --replicas 2
bash scripts/services.sh run-with-postgres node bench/soak.ts --duration 40s --interval 10s --rate 50 --connections 10 --access-ttl 10 --refresh-margin 5 --refresh-jitter 1 --report "${TMPDIR:-/tmp}/nexus-soak-smoke.json"
bash scripts/services.sh run-with-postgres node bench/chaos.ts --connections 20 --ttl 10 --minutes 0.75 --kill-at 15 --readers 2
