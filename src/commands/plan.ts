/** `aos-unit plan [--json]`: what aos-unit would create, without touching anything. */

import { loadConfig } from "../config/mod.ts";
import { ConfigError, EXIT_CONFIG, EXIT_OK, formatDiagnostic, summarize } from "../base/errors.ts";
import { readConfigFile } from "../host/config_files.ts";
import { gatherFacts } from "../host/facts.ts";
import { configFiles } from "../host/paths.ts";
import { makePlan } from "../plan/mod.ts";
import { renderPlanText } from "../plan/render.ts";
import type { CommandContext } from "./_context.ts";
import { type CommandSpec, flag } from "./_spec.ts";

import { EXAMPLES_DIR as SAMPLE_CONFIG_DIR } from "../base/host_files.ts";

export interface PlanOptions {
  json: boolean;
}

export function planCommand(ctx: CommandContext, options: PlanOptions): number {
  const files = configFiles(ctx.paths);
  const unitFile = readConfigFile(files.unit);
  if ("missing" in unitFile) {
    ctx.err(
      `No configuration to plan: ${files.unit} does not exist (looked in ${ctx.paths.configDir}).\n` +
        `To plan the shipped sample: aos-unit plan --config-dir ${SAMPLE_CONFIG_DIR}`,
    );
    return EXIT_CONFIG;
  }
  let loaded;
  try {
    loaded = loadConfig(readConfigFile(files.runtime), unitFile);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const d of error.diagnostics) ctx.err(formatDiagnostic(d));
    ctx.err(`${files.unit}: invalid configuration: ${summarize(error.diagnostics)}`);
    return EXIT_CONFIG;
  }
  const facts = gatherFacts(ctx.paths, {
    serviceUser: ctx.env.AOS_UNIT_SERVICE_USER,
    executable: ctx.env.AOS_UNIT_EXECUTABLE,
    leaseHook: ctx.env.AOS_UNIT_LEASE_HOOK,
  });
  const plan = makePlan(loaded.config, facts, ctx.paths);
  for (const d of [...loaded.warnings, ...plan.warnings]) ctx.err(formatDiagnostic(d));
  ctx.out(options.json ? JSON.stringify(plan, null, 2) + "\n" : renderPlanText(plan));
  return EXIT_OK;
}

export const planSpec: CommandSpec = {
  name: "plan",
  summary:
    "show what aos-unit would create: network, MACs, taps, QEMU argv, units, ruleset, dnsmasq config",
  group: "user",
  configDir: true,
  options: [{ flags: "--json", description: "print the plan as JSON" }],
  examples: `
Examples:
  aos-unit plan
  aos-unit plan --json | jq '.nodes[] | {name, mac, ip}'
  aos-unit plan --config-dir ${SAMPLE_CONFIG_DIR}

Needs no root and changes nothing.`,
  run: (ctx, call) => planCommand(ctx, { json: flag(call, "json") }),
};
