#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of the security core: the audit log, the
# authenticator with its MFA factors, and erasure. Slow (every mutant is a
# rebuild of the crate and a run of that module's tests), so it is NOT part of
# .ci/run: run it by hand before a release or after changing those modules.
# See docs/mutants.md for the last results and the surviving mutants.
#
#   scripts/mutants.sh                      # audit, auth, erasure (in that order)
#   scripts/mutants.sh audit auth           # only these modules
#   MUTANTS_LIST=1 scripts/mutants.sh       # only list the mutants and count them
#   MUTANTS_ARGS='--re verify' scripts/mutants.sh audit   # extra cargo-mutants options
#   (with MUTANTS_ARGS=--iterate the score printed covers only the mutants
#   tested this time; do not combine --iterate with MUTANTS_SAMPLE, which
#   would re-shard the remaining mutants into a new sample)
#
# Modules and the tests run against their mutants (narrow on purpose):
#   audit    src/core/audit/**                   --lib, tests/audit*.rs
#   auth     src/core/auth.rs, src/core/mfa/**   --lib, tests/auth*.rs, tests/mfa*.rs
#   erasure  src/core/erasure/**                 --lib, tests/erasure*.rs (not erasure_actions)
#
# The score of a module is caught / (caught + missed); mutants that time out
# or do not build (unviable) are reported separately and not counted. The
# script fails when any module's score is at or below MUTANTS_MIN (70).
#
# Environment:
#   MUTANTS_JOBS      parallel mutants when copying (default 1: each one builds
#                     the crate); in place it is always one
#   MUTANTS_MIN       the failing threshold in percent (default 70)
#   MUTANTS_IN_PLACE  1 (default): mutate this tree and reuse its target/ (no
#                     copy of the tree, no second full build); the tree must
#                     not be edited while it runs. 0: let cargo-mutants copy it.
#   MUTANTS_OUT       where results go (default target/mutants/<module>/)
#   MUTANTS_SAMPLE    N: test only every Nth mutant of each module (round-robin
#                     shard 0/N), for an estimate of the score when a full run
#                     does not fit in the time there is. K/N: shard K of N
#                     instead; shards 0/N .. N-1/N together are a full run
#                     that can be spread over several sittings
#   MUTANTS_BASELINE  run (default): first run the tests on the unmutated tree;
#                     skip: assume they pass (after a run that checked it)
#   MUTANTS_TOOL      nextest (default when cargo-nextest is installed) or cargo:
#                     nextest stops a mutant's test run at its first failing
#                     test, where cargo test finishes the whole test binary
#   MUTANTS_TIMEOUT, MUTANTS_BUILD_TIMEOUT  seconds per test run / per build
#   CHARON_TEST_DATABASE_URL  the PostgreSQL the tests use (as for cargo test)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

if ! command -v cargo-mutants >/dev/null 2>&1; then
  log "installing cargo-mutants"
  cargo install --locked cargo-mutants
fi

export CHARON_TEST_DATABASE_URL="${CHARON_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# No debug info: the test binaries link several times faster, and every
# mutant relinks them. Results do not depend on it.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-0}"

JOBS="${MUTANTS_JOBS:-1}"
MIN="${MUTANTS_MIN:-70}"
IN_PLACE="${MUTANTS_IN_PLACE:-1}"
OUT_ROOT="${MUTANTS_OUT:-target/mutants}"
read -r -a EXTRA <<<"${MUTANTS_ARGS:-}"

# module -> cargo-mutants file selection and the cargo test arguments.
files_of() {
  case "$1" in
    audit) echo "--file src/core/audit/**" ;;
    auth) echo "--file src/core/auth.rs --file src/core/mfa/**" ;;
    erasure) echo "--file src/core/erasure/**" ;;
    *) echo "unknown module $1 (audit, auth, erasure)" >&2; return 1 ;;
  esac
}
tests_of() {
  case "$1" in
    audit) echo "--lib --test=audit --test=audit_verify_failures" ;;
    auth) echo "--lib --test=auth --test=mfa --test=auth_refusals --test=mfa_edge_cases --test=mfa_agent_env" ;;
    erasure) echo "--lib --test=erasure --test=erasure_queue --test=erasure_store_refusals --test=erasure_execute_refusals --test=erasure_redact_terms" ;;
  esac
}

modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(audit auth erasure)

common=(--no-shuffle --baseline "${MUTANTS_BASELINE:-run}"
  --timeout "${MUTANTS_TIMEOUT:-300}" --build-timeout "${MUTANTS_BUILD_TIMEOUT:-900}")
TOOL="${MUTANTS_TOOL:-}"
if [ -z "$TOOL" ]; then
  if cargo nextest --version >/dev/null 2>&1; then TOOL=nextest; else TOOL=cargo; fi
fi
common+=(--test-tool "$TOOL")
# In place there is one tree, so one mutant at a time (cargo-mutants refuses --jobs).
if [ "$IN_PLACE" = 1 ]; then common+=(--in-place); else common+=(--jobs "$JOBS"); fi
SHARD=""
if [ -n "${MUTANTS_SAMPLE:-}" ]; then
  case "$MUTANTS_SAMPLE" in
    */*) SHARD="$MUTANTS_SAMPLE" ;;
    *) SHARD="0/$MUTANTS_SAMPLE" ;;
  esac
  common+=(--shard "$SHARD" --sharding round-robin)
fi

count() { # count FILE: lines in a cargo-mutants result list (0 if absent)
  if [ -f "$1" ]; then grep -c . "$1" || true; else echo 0; fi
}

status=0
summary=()
for m in "${modules[@]}"; do
  read -r -a sel <<<"$(files_of "$m")"
  read -r -a targets <<<"$(tests_of "$m")"
  if [ "${MUTANTS_LIST:-0}" = 1 ]; then
    n=$(cargo mutants --list "${sel[@]}" "${EXTRA[@]}" | grep -c . || true)
    if [ -n "${MUTANTS_SAMPLE:-}" ]; then
      n="$n (sampled: $(cargo mutants --list "${sel[@]}" --shard "$SHARD" --sharding round-robin "${EXTRA[@]}" | grep -c . || true))"
    fi
    summary+=("$m: $n mutants")
    continue
  fi
  out="$OUT_ROOT/$m"
  mkdir -p "$out"
  log "$m: cargo mutants ${sel[*]}, tests: ${targets[*]}"
  # Exit codes: 0 all caught, 2 some missed, 3 some timed out; anything else
  # (1 usage, 4 the unmutated tree fails its tests) is an error.
  rc=0
  # The targets go to every cargo call (--cargo-arg), not only to `cargo test`
  # after `--`: otherwise each mutant's build phase (`cargo test --no-run`)
  # would build and link all of tests/*.rs.
  cargs=()
  for t in "${targets[@]}"; do cargs+=("--cargo-arg=$t"); done
  cargo mutants "${common[@]}" "${sel[@]}" --output "$out" "${cargs[@]}" "${EXTRA[@]}" || rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 2 ] && [ "$rc" != 3 ]; then
    echo "cargo mutants failed for $m (exit $rc)" >&2
    status=1
    summary+=("$m: error (exit $rc)")
    continue
  fi
  dir="$out/mutants.out"
  caught=$(count "$dir/caught.txt")
  missed=$(count "$dir/missed.txt")
  timeout=$(count "$dir/timeout.txt")
  unviable=$(count "$dir/unviable.txt")
  tested=$((caught + missed))
  if [ "$tested" = 0 ]; then
    summary+=("$m: no viable mutant tested (timeouts $timeout, unviable $unviable)")
    status=1
    continue
  fi
  # Percent with one decimal, in integer arithmetic.
  permille=$((caught * 1000 / tested))
  score="$((permille / 10)).$((permille % 10))%"
  line="$m: score $score (caught $caught, missed $missed; timeouts $timeout, unviable $unviable)"
  if [ "$permille" -le $((MIN * 10)) ]; then
    line="$line: AT OR BELOW ${MIN}%"
    status=1
  fi
  summary+=("$line")
  if [ "$missed" != 0 ]; then
    echo "missed in $m:"
    sed 's/^/  /' "$dir/missed.txt"
  fi
done

log "mutation scores"
printf '%s\n' "${summary[@]}"
exit "$status"
