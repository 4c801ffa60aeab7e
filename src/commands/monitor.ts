/**
 * `aos-unit monitor`: the smart-NAT route monitor in the foreground. The
 * running unit has it inside `aos-unit run` (one process less); this command
 * runs the same monitor by hand, e.g. to watch handovers while debugging.
 */

import { EXIT_OK } from "../base/errors.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { createRunner } from "../host/runner.ts";
import { logger } from "../log.ts";
import { monitorFor } from "../net/monitor.ts";
import type { CommandContext } from "./_context.ts";
import type { CommandSpec } from "./_spec.ts";

export async function monitorCommand(ctx: CommandContext): Promise<number> {
  const log = logger("monitor");
  const { plan, config } = loadAndPlan(ctx.paths, envOverrides(ctx.env));
  const { promise, resolve } = Promise.withResolvers<void>();
  const monitor = monitorFor(plan, config.runtime.routeDebounceMs, createRunner(), log, resolve);
  await monitor.start();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => resolve());
  }
  await promise;
  await monitor.stop();
  log.info("Route monitor stopped");
  return EXIT_OK;
}

export const monitorSpec: CommandSpec = {
  name: "monitor",
  summary:
    "the route monitor (it runs inside `run`) in the foreground: follow default routes, keep NAT and the tables",
  group: "internal",
  logFile: true,
  examples: "\nExample:\n  sudo aos-unit monitor   (its log in the unit: journalctl -u aos-unit)",
  run: (ctx) => monitorCommand(ctx),
};
