#!/usr/bin/env bash
# Benchmarks (not tests): print numbers. Needs root.
#   sudo bash tests/bench/run.sh [network|system]...   (default: both)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
eval "$(bash packaging/setup.sh --env)"
which=("$@")
[ ${#which[@]} -gt 0 ] || which=(network system)
for w in "${which[@]}"; do
	echo "== $w"
	deno run --allow-all --unstable-net "tests/bench/${w}_bench.ts"
done
