#!/usr/bin/env bash
# Benchmarks (not tests): print numbers. Needs root.
#   bash tests/bench/run.sh [network|system|footprint|image|snapshot|memsnap|soak|lease|units]...   (default: network system image snapshot)
#   soak runs BENCH_SOAK_MIN minutes (default 30); system and footprint run on BENCH_SUITES
#   (bookworm,trixie); footprint is aos-unit(8) FOOTPRINT; memsnap is save --memory and
#   restore on the installed package (aos-unit(8) SNAPSHOTS)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
eval "$(bash packaging/setup.sh --env)"
which=("$@")
[ ${#which[@]} -gt 0 ] || which=(network system image snapshot)
for w in "${which[@]}"; do
	echo "== $w"
	deno run --allow-all --unstable-net "tests/bench/${w}_bench.ts"
done
