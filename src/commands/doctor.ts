/**
 * `aos-unit doctor [--json]`: every host prerequisite, checked without
 * changing anything, one line each with ok/warn/fail and, for each problem,
 * the command that fixes it. Exit 0 when the unit can start, 1 otherwise.
 */

import { loadConfig } from "../config/mod.ts";
import { ConfigError, type Diagnostic, EXIT_OK, EXIT_RUNTIME } from "../errors.ts";
import { type CheckResult, renderChecks, runChecks } from "../host/checks.ts";
import { readConfigFile } from "../host/config_files.ts";
import { gatherFacts } from "../host/facts.ts";
import { envOverrides } from "../host/load.ts";
import { configFiles } from "../host/paths.ts";
import { createRunner } from "../host/runner.ts";
import { makePlan } from "../plan/mod.ts";
import { connectSystemBus, type MessageBus } from "../systemd/bus.ts";
import { Systemd } from "../systemd/systemd1.ts";
import type { CommandContext } from "./context.ts";

export async function doctorCommand(ctx: CommandContext, json: boolean): Promise<number> {
  let bus: MessageBus | undefined;
  let systemd: Systemd | undefined;
  let busProblem: string | undefined;
  try {
    bus = await connectSystemBus(undefined, 2000);
    systemd = await Systemd.open(bus);
  } catch (error) {
    busProblem = (error as Error).message;
  }
  try {
    let diagnostics: Diagnostic[] = [];
    let loaded;
    try {
      const files = configFiles(ctx.paths);
      loaded = loadConfig(readConfigFile(files.runtime), readConfigFile(files.unit));
      diagnostics = [...loaded.warnings];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      diagnostics = [...error.diagnostics];
    }
    const facts = loaded
      ? gatherFacts(ctx.paths, {
        ...envOverrides(ctx.env),
        systemdVersion: systemd ? await systemd.version().catch(() => 0) : 0,
      })
      : undefined;
    const plan = loaded && facts ? makePlan(loaded.config, facts, ctx.paths) : undefined;
    const results: CheckResult[] = await runChecks({
      config: loaded?.config,
      diagnostics,
      plan,
      facts,
      runner: createRunner(),
      systemd,
      bus,
      busProblem,
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
    bus?.disconnect();
  }
}
