/** `aos-unit monitor` (aos-unit-route-monitor.service): the smart-NAT route monitor. */

import { EXIT_OK } from "../errors.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { createRunner } from "../host/runner.ts";
import { logger } from "../log.ts";
import { rulesetFile } from "../net/apply.ts";
import { defaultRouteDevices, listRoutes } from "../net/links.ts";
import { RouteMonitor } from "../net/monitor.ts";
import type { CommandContext } from "./context.ts";

export async function monitorCommand(ctx: CommandContext): Promise<number> {
  const log = logger("monitor");
  const { plan, config } = loadAndPlan(ctx.paths, envOverrides(ctx.env));
  const runner = createRunner();
  const { promise, resolve } = Promise.withResolvers<void>();
  const monitor = new RouteMonitor({
    runner,
    network: plan.network,
    rulesetFile: rulesetFile(plan),
    log,
    debounceMs: config.runtime.routeDebounceMs,
    readUplinks: async () => defaultRouteDevices(await listRoutes(runner)),
    onUplinks: (uplinks) =>
      Deno.writeTextFileSync(`${ctx.paths.runtimeDir}/uplinks`, uplinks.join(" ") + "\n"),
    onBridgeGone: () => resolve(),
  });
  await monitor.start();

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => resolve());
  }
  await promise;
  await monitor.stop();
  log.info("Route monitor stopped");
  return EXIT_OK;
}
