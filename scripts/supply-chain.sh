#!/usr/bin/env bash
# Supply-chain checks: cargo-deny (licences, bans, sources) and a CycloneDX
# SBOM. Installs cargo-deny and cargo-cyclonedx when missing (~3 min each the
# first time). Not part of .ci/run: see docs/supply-chain.md for why.
#
#   scripts/supply-chain.sh            # checks + SBOM in target/sbom/
#   ADVISORIES=1 scripts/supply-chain.sh   # also RustSec advisories (needs the internet)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

need() { # need BINARY CRATE
  if ! command -v "$1" >/dev/null 2>&1; then
    log "installing $2"
    cargo install --locked "$2"
  fi
}
need cargo-deny cargo-deny
need cargo-cyclonedx cargo-cyclonedx

checks=(bans licenses sources)
if [ "${ADVISORIES:-0}" = 1 ]; then
  checks+=(advisories)
fi
log "cargo deny check ${checks[*]}"
cargo deny check "${checks[@]}"

log "CycloneDX SBOM"
out=target/sbom
mkdir -p "$out"
# One SBOM for the charon package, JSON, Linux target only.
cargo cyclonedx --format json --target x86_64-unknown-linux-gnu --override-filename charon.cdx >/dev/null
mv -f charon.cdx.json "$out/charon.cdx.json"
components=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("components", [])))' "$out/charon.cdx.json" 2>/dev/null || echo "?")
echo "wrote $out/charon.cdx.json ($components components)"
