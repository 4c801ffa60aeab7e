/**
 * `aos-unit prepare`: the files a node needs before it boots, made as the
 * service user (the root broker starts it with the user's uid and gid, so
 * root never writes in directories the service user can change): the node's
 * directory, its overlay and UEFI variables, the base-image record, the serial
 * log, the DHCP directory and the failure log.
 */

import { EXIT_OK } from "../errors.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { createRunner } from "../host/runner.ts";
import { logger } from "../log.ts";
import type { Plan } from "../plan/types.ts";
import { prepareDisks } from "../vm/disk.ts";
import type { CommandContext } from "./context.ts";

/** Lease files of versions before the DHCP directory existed move into it once. */
function migrateLeases(plan: Plan): string[] {
  const moved: string[] = [];
  for (
    const [old, now] of [
      [`${plan.paths.stateDir}/dnsmasq.leases`, plan.dnsmasq.leaseFile],
      [`${plan.paths.stateDir}/leases.json`, plan.leaseState],
    ] as const
  ) {
    try {
      Deno.lstatSync(now);
      continue;
    } catch { /* not there yet */ }
    try {
      if (!Deno.lstatSync(old).isFile) continue;
      Deno.renameSync(old, now);
      moved.push(`${old} -> ${now}`);
    } catch { /* nothing to move */ }
  }
  return moved;
}

export async function prepareCommand(ctx: CommandContext): Promise<number> {
  const log = logger("prepare");
  const { plan } = loadAndPlan(ctx.paths, envOverrides(ctx.env));
  const runner = createRunner();
  Deno.mkdirSync(plan.dnsmasq.dhcpDir, { recursive: true, mode: 0o750 });
  for (const line of migrateLeases(plan)) log.info(`Moved ${line}`);
  Deno.writeFileSync(plan.failureLog, new Uint8Array(), { append: true, mode: 0o640 });
  for (const node of plan.nodes) {
    const created = await prepareDisks(runner, node);
    if (created.length > 0) log.info(`Node ${node.name}: created ${created.join(", ")}`);
  }
  return EXIT_OK;
}
