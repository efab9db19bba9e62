#!/usr/bin/env python3
"""The coverage gate of `.ci/run`: reads `cargo llvm-cov report --json
--summary-only` on stdin (or from the file given), prints line coverage
overall and per gated module with each module's weakest files, and exits 1
when a figure is below its floor.

Floors (issue 9): 80 % of lines overall; 95 % for the auth, audit and
erasure modules. Files counted are the crate's own `src/` (tests, examples
and benches are not measured).
"""

import json
import os
import sys

OVERALL_FLOOR = 80.0
# module -> (path prefixes under the repository root, floor in %)
MODULES = {
    "auth": (["src/core/auth.rs", "src/core/mfa/"], 95.0),
    "audit": (["src/core/audit/"], 95.0),
    "erasure": (["src/core/erasure/"], 95.0),
}


def relative(path, root):
    path = os.path.normpath(path)
    return os.path.relpath(path, root) if os.path.isabs(path) else path


def main():
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    source = open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin
    report = json.load(source)
    files = {}
    for data in report["data"]:
        for f in data["files"]:
            name = relative(f["filename"], root)
            if not name.startswith("src/"):
                continue
            lines = f["summary"]["lines"]
            files[name] = (lines["covered"], lines["count"])

    def pct(covered, count):
        return 100.0 * covered / count if count else 100.0

    failed = []
    covered = sum(c for c, _ in files.values())
    count = sum(n for _, n in files.values())
    overall = pct(covered, count)
    print(f"line coverage, overall: {overall:.1f} % ({covered}/{count} lines, floor {OVERALL_FLOOR:.0f} %)")
    if overall < OVERALL_FLOOR:
        failed.append(f"overall {overall:.1f} % < {OVERALL_FLOOR:.0f} %")
    for module, (prefixes, floor) in MODULES.items():
        mine = {n: v for n, v in files.items() if any(n.startswith(p) for p in prefixes)}
        if not mine:
            failed.append(f"{module}: no files measured under {prefixes}")
            continue
        c = sum(v[0] for v in mine.values())
        n = sum(v[1] for v in mine.values())
        p = pct(c, n)
        print(f"line coverage, {module}: {p:.1f} % ({c}/{n} lines, floor {floor:.0f} %)")
        for name, (fc, fn) in sorted(mine.items(), key=lambda kv: pct(*kv[1])):
            print(f"    {pct(fc, fn):5.1f} %  {fn - fc:4d} lines not run  {name}")
        if p < floor:
            failed.append(f"{module} {p:.1f} % < {floor:.0f} %")
    if failed:
        print("coverage gate FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    print("coverage gate passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
