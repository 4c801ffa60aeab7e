/** Files `run` writes before starting the sidecar and the nodes. */

import type { Plan } from "../plan/types.ts";

function writeAtomic(path: string, content: string): void {
  const tmp = `${path}.tmp`;
  Deno.writeTextFileSync(tmp, content);
  Deno.renameSync(tmp, path);
}

/**
 * dnsmasq.conf in the runtime directory, and the documented
 * /run/aos-unit/dnsmasq.leases pointing at the persistent lease file.
 */
export function writeSidecarFiles(plan: Plan): void {
  Deno.mkdirSync(plan.paths.runtimeDir, { recursive: true });
  Deno.mkdirSync(plan.paths.stateDir, { recursive: true });
  Deno.mkdirSync(plan.paths.logsDir, { recursive: true });
  writeAtomic(plan.dnsmasq.confPath, plan.dnsmasq.conf);
  try {
    Deno.lstatSync(plan.dnsmasq.leaseLink);
    Deno.removeSync(plan.dnsmasq.leaseLink);
  } catch { /* absent */ }
  Deno.symlinkSync(plan.dnsmasq.leaseFile, plan.dnsmasq.leaseLink);
}
