# syntax=docker/dockerfile:1
# The Nexus broker image: `nexus serve` by default; `nexus worker`, `nexus migrate` and the other
# broker commands as the container's arguments. Walk-through: docs/deployment.md.
#
# Three stages so that the image holds only what runs: the compiled bundle (apps/broker/scripts/
# build.mjs, docs/decisions/0014), the files it reads beside it, and the broker's production
# dependencies (the packages the bundle leaves outside: swagger, gRPC, the cloud SDKs).
# No TypeScript source, no dev tools, no keys: configuration comes from the environment at run time.
# apps/broker/test/deploy-artifacts.test.ts checks what can be checked without a Docker engine.

ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: every dependency, then the bundle ---------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# The manifests first, so that the dependency layer is reused while only source changes.
# --ignore-scripts: the image's Node runs the build (the `node` package's download is not needed),
# and the root `prepare` script would also build the SDK, which the broker does not use.
COPY package.json package-lock.json ./
COPY apps/broker/package.json apps/broker/
COPY packages/cli/package.json packages/cli/
COPY packages/sdk/package.json packages/sdk/
COPY packages/connect/package.json packages/connect/
RUN npm ci --ignore-scripts --no-audit --no-fund
# tsconfig.json too: esbuild follows its import settings (verbatimModuleSyntax) as tsc does.
COPY tsconfig.json ./
COPY apps/broker/src apps/broker/src
COPY apps/broker/scripts apps/broker/scripts
# The operator console's frontend: build.mjs compiles it into dist/console.
COPY apps/broker/console apps/broker/console
# The provider catalogue: build.mjs copies it beside the bundle, where the broker reads it.
COPY catalog catalog
RUN node apps/broker/scripts/build.mjs

# --- deps: the broker's production dependencies only --------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY apps/broker/package.json apps/broker/
COPY packages/cli/package.json packages/cli/
COPY packages/sdk/package.json packages/sdk/
COPY packages/connect/package.json packages/connect/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --workspace @nexus/broker \
 && npm cache clean --force

# --- runtime ------------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
# NEXUS_ENV=production: without ENCRYPTION_KEY, STATE_KEY and an https BASE_URL the broker refuses
# to start instead of generating keys into a container's throw-away file system.
# HOST=0.0.0.0: the default (loopback) would be unreachable from outside the container.
ENV NODE_ENV=production \
    NEXUS_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    NEXUS_DATA_DIR=/data
WORKDIR /app
# Owned by root and not writable by the user that runs: the code cannot be changed at run time.
COPY --from=deps /app/node_modules node_modules
COPY --from=deps /app/package.json package.json
COPY --from=deps /app/apps/broker/package.json apps/broker/package.json
COPY --from=build /src/apps/broker/dist/bundle apps/broker/dist/bundle
COPY --from=build /src/apps/broker/dist/console apps/broker/dist/console
# The bundle finds the agent API's protos at ../../../../proto, as the source does (build.mjs).
COPY proto proto
COPY deploy/docker/nexus.mjs deploy/docker/healthcheck.mjs deploy/docker/
# `nexus` on the PATH for `docker exec … nexus keys generate`; /data is the only writable place
# the broker needs (SQLite when DATABASE_URL is unset, the audit export directory).
RUN ln -s /app/deploy/docker/nexus.mjs /usr/local/bin/nexus \
 && mkdir /data \
 && chown 1000:1000 /data
# The `node` user of the base image, by number, so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
# /health answers as long as the process serves (liveness); readiness (/ready) is for the
# orchestrator to route by, not a reason to restart a container.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/deploy/docker/nexus.mjs"]
CMD ["serve"]
