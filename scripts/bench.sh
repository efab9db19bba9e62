#!/usr/bin/env bash
# Every benchmark of the project, in one run, on freshly seeded data; then
# the table (figure, target, measured, baseline, met) at the top of
# BENCHMARKS.md. The detailed write-ups below the table are left alone.
#
#   scripts/bench.sh            # full scale: 100,000 tenants, ~10 M rows (~10 min on a quiet machine)
#   scripts/bench.sh --quick    # a small run that checks the runner itself (~3 min)
#   scripts/bench.sh --tenants 30000
#
# Runs on a private PostgreSQL cluster it starts (fsync on, as production;
# 127.0.0.1, a free port) and removes on exit, or on the server in
# $BENCH_SERVER_URL when set. Needs the PostgreSQL server binaries (the
# README's first line installs them). Prints each benchmark's own report as
# it goes; a benchmark that misses its target is a "no" in the table, not a
# failure of the script.
set -euo pipefail
cd "$(dirname "$0")/.."

TENANTS=100000
SEED=7
SEARCH_SAMPLES=300
RECORDS_SAMPLES=100
RECORDS_DIVISOR=1
AUDIT_CHAIN=1000000
AUDIT_APPENDS=20000
RESTORE_ROUNDS=2
ERASURE_RECEIPTS=1000
ERASURE_TRIPS=500
ERASURE_POINTS=2000000
LOAD_SESSIONS=50
LOAD_SECS=180
QUICK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick)
      QUICK=" (quick run: reduced scale, for checking the runner, not the targets)"
      TENANTS=2000 SEARCH_SAMPLES=40 RECORDS_SAMPLES=10 RECORDS_DIVISOR=50
      AUDIT_CHAIN=40000 AUDIT_APPENDS=1000 RESTORE_ROUNDS=1
      ERASURE_RECEIPTS=50 ERASURE_TRIPS=20 ERASURE_POINTS=20000 LOAD_SECS=15
      ;;
    --tenants) TENANTS="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '\n== %s\n' "$*"; }

log "building (release)"
cargo build --release --quiet --bin charon --examples
BIN=target/release/charon

WORK=$(mktemp -d /tmp/charon-bench.XXXXXX)
chmod 755 "$WORK"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
export CHARON_BENCH_RESULTS="$RESULTS"
cleanup() { :; }
trap 'cleanup; rm -rf "$WORK"' EXIT

if [ -n "${BENCH_SERVER_URL:-}" ]; then
  SERVER="$BENCH_SERVER_URL"
  WHERE="server given in BENCH_SERVER_URL"
else
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$PGBIN/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
  RUN_AS=()
  if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK"; RUN_AS=(runuser -u postgres --); fi
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55439)
  log "starting a private PostgreSQL ($PGBIN) on 127.0.0.1:$PORT, fsync on"
  "${RUN_AS[@]}" "$PGBIN/initdb" -D "$WORK/data" -A trust -U postgres >/dev/null
  "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $WORK -c max_connections=200" start >/dev/null
  cleanup() { "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true; }
  SERVER="postgres://postgres@127.0.0.1:$PORT/postgres"
  WHERE="private cluster, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync on"
fi
PLUTO="${SERVER%/*}/charon_bench_pluto"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')

log "seeding $TENANTS tenants"
psql "$SERVER" -qc 'DROP DATABASE IF EXISTS charon_bench_pluto' -c 'CREATE DATABASE charon_bench_pluto' >/dev/null
t0=$(date +%s.%N)
"$BIN" seed --tenants "$TENANTS" --seed "$SEED" --database-url "$PLUTO"
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
ROWS=$(psql "$PLUTO" -Atc "SELECT sum(n_live_tup) FROM pg_stat_user_tables")
"$BIN" bench record --figure "seeding: $TENANTS tenants, $ROWS rows (COPY, indexes, ANALYZE)" \
  --target "minutes at 100,000 tenants / 10 M rows (< 10 min)" --measured "$secs s" \
  --met "$(awk -v s="$secs" 'BEGIN { print (s < 600) ? "true" : "false" }')"

log "tenant search"
"$BIN" bench search --tenants "$TENANTS" --seed "$SEED" --samples "$SEARCH_SAMPLES" --pluto-url "$PLUTO"

log "records"
CHARON_BENCH_DATABASE_URL="$SERVER" CHARON_BENCH_RECORDS_DIVISOR="$RECORDS_DIVISOR" \
  target/release/examples/bench_records "$RECORDS_SAMPLES"

log "audit log"
CHARON_TEST_DATABASE_URL="$SERVER" target/release/examples/bench_audit "$AUDIT_CHAIN" --appends "$AUDIT_APPENDS"

log "restore test"
"$BIN" bench restore --tenants "$TENANTS" --seed "$SEED" --jobs 2 --rounds "$RESTORE_ROUNDS" --pluto-url "$PLUTO"

log "load: $LOAD_SESSIONS concurrent sessions"
DATABASE_URL="$SERVER" "$BIN" bench load --sessions "$LOAD_SESSIONS" --secs "$LOAD_SECS" --tenants 2000 --seed "$SEED" || true

# Last: it adds (and erases) a subject in the seeded database.
log "erasure"
"$BIN" bench erasure --pluto-url "$PLUTO" --receipts "$ERASURE_RECEIPTS" --trips "$ERASURE_TRIPS" --points "$ERASURE_POINTS"

LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
ABOUT="Run of $STARTED by \`scripts/bench.sh\`$QUICK at commit $COMMIT: $TENANTS tenants ($ROWS rows), release build, $WHERE, $(nproc) cores, load average $LOAD_BEFORE at the start and $LOAD_AFTER at the end. Each figure's own section below says how it is measured."
"$BIN" bench table --results "$RESULTS" --write BENCHMARKS.md --about "$ABOUT"
