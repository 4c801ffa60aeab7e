#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine (as root):
#   static checks (fmt, lint, type check), tier 1 (unit + golden, no root),
#   tier 2 (network namespaces, real bridge/nft/dnsmasq/QEMU),
#   tier 3 (a real systemd booted with systemd-nspawn).
# Installs what it needs first (packaging/setup.sh). The last line is
# "N passed, N failed".
#
# Usage (as root): bash tests/run.sh [--tier static|1|2|3]... [--suite bookworm|trixie]...
#                                   [--only SCENARIO]...   (default: every tier, suite, scenario)
#                 bash tests/run.sh --list                  (the tier-3 scenario names)
# --suite and --only choose tier 3's Debian releases and scenarios (tests/system/scenarios/).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RESULTS="$ROOT/build/test-results"
mkdir -p "$RESULTS"

tiers=()
suites=()
only=()
list=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tier|--suite|--only)
      [ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --tier) tiers+=("$2") ;;
        --suite)
          case "$2" in bookworm|trixie) suites+=("$2") ;;
            *) echo "run.sh: unknown suite $2 (bookworm or trixie)" >&2; exit 2 ;;
          esac ;;
        --only) only+=("$2") ;;
      esac
      shift 2 ;;
    --list) list=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ ${#tiers[@]} -gt 0 ] || tiers=(static 1 2 3)
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)

if ! env_lines=$(bash packaging/setup.sh --env); then
  echo "run.sh: set-up failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
eval "$env_lines"

if [ "$list" = 1 ]; then
  exec deno run --quiet --allow-read --allow-env tests/system/list.ts
fi
if [ ${#only[@]} -gt 0 ]; then
  # An unknown name is an error before anything is built.
  known=$(deno run --quiet --allow-read --allow-env tests/system/list.ts)
  for name in "${only[@]}"; do
    grep -qx -- "$name" <<<"$known" ||
      { echo "run.sh: no scenario $name; there are: $(echo $known)" >&2; exit 2; }
  done
fi

passed=0
failed=0
reports=()

static_check() {
  local name=$1; shift
  local log="$RESULTS/static-${name// /_}.log"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1)); echo "PASS $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; tail -n 40 "$log"
  fi
}

# Counts test cases (steps included) in a JUnit file deno wrote.
count_junit() {
  local xml=$1 cases failures
  cases=$(grep -c '<testcase ' "$xml" 2>/dev/null || true)
  failures=$(grep -c '<failure' "$xml" 2>/dev/null || true)
  passed=$((passed + cases - failures))
  failed=$((failed + failures))
}

deno_tier() {
  local tier=$1; shift
  local xml="$RESULTS/tier$tier.xml"
  rm -f "$xml"
  echo "== tier $tier: $*"
  deno test --allow-all --no-prompt --unstable-net --junit-path="$xml" "$@"
  local rc=$?
  if [ -s "$xml" ]; then
    reports+=("$xml")
    count_junit "$xml"
    # A crash after the report (or a failed load) still counts as a failure.
    if [ $rc -ne 0 ] && ! grep -q '<failure' "$xml"; then failed=$((failed + 1)); fi
  else
    failed=$((failed + 1)); echo "FAIL tier $tier produced no report (exit $rc)"
  fi
}

# Tier 3: the packages and guests built once, then every Debian release's scenarios in two
# lanes at once (each scenario boots its own bed; a worker per lane).
system_tier() {
  local dir json
  dir=$(mktemp -d /tmp/aosu-artifacts-XXXXXX)
  if ! json=$(deno run --allow-all --no-prompt tests/system/prebuild.ts "$dir"); then
    failed=$((failed + 1)); echo "FAIL tier 3: building the packages and guests failed"
    rm -rf "$dir"
    return
  fi
  # Two lanes, each its share of every release's scenarios (tests/system/scenario.ts).
  local IFS=,
  AOS_UNIT_TEST_ARTIFACTS=$json AOS_UNIT_SCENARIOS="${only[*]:-}" AOS_UNIT_SUITES="${suites[*]}" \
    DENO_JOBS=2 deno_tier 3 --parallel tests/system/lane1_test.ts tests/system/lane2_test.ts
  rm -rf "$dir"
}

needs_root() {
  if [ "$(id -u)" != 0 ]; then
    failed=$((failed + 1)); echo "FAIL tier $1 needs root (run as root: bash tests/run.sh)"
    return 1
  fi
}

# Busy and total CPU time so far, from /proc/stat's "cpu" line (idle and iowait are not busy):
# how much of the machine a tier used tells whether it waits or computes.
cpu_ticks() {
  local _cpu user nice system idle iowait rest
  read -r _cpu user nice system idle iowait rest </proc/stat
  local irq softirq steal
  read -r irq softirq steal _ <<<"$rest"
  local busy=$((user + nice + system + irq + softirq + steal))
  echo "$busy $((busy + idle + iowait))"
}

tier1() { deno_tier 1 src/ tests/unit/ tests/golden/ tests/config/; }
# Two files at a time: one file's guests leave the other core idle (47% busy alone).
tier2() { needs_root 2 && DENO_JOBS=2 deno_tier 2 --parallel tests/net/; }

# Runs one tier in the background: its output to tierN.log, its counts to tierN.sum.
tier_in_background() { # TIER
  (
    passed=0; failed=0; reports=(); started=$SECONDS
    "tier$1"
    echo "$passed $failed $((SECONDS - started)) ${reports[*]}" >"$RESULTS/tier$1.sum"
  ) >"$RESULTS/tier$1.log" 2>&1 &
}

# Tiers 1 and 2 at once: alone, tier 1 keeps the machine about 80% busy and tier 2 under 75%;
# together they take little more than the longer one. Their output follows, in order.
tiers_1_and_2() {
  local tier p f t r
  rm -f "$RESULTS/tier1.sum" "$RESULTS/tier2.sum"
  tier_in_background 1
  tier_in_background 2
  wait
  for tier in 1 2; do
    cat "$RESULTS/tier$tier.log"
    if read -r p f t r <"$RESULTS/tier$tier.sum"; then
      passed=$((passed + p)); failed=$((failed + f))
      [ -n "$r" ] && reports+=($r)
      times+=("$(printf '%5d s  tier %s (beside tier %s)' "$t" "$tier" $((3 - tier)))")
    else
      failed=$((failed + 1)); echo "FAIL tier $tier ended without its counts"
    fi
  done
}

times=()
both_1_and_2=0
[[ " ${tiers[*]} " == *" 1 "* && " ${tiers[*]} " == *" 2 "* ]] && both_1_and_2=1
for tier in "${tiers[@]}"; do
  tier_started=$SECONDS
  read -r busy_before total_before < <(cpu_ticks)
  if [ "$both_1_and_2" = 1 ] && [[ $tier == 1 || $tier == 2 ]]; then
    [ "$tier" = 2 ] && continue
    tiers_1_and_2
    read -r busy_after total_after < <(cpu_ticks)
    busy_pct=$(((busy_after - busy_before) * 100 / (total_after - total_before > 0 ? total_after - total_before : 1)))
    times+=("$(printf '%5d s  tiers 1 and 2 (CPU %d%% busy)' $((SECONDS - tier_started)) "$busy_pct")")
    continue
  fi
  case "$tier" in
    static)
      static_check "deno fmt --check" deno fmt --check
      static_check "deno lint" deno lint
      static_check "deno check" deno check main.ts src/ tests/ packaging/
      ;;
    1) tier1 ;;
    2) tier2 ;;
    3) needs_root 3 && system_tier ;;
    *) echo "run.sh: unknown tier $tier" >&2; exit 2 ;;
  esac
  read -r busy_after total_after < <(cpu_ticks)
  busy_pct=$(((busy_after - busy_before) * 100 / (total_after - total_before > 0 ? total_after - total_before : 1)))
  times+=("$(printf '%5d s  tier %s (CPU %d%% busy)' $((SECONDS - tier_started)) "$tier" "$busy_pct")")
done

echo "== time per tier"
printf '%s\n' "${times[@]}"
if [ -s "$RESULTS/tier3.xml" ] && [[ " ${tiers[*]} " == *" 3 "* ]]; then
  echo "== time per tier-3 scenario"
  deno run --quiet --allow-read tests/lib/junit_times.ts "$RESULTS/tier3.xml"
fi

if [ "$failed" != 0 ] && [ ${#reports[@]} -gt 0 ]; then
  echo "== why each failed test failed"
  deno run --allow-read tests/lib/junit_failures.ts "${reports[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
