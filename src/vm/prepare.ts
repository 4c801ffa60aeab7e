/**
 * The files a unit needs before its units start, made by the service user:
 * the DHCP directory (with leases moved from older versions' places), the
 * failure log, and each node's disks and serial log (see disk.ts).
 */

import type { Runner } from "../host/runner.ts";
import type { Logger } from "../log.ts";
import { snapshotsDir } from "../plan/snapshot.ts";
import type { Plan } from "../plan/types.ts";
import { prepareDisks } from "./disk.ts";

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

export async function prepareFiles(runner: Runner, plan: Plan, log: Logger): Promise<void> {
  Deno.mkdirSync(plan.dnsmasq.dhcpDir, { recursive: true, mode: 0o750 });
  Deno.mkdirSync(snapshotsDir(plan.paths), { recursive: true, mode: 0o750 });
  for (const line of migrateLeases(plan)) log.info(`Moved ${line}`);
  Deno.writeFileSync(plan.failureLog, new Uint8Array(), { append: true, mode: 0o640 });
  for (const node of plan.nodes) {
    const created = await prepareDisks(runner, node);
    if (created.length > 0) log.info(`Node ${node.name}: created ${created.join(", ")}`);
  }
}
