#!/usr/bin/env bash
# Installs (from Debian packages) and starts the real services the test suites use.
# Used by the tests, by .ci/run and by people: nothing here is CI-only.
#
#   scripts/services.sh ensure-postgres        install + start PostgreSQL, print a test DATABASE_URL
#   scripts/services.sh ensure-redis           install + start Redis on 127.0.0.1:${NEXUS_TEST_REDIS_PORT:-6390}
#   scripts/services.sh ensure-chromium        install Chromium (for browser tests), print its executable path
#   scripts/services.sh run-with-postgres CMD  run CMD with NEXUS_TEST_DATABASE_URL set
#   scripts/services.sh ensure-moto            install moto (PyPI, pinned) into .test-services/moto and start two
#                                              servers: open on ${NEXUS_TEST_MOTO_PORT:-5055}, IAM-enforcing on the next port
#   scripts/services.sh run-with-moto CMD      run CMD with NEXUS_TEST_MOTO_URL and NEXUS_TEST_MOTO_STRICT_URL set
#   scripts/services.sh ensure-rustyvault      build RustyVault (crates.io, pinned) once into .test-services/rustyvault,
#                                              print the binary (the tests start, init and unseal it themselves)
#   scripts/services.sh run-with-peers CMD     run CMD with the moto variables and NEXUS_TEST_RVAULT_BIN set
#   scripts/services.sh private-postgres ACTION DIR [PORT]
#                                              a throw-away PostgreSQL cluster in DIR, for tests that stop or
#                                              freeze their database (the shared one above must stay up):
#                                              init (needs PORT; prints its DATABASE_URL) | start | stop (fast) |
#                                              freeze (SIGSTOP every process) | thaw (SIGCONT) | destroy
#
# The test role and database are throw-away (nexus_test / nexus_test) and listen on loopback only.
set -euo pipefail

PG_USER=nexus_test
PG_PASSWORD=nexus_test
PG_DB=nexus_test
REDIS_PORT="${NEXUS_TEST_REDIS_PORT:-6390}"
CHROMIUM=/usr/bin/chromium
APT_UPDATED=0

log() { echo "[services] $*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "need root to apt-get install $*; install it yourself and re-run"
    exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

ensure_postgres() {
  command -v pg_lsclusters >/dev/null 2>&1 && [ -n "$(ls /usr/lib/postgresql 2>/dev/null)" ] || apt_install postgresql
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | grep -q .; then
    log "creating PostgreSQL $version cluster"
    pg_createcluster "$version" main >&2
  fi
  local cluster
  cluster=$(pg_lsclusters -h | head -n 1)
  local ver name status port
  read -r ver name port status _ <<<"$cluster"
  if [ "$status" != online ]; then
    log "starting PostgreSQL $ver/$name on port $port"
    pg_ctlcluster "$ver" "$name" start >&2
  fi
  for _ in $(seq 1 50); do
    as_postgres psql -p "$port" -qtAc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.2
  done
  as_postgres psql -p "$port" -qtAc "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'" | grep -q 1 ||
    as_postgres psql -p "$port" -qc "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'" >&2
  # CREATEDB: a test may build a database of its own (the original's, for nexus import original).
  as_postgres psql -p "$port" -qtAc "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER' AND rolcreatedb" | grep -q 1 ||
    as_postgres psql -p "$port" -qc "ALTER ROLE $PG_USER CREATEDB" >&2
  as_postgres psql -p "$port" -qtAc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" | grep -q 1 ||
    as_postgres psql -p "$port" -qc "CREATE DATABASE $PG_DB OWNER $PG_USER" >&2
  echo "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
}

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes >&2
    for _ in $(seq 1 50); do
      redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  fi
  echo "redis://127.0.0.1:$REDIS_PORT"
}

ensure_wrk() {
  command -v wrk >/dev/null 2>&1 || apt_install wrk
  command -v wrk
}

ensure_h2load() {
  command -v h2load >/dev/null 2>&1 || apt_install nghttp2-client
  command -v h2load
}

ensure_chromium() {
  [ -x "$CHROMIUM" ] || apt_install chromium
  if [ ! -x "$CHROMIUM" ]; then
    log "$CHROMIUM is still missing after installing chromium"
    exit 1
  fi
  echo "$CHROMIUM"
}

MOTO_VERSION=5.2.5
MOTO_PORT="${NEXUS_TEST_MOTO_PORT:-5055}"

# Stops a moto server on this port whose installation is gone (a clone deleted while its moto ran):
# it still answers, with 500 pages for every call, and reusing it failed the backends suite. A
# moto whose installation still exists (this clone's, or another clone's still running) is kept.
stop_orphaned_moto() {
  local port=$1 pid script
  for pid in $(pgrep -f "moto_server -H 127.0.0.1 -p $port\$" || true); do
    script=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -m1 '/moto_server$' || true)
    if [ -n "$script" ] && [ ! -e "$script" ]; then
      log "stopping moto (pid $pid) on 127.0.0.1:$port: its installation ($script) is gone"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
  done
}

# Starts one moto server (AWS emulator, server mode) on loopback unless one already answers there.
start_moto() {
  local dir=$1 port=$2 name=$3
  shift 3
  stop_orphaned_moto "$port"
  if ! curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/"; then
    log "starting moto ($name) on 127.0.0.1:$port"
    env "$@" nohup "$dir/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/$name.log" 2>&1 &
    for _ in $(seq 1 100); do
      curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/" && return 0
      sleep 0.1
    done
    log "moto ($name) did not start; see $dir/$name.log"
    exit 1
  fi
}

ensure_moto() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/.test-services/moto"
  if ! "$dir/bin/pip" show moto 2>/dev/null | grep -x "Version: $MOTO_VERSION" >/dev/null; then
    log "installing moto $MOTO_VERSION (PyPI) into $dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install -q "moto[server]==$MOTO_VERSION" >&2
  fi
  start_moto "$dir" "$MOTO_PORT" open
  # INITIAL_NO_AUTH_ACTION_COUNT=0: every request is checked against moto's IAM, so unknown keys are refused.
  start_moto "$dir" "$((MOTO_PORT + 1))" strict INITIAL_NO_AUTH_ACTION_COUNT=0
  echo "http://127.0.0.1:$MOTO_PORT"
}

RUSTYVAULT_VERSION=0.2.1

# RustyVault: a Vault-API server in Rust, the only real Vault-compatible server installable here
# (docs/decisions/0007-secret-backends.md). The build takes minutes; the binary is cached.
ensure_rustyvault() {
  local dir bin cargo
  dir="$(cd "$(dirname "$0")/.." && pwd)/.test-services/rustyvault"
  bin="$dir/bin/rvault"
  if [ ! -x "$bin" ] || [ "$(cat "$dir/VERSION" 2>/dev/null)" != "$RUSTYVAULT_VERSION" ]; then
    cargo=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
    if [ ! -x "$cargo" ]; then
      log "cargo is needed to build RustyVault: install Rust (rustup) and re-run"
      exit 1
    fi
    log "building RustyVault $RUSTYVAULT_VERSION (crates.io) into $dir; this takes a few minutes"
    "$cargo" install -q --locked rusty_vault --version "$RUSTYVAULT_VERSION" --root "$dir" >&2
    echo "$RUSTYVAULT_VERSION" >"$dir/VERSION"
  fi
  echo "$bin"
}

pg_bin() {
  local version
  version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    log "PostgreSQL is not installed: run $0 ensure-postgres first"
    exit 1
  fi
  echo "/usr/lib/postgresql/$version/bin"
}

# The postmaster's pid, then those of every process it started (backends, checkpointer, ...).
private_pg_pids() {
  local main
  main=$(as_postgres head -n 1 "$1/data/postmaster.pid" 2>/dev/null || true)
  [ -n "$main" ] || return 0
  echo "$main"
  pgrep -P "$main" || true
}

# A private cluster: its own data directory, port and socket directory, trust authentication on
# loopback only, no fsync (nothing in it is worth keeping). Everything in DIR belongs to the
# postgres user (initdb refuses to run as root), so every step runs as that user.
private_postgres() {
  local action=${1:-} dir=${2:-} port=${3:-} bin out main
  if [ -z "$action" ] || [ -z "$dir" ]; then
    log "usage: $0 private-postgres init|start|stop|freeze|thaw|destroy DIR [PORT]"
    exit 2
  fi
  bin=$(pg_bin)
  case "$action" in
    init)
      [ -n "$port" ] || { log "private-postgres init needs a PORT"; exit 2; }
      as_postgres mkdir -m 700 "$dir"
      out=$(as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 2>&1) ||
        { log "initdb failed: $out"; exit 1; }
      as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
shared_buffers = 16MB
CONF
      private_postgres start "$dir"
      as_postgres "$bin/psql" -h "$dir" -p "$port" -U postgres -qc "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'" >&2
      as_postgres "$bin/psql" -h "$dir" -p "$port" -U postgres -qc "CREATE DATABASE $PG_DB OWNER $PG_USER" >&2
      echo "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
      ;;
    start) as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 start >/dev/null ;;
    stop) as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null ;;
    freeze)
      # The postmaster first, then its children: stopped, it cannot start a backend in between.
      main=$(as_postgres head -n 1 "$dir/data/postmaster.pid")
      as_postgres kill -STOP "$main"
      for pid in $(pgrep -P "$main"); do as_postgres kill -STOP "$pid"; done
      ;;
    thaw)
      for pid in $(private_pg_pids "$dir"); do as_postgres kill -CONT "$pid" 2>/dev/null || true; done
      ;;
    destroy)
      # A frozen cluster cannot stop: thaw it first. Then remove it whatever state it was in.
      for pid in $(private_pg_pids "$dir"); do as_postgres kill -CONT "$pid" 2>/dev/null || true; done
      if as_postgres test -f "$dir/data/postmaster.pid"; then
        as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
      fi
      as_postgres rm -rf "$dir"
      ;;
    *)
      log "unknown private-postgres action $action"
      exit 2
      ;;
  esac
}

case "${1:-}" in
  ensure-postgres) ensure_postgres ;;
  ensure-moto) ensure_moto ;;
  ensure-rustyvault) ensure_rustyvault ;;
  run-with-peers)
    shift
    NEXUS_TEST_MOTO_URL=$(ensure_moto)
    NEXUS_TEST_MOTO_STRICT_URL="http://127.0.0.1:$((MOTO_PORT + 1))"
    NEXUS_TEST_RVAULT_BIN=$(ensure_rustyvault)
    export NEXUS_TEST_MOTO_URL NEXUS_TEST_MOTO_STRICT_URL NEXUS_TEST_RVAULT_BIN
    exec "$@"
    ;;
  run-with-moto)
    shift
    NEXUS_TEST_MOTO_URL=$(ensure_moto)
    NEXUS_TEST_MOTO_STRICT_URL="http://127.0.0.1:$((MOTO_PORT + 1))"
    export NEXUS_TEST_MOTO_URL NEXUS_TEST_MOTO_STRICT_URL
    log "NEXUS_TEST_MOTO_URL=$NEXUS_TEST_MOTO_URL"
    exec "$@"
    ;;
  private-postgres)
    shift
    private_postgres "$@"
    ;;
  ensure-redis) ensure_redis ;;
  ensure-chromium) ensure_chromium ;;
  ensure-wrk) ensure_wrk ;;
  ensure-h2load) ensure_h2load ;;
  run-with-postgres)
    shift
    NEXUS_TEST_DATABASE_URL=$(ensure_postgres)
    export NEXUS_TEST_DATABASE_URL
    log "NEXUS_TEST_DATABASE_URL=${NEXUS_TEST_DATABASE_URL%%@*}@…"
    exec "$@"
    ;;
  *)
    echo "usage: $0 ensure-postgres | ensure-redis | ensure-chromium | ensure-wrk | ensure-h2load | ensure-moto | ensure-rustyvault | run-with-postgres CMD... | run-with-moto CMD... | run-with-peers CMD... | private-postgres ACTION DIR [PORT]" >&2
    exit 2
    ;;
esac
