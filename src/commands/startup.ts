/**
 * `aos-unit startup` (ExecStartPre): bridge, taps, forwarding, the nft table,
 * resolved routing and network.conf. Checks conflicts before creating
 * anything; on a failure half-way it takes down what it made.
 */

import {
  ConfigError,
  EXIT_CONFIG,
  EXIT_OK,
  exitCodeOf,
  formatDiagnostic,
  formatLocated,
} from "../errors.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { createRunner } from "../host/runner.ts";
import { logger } from "../log.ts";
import { applyNetwork, teardownNetwork } from "../net/apply.ts";
import { defaultRouteDevices, listAddresses, listLinks, listRoutes } from "../net/links.ts";
import {
  checkBridgeName,
  checkDnsPortFree,
  checkSubnetFree,
  foreignDropPolicies,
} from "../net/preflight.ts";
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
  const chains = await runner.run([TOOLS.nft, "-j", "list", "chains"], { okCodes: [0, 1] });
  for (const warning of foreignDropPolicies(chains.stdout, plan.network)) log.warning(warning);
  log.info(
    `Network ready in
 ${Math.round(performance.now() - started)} ms: bridge ${plan.network.bridge} ` +
      `${plan.network.bridgeIp}/${plan.network.prefix}, ${plan.nodes.length} tap(s), DNS port ${plan.network.dnsPort}`,
  );
  return EXIT_OK;
}

/** Where startup leaves a permanent error for `run` (see startupDeferringErrors). */
export function startupErrorFile(runtimeDir: string): string {
  return `${runtimeDir}/startup-error`;
}

/**
 * Under systemd: RestartPreventExitStatus= applies to the main process only,
 * so a configuration error in ExecStartPre= would be retried in a loop. With
 * --defer-config-errors, startup logs such an error, leaves it in the runtime
 * directory and exits 0; `run` (ExecStart=) then reports it and exits 2.
 */
export async function startupDeferringErrors(ctx: CommandContext, defer: boolean): Promise<number> {
  try {
    return await startupCommand(ctx);
  } catch (error) {
    if (!defer || exitCodeOf(error) !== EXIT_CONFIG) throw error;
    const text = error instanceof ConfigError && error.diagnostics.length > 0
      ? error.diagnostics.map(formatDiagnostic).join("\n")
      : (error as Error).message;
    logger("startup").error(`${text} (network not set up; aos-unit run reports this and exits 2)`);
    Deno.mkdirSync(ctx.paths.runtimeDir, { recursive: true });
    Deno.writeTextFileSync(startupErrorFile(ctx.paths.runtimeDir), text + "\n");
    return EXIT_OK;
  }
}
