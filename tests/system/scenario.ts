/**
 * Tier 3's runner: one Deno test per scenario (tests/system/scenarios/) and release, each
 * in a bed of its own, set up to the scenario's start. tests/run.sh runs two lanes at once
 * (lane1_test.ts, lane2_test.ts): every chosen (release, scenario) goes to one of them,
 * longest first onto the lane with the least work so far, so that both end together.
 * `AOS_UNIT_SCENARIOS=a,b` (tests/run.sh --only) runs only those scenarios,
 * `AOS_UNIT_SUITES=bookworm` (--suite) only those releases.
 */

import { SCENARIOS } from "./scenarios/mod.ts";
import { openSystemBed, type Scenario, type Suite } from "./system_bed.ts";

/** The variable tests/run.sh --only sets: scenario names, comma-separated. */
export const SCENARIOS_ENV = "AOS_UNIT_SCENARIOS";
/** The variable tests/run.sh --suite sets: releases, comma-separated (none: both). */
export const SUITES_ENV = "AOS_UNIT_SUITES";
/**
 * Lanes at once. (A third slowed the stock images' SMP guests under TCG past
 * READY_TIMEOUT_SEC: 4 vCPUs spinning at boot on 2 cores shared by 12 busy threads.)
 */
export const LANES = 2;

const SUITES: readonly Suite[] = ["bookworm", "trixie"];

/**
 * Each run's seconds in a clean-clone CI (tests/run.sh prints them at the end; the CI of
 * 83bd8eb, and the scenarios changed since): only their order and sums matter, to balance the lanes. A scenario not here
 * counts as DEFAULT_SECONDS.
 */
const SECONDS: Readonly<Record<string, number>> = {
  "bookworm stock": 145,
  "trixie stock": 125,
  "bookworm units": 111,
  "bookworm lifecycle": 108,
  "bookworm faults": 100,
  "trixie units": 99,
  "trixie faults": 92,
  "bookworm snapshots": 88,
  "trixie lifecycle": 88,
  "trixie snapshots": 88,
  "bookworm attacks": 85,
  "trixie attacks": 77,
  "bookworm start-failures": 37,
  "trixie start-failures": 35,
  "bookworm arm": 23,
  "bookworm upgrade": 23,
  "trixie arm": 20,
  "trixie upgrade": 16,
};
const DEFAULT_SECONDS = 90;

/** One scenario on one release; `index` is the scenario's place in SCENARIOS (bed names). */
export interface Run {
  suite: Suite;
  scenario: Pick<Scenario, "name">;
  index: number;
}

/** The scenarios to run: all, or those named (an unknown name is an error, not nothing). */
export function chosenScenarios(only = Deno.env.get(SCENARIOS_ENV)): readonly Scenario[] {
  const names = (only ?? "").split(",").map((n) => n.trim()).filter(Boolean);
  if (names.length === 0) return SCENARIOS;
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) {
    throw new Error(
      `no scenario ${unknown.join(", ")}; there are: ${SCENARIOS.map((s) => s.name).join(", ")}`,
    );
  }
  return SCENARIOS.filter((s) => names.includes(s.name));
}

/** The releases to run: both, or those named. */
export function chosenSuites(only = Deno.env.get(SUITES_ENV)): readonly Suite[] {
  const names = (only ?? "").split(",").map((n) => n.trim()).filter(Boolean);
  const unknown = names.filter((n) => !SUITES.includes(n as Suite));
  if (unknown.length > 0) throw new Error(`no release ${unknown.join(", ")}: ${SUITES.join(", ")}`);
  return names.length === 0 ? SUITES : SUITES.filter((s) => names.includes(s));
}

/** What a run is expected to take (SECONDS), for the split. */
export function expectedSeconds(run: Run, table = SECONDS): number {
  return table[`${run.suite} ${run.scenario.name}`] ?? DEFAULT_SECONDS;
}

/**
 * Pure: the runs split over `lanes` lanes, longest first, each onto the lane with the least
 * expected work so far (ties: the lower lane). Each lane keeps that order.
 */
export function splitLanes<R extends Run>(
  runs: readonly R[],
  lanes: number,
  seconds: (run: R) => number,
): R[][] {
  const out: R[][] = Array.from({ length: lanes }, () => []);
  const load = new Array<number>(lanes).fill(0);
  const order = [...runs].sort((a, b) =>
    seconds(b) - seconds(a) || a.suite.localeCompare(b.suite) || a.index - b.index
  );
  for (const run of order) {
    const lane = load.indexOf(Math.min(...load));
    out[lane]!.push(run);
    load[lane]! += seconds(run);
  }
  return out;
}

/** Registers one test per run of lane `lane` (0-based). */
export function registerLane(lane: number): void {
  const scenarios = chosenScenarios();
  const runs = chosenSuites().flatMap((suite) =>
    scenarios.map((scenario) => ({ suite, scenario, index: SCENARIOS.indexOf(scenario) }))
  );
  for (const { suite, scenario, index } of splitLanes(runs, LANES, expectedSeconds)[lane]!) {
    Deno.test({
      name: `${suite} ${scenario.name}: ${scenario.summary}`,
      sanitizeResources: false,
      sanitizeOps: false,
    }, async (t) => {
      const c = await openSystemBed(suite, scenario.name, index);
      try {
        const ok = await t.step(
          `set-up: a ${suite} bed, ${scenario.start}`,
          () => c.setUp(scenario.start),
        );
        if (!ok) throw new Error("set-up failed; the scenario cannot run");
        await scenario.run(t, c);
      } finally {
        await c.close();
      }
    });
  }
}
