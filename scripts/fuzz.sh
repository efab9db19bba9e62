#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/*.rs) for N seconds each, one
# after the other, on one core (see docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      # default 60 s, every target
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz when it is missing. New interesting inputs go to a scratch
# corpus (fuzz/corpus-work/<target>, not committed) seeded from the kept
# corpus fuzz/corpus/<target>; crashes stop nothing but are saved in
# fuzz/artifacts/<target>/. Keep a crash as a regression with
#   cp fuzz/artifacts/<target>/crash-* fuzz/regressions/<target>/
# and refresh the kept corpus with `scripts/fuzz.sh --cmin`.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

targets_all() { (cd fuzz/fuzz_targets && ls ./*.rs | sed 's|^\./||; s|\.rs$||'); }

# Inputs the loaders understand, as starting points.
seed() {
    local t=$1 dir=fuzz/corpus-work/$1
    mkdir -p "$dir"
    cp -n fuzz/corpus/"$t"/* "$dir"/ 2>/dev/null || true
    cp -n fuzz/regressions/"$t"/* "$dir"/ 2>/dev/null || true
    case $t in
        config) cp -n config.example.toml "$dir"/ ;;
        theme) for f in themes/*.toml tests/fixtures/themes/*.toml; do cp -n "$f" "$dir"/"$(basename "$f")"; done ;;
        datamap) cp -n datamap/pluto.toml "$dir"/; for f in tests/fixtures/datamap/*.toml; do cp -n "$f" "$dir"/; done ;;
    esac
}

if [[ ${1:-} == --cmin ]]; then
    shift
    for t in ${@:-$(targets_all)}; do
        seed "$t"
        # cmin keeps the smallest set of inputs with the same coverage, in place.
        (cd fuzz && cargo +nightly fuzz cmin -s none "$t" corpus-work/"$t" >/dev/null 2>&1)
        rm -rf fuzz/corpus/"$t" && mkdir -p fuzz/corpus/"$t"
        cp fuzz/corpus-work/"$t"/* fuzz/corpus/"$t"/
        echo "$t: $(ls fuzz/corpus/"$t" | wc -l) inputs kept in fuzz/corpus/$t"
    done
    exit 0
fi

secs=${1:-60}
[[ $# -gt 0 ]] && shift
targets=${*:-$(targets_all)}

(cd fuzz && cargo +nightly fuzz build -s none)
status=0
for t in $targets; do
    seed "$t"
    mkdir -p fuzz/artifacts/"$t"
    echo "== $t: ${secs}s"
    # -fork=1 keeps going after a crash (each one lands in artifacts/).
    (cd fuzz && cargo +nightly fuzz run -s none "$t" corpus-work/"$t" -- \
        -max_total_time="$secs" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
        -ignore_ooms=1 -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -print_final_stats=1 2>&1 | tail -n 20) || true
    if compgen -G "fuzz/artifacts/$t/*" >/dev/null; then
        echo "!! $t: findings in fuzz/artifacts/$t/:"; ls fuzz/artifacts/"$t"/
        status=1
    fi
done
exit $status
