/**
 * Bringing systemd's units in line with a plan without touching what already
 * matches it: a running unit created from the same plan (same fingerprint)
 * is adopted as it is, a running unit from another plan is stopped (its
 * ExecStop= powers the guest down first) and created anew, a missing one is
 * created, and units the plan no longer has are stopped.
 */

import type { Logger } from "../log.ts";
import type { TransientUnit } from "../plan/types.ts";
import { PLAN_HASH_ENV } from "../plan/units.ts";
import type { Systemd } from "./systemd1.ts";

export type Outcome = "adopted" | "started" | "replaced";

const RUNNING = new Set(["active", "activating", "reloading"]);

/**
 * Makes one unit match the plan.
 * @returns what was done
 * @throws {RuntimeError} when the unit cannot be started
 */
export async function reconcileUnit(
  systemd: Systemd,
  unit: TransientUnit,
  log: Logger,
  /** Why a running unit must be replaced even with the same plan (its tap was made anew). */
  replace?: string,
): Promise<Outcome> {
  const state = await systemd.unitState(unit.name);
  let outcome: Outcome = "started";
  if (state && RUNNING.has(state.activeState)) {
    const hash = await systemd.environmentValue(unit.name, PLAN_HASH_ENV);
    if (!replace && fits(unit, hash)) return "adopted";
    log.info(
      replace
        ? `${unit.name} runs, but ${replace}: replacing it`
        : `${unit.name} runs from another plan (${hash ?? "none"} -> ${unit.hash}): replacing it`,
    );
    outcome = "replaced";
  }
  if (state) await systemd.clearOld(unit.name);
  const result = await systemd.startTransient(unit);
  if (result !== "done") {
    throw Object.assign(new Error(`Cannot start ${unit.name}: job ${result}`), { unit: unit.name });
  }
  return outcome;
}

function fits(unit: TransientUnit, hash: string | undefined): boolean {
  return hash === unit.hash || (!!hash && !!unit.accepts?.includes(hash));
}

/** Whether reconcileUnit() would adopt the unit as it runs (absent any reason to replace it). */
export async function wouldAdopt(systemd: Systemd, unit: TransientUnit): Promise<boolean> {
  const state = await systemd.unitState(unit.name);
  if (!state || !RUNNING.has(state.activeState)) return false;
  return fits(unit, await systemd.environmentValue(unit.name, PLAN_HASH_ENV));
}

/**
 * Stops loaded units matching `pattern` that the plan does not have (nodes
 * removed from the configuration); their ExecStop= powers them down.
 * @returns the units stopped
 */
export async function stopStale(
  systemd: Systemd,
  pattern: string,
  keep: ReadonlySet<string>,
  log: Logger,
  owns: (unit: string) => boolean = () => true,
): Promise<string[]> {
  const stale = (await systemd.listUnits([pattern]))
    .filter((u) => owns(u.name) && !keep.has(u.name));
  await Promise.all(stale.map(async (u) => {
    log.info(`${u.name} is no longer in the configuration: stopping it`);
    await systemd.clearOld(u.name);
  }));
  return stale.map((u) => u.name);
}
