/**
 * `aos-unit doctor [--json]`: every host prerequisite, checked without
 * changing anything, one line each with ok/warn/fail and, for each problem,
 * the command that fixes it. Exit 0 when the unit can start, 1 otherwise.
 */

import { ConfigError, type Diagnostic, EXIT_OK, EXIT_RUNTIME } from "../base/errors.ts";
import type { Config } from "../base/config_types.ts";
import { loadConfigFiles } from "../host/config_files.ts";
import { gatherFacts } from "../host/facts.ts";
import { envOverrides } from "../host/load.ts";
import { createRunner } from "../host/runner.ts";
import { makePlan } from "../plan/mod.ts";
import { openSystemd } from "../systemd/connect.ts";
import type { CommandContext } from "./_context.ts";
import { type CheckResult, renderChecks, runChecks } from "./_doctor_checks.ts";
import { type CommandSpec, flag } from "./_spec.ts";

/** The configuration and its problems; an invalid one is a finding, not a failure. */
function readConfiguration(ctx: CommandContext): { config?: Config; diagnostics: Diagnostic[] } {
  try {
    const loaded = loadConfigFiles(ctx.paths);
    return { config: loaded.config, diagnostics: [...loaded.warnings] };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { diagnostics: [...error.diagnostics] };
  }
}

export async function doctorCommand(ctx: CommandContext, json: boolean): Promise<number> {
  const connection = await openSystemd();
  try {
    const { config, diagnostics } = readConfiguration(ctx);
    const facts = config
      ? gatherFacts(ctx.paths, {
        ...envOverrides(ctx.env),
        systemdVersion: connection.systemd ? await connection.systemd.version().catch(() => 0) : 0,
      })
      : undefined;
    const plan = config && facts ? makePlan(config, facts, ctx.paths) : undefined;
    const results: CheckResult[] = await runChecks({
      config,
      diagnostics,
      plan,
      facts,
      runner: createRunner(),
      systemd: connection.systemd,
      bus: connection.bus,
      busProblem: connection.problem,
    });
    const canStart = !results.some((r) => r.status === "fail");
    if (json) {
      ctx.out(JSON.stringify({ canStart, checks: results }, null, 2));
    } else {
      ctx.out(renderChecks(results));
      const warn = results.filter((r) => r.status === "warn").length;
      const fail = results.filter((r) => r.status === "fail").length;
      ctx.out(
        `\n${
          canStart ? "The unit can start" : "The unit cannot start"
        }: ${fail} problem(s), ${warn} warning(s).`,
      );
    }
    return canStart ? EXIT_OK : EXIT_RUNTIME;
  } finally {
    connection.bus?.disconnect();
  }
}

export const doctorSpec: CommandSpec = {
  name: "doctor",
  summary:
    "check every host prerequisite without changing anything: ok/warn/fail, with the fix for each problem",
  group: "user",
  options: [{ flags: "--json", description: "print the checks as JSON" }],
  examples: `
Examples:
  sudo aos-unit doctor
  aos-unit doctor --json | jq '.checks[] | select(.status != "ok")'

Exit status: 0 when the unit can start (warnings allowed), 1 when a check failed.`,
  run: (ctx, call) => doctorCommand(ctx, flag(call, "json")),
};
