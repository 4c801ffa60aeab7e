/**
 * Tier 3's runner: one Deno test per scenario (tests/system/scenarios/) and release, each
 * in a bed of its own, set up to the scenario's start. `AOS_UNIT_SCENARIOS=a,b` (tests/run.sh
 * --only) runs only those.
 */

import { SCENARIOS } from "./scenarios/mod.ts";
import { openSystemBed, type Scenario, type Suite } from "./system_bed.ts";

/** The variable tests/run.sh --only sets: scenario names, comma-separated. */
export const SCENARIOS_ENV = "AOS_UNIT_SCENARIOS";

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

/** Registers one test per chosen scenario on this release. */
export function registerScenarios(suite: Suite): void {
  chosenScenarios().forEach((scenario, index) => {
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
  });
}
