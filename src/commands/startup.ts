/**
 * `aos-unit startup` (ExecStartPre): bridge, taps, forwarding, the nft table,
 * resolved routing and network.conf. Checks conflicts before creating
 * anything; on a failure half-way it takes down what it made.
 */

import { EXIT_OK, formatLocated } from "../errors.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { createRunner } from "../host/runner.ts";
import { logger } from "../log.ts";
import { applyNetwork, teardownNetwork } from "../net/apply.ts";
import { defaultRouteDevices, listAddresses, listLinks, listRoutes } from "../net/links.ts";
import { checkBridgeName, checkDnsPortFree, checkSubnetFree } from "../net/preflight.ts";
import { TOOLS } from "../permissions.ts";
import type { CommandContext } from "./context.ts";

export async function startupCommand(ctx: CommandContext): Promise<number> {
  const log = logger("startup");
  const started = performance.now();
  const runner = createRunner();
  const host = {
    links: await listLinks(runner),
    addresses: await listAddresses(runner),
    routes: await listRoutes(runner),
  };
  const { plan, facts, config, warnings } = loadAndPlan(ctx.paths, {
    ...envOverrides(ctx.env),
    uplinks: defaultRouteDevices(host.routes),
  });
  for (const w of warnings) log.warning(formatLocated(w));
  const existing = checkBridgeName(plan.network, host);
  checkSubnetFree(plan.network, host, { file: config.runtime.file, line: 1, column: 1 });
  checkDnsPortFree(plan.network, (await runner.run([TOOLS.ss, "-Hlnut"])).stdout);

  try {
    await applyNetwork(runner, plan, facts.serviceUser, existing, log);
  } catch (error) {
    // Leave nothing half-made when this run created the bridge.
    if (!existing) {
      await teardownNetwork(runner, ctx.paths.runtimeDir, [plan.network.bridge], log).catch(
        () => {},
      );
    }
    throw error;
  }
  log.info(
    `Network ready in ${
      Math.round(performance.now() - started)
    } ms: bridge ${plan.network.bridge} ` +
      `${plan.network.bridgeIp}/${plan.network.prefix}, ${plan.nodes.length} tap(s), DNS port ${plan.network.dnsPort}`,
  );
  return EXIT_OK;
}
