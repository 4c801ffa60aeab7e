/** Reads the configuration from disk and plans it: the common first step of most subcommands. */

import type { Config } from "../base/config_types.ts";
import type { Diagnostic } from "../base/errors.ts";
import { makePlan } from "../plan/mod.ts";
import type { HostFacts, Paths, Plan } from "../plan/types.ts";
import { loadConfigFiles } from "./config_files.ts";
import { type FactOverrides, gatherFacts } from "./facts.ts";

export interface Loaded {
  config: Config;
  facts: HostFacts;
  plan: Plan;
  /** Config and plan warnings together. */
  warnings: Diagnostic[];
}

/** Overrides from the environment (tests and development only; see aos-unit(8)). */
export function envOverrides(env: Readonly<Record<string, string | undefined>>): FactOverrides {
  return {
    serviceUser: env.AOS_UNIT_SERVICE_USER,
    executable: env.AOS_UNIT_EXECUTABLE,
    leaseHook: env.AOS_UNIT_LEASE_HOOK,
    nodeStoppedHook: env.AOS_UNIT_NODE_STOPPED_HOOK,
  };
}

/**
 * @throws {ConfigError} when the configuration is invalid (exit 2)
 */
export function loadAndPlan(paths: Paths, overrides: FactOverrides): Loaded {
  const { config, warnings } = loadConfigFiles(paths);
  const facts = gatherFacts(paths, overrides);
  const plan = makePlan(config, facts, paths);
  return { config, facts, plan, warnings: [...warnings, ...plan.warnings] };
}
